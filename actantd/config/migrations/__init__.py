"""Config file migrations: one module per version step, a runner that backs up and rewrites.

The daemon never migrates configs on its own: configs are the user's files, often under version control, so
``actantctl config migrate`` (with ``--dry-run``) is the only writer and always leaves a backup. That is also
why the runner (backups, rewrites, ``msgspec.inspect``) is loaded on first use (:func:`__getattr__`): the
loader needs only the version steps, at every daemon start.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from actantd.config.migrations.steps import CURRENT_VERSION, STEPS, migrate_document

if TYPE_CHECKING:
    from actantd.config.migrations.runner import FileChange, MigrationReport, Skipped, migrate, plan

_RUNNER_NAMES = frozenset({"FileChange", "MigrationReport", "Skipped", "migrate", "plan"})

__all__ = [
    "CURRENT_VERSION",
    "STEPS",
    "FileChange",
    "MigrationReport",
    "Skipped",
    "migrate",
    "migrate_document",
    "plan",
]


def __getattr__(name: str) -> Any:
    if name in _RUNNER_NAMES:
        from actantd.config.migrations import runner

        return getattr(runner, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
