"""The chain of version steps: which module turns version X into version Y.

Each step is a module with ``FROM``, ``TO`` and a pure ``migrate(kind, doc) -> doc``; adding a version means
adding one module and one line to :data:`STEPS`. Steps never touch disk, so they are tested on dicts and the
runner alone owns backups and atomic writes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Protocol

from actantd.config.migrations import v0_9_to_1_0
from actantd.errors import MigrationError

CURRENT_VERSION: Final = "1.0"


class Step(Protocol):
    FROM: str
    TO: str

    def migrate(self, kind: str, doc: dict[str, Any]) -> dict[str, Any]: ...


STEPS: Final[Mapping[str, Step]] = {step.FROM: step for step in (v0_9_to_1_0,)}


def parse_version(version: str) -> tuple[int, ...] | None:
    """``"1.0"`` → ``(1, 0)``; None for anything that is not dotted integers."""
    parts = version.split(".")
    if not parts or not all(p.isdigit() for p in parts):
        return None
    return tuple(int(p) for p in parts)


def is_newer(version: str) -> bool:
    """True for a well-formed version above :data:`CURRENT_VERSION` (a file from a newer Actant)."""
    parsed, current = parse_version(version), parse_version(CURRENT_VERSION)
    assert current is not None
    return parsed is not None and parsed > current


def is_migratable(version: str) -> bool:
    return version in STEPS


def migrate_document(kind: str, doc: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Run every step from ``doc["version"]`` up to :data:`CURRENT_VERSION`.

    Returns the new document and the versions passed through (``["0.9", "1.0"]``). Raises
    :class:`~actantd.errors.MigrationError` for a version no chain leads from.
    """
    out = dict(doc)
    version = out.get("version")
    trail = [str(version)]
    seen: set[str] = set()
    while version != CURRENT_VERSION:
        if not isinstance(version, str) or version not in STEPS or version in seen:
            raise MigrationError(f"no migration from version {version!r}", version=version, kind=kind)
        seen.add(version)
        step = STEPS[version]
        out = step.migrate(kind, out)
        if out.get("version") != step.TO:
            raise MigrationError(f"step {step.FROM}->{step.TO} did not set version", kind=kind)
        version = step.TO
        trail.append(version)
    return out, trail
