"""The backend-specific part of a launch: trust env vars and flags, as pure functions of (backend, mode).

The launch spec (argv, env, cwd) calls :func:`additions` so that every launch, whether supervised
(``service``), one-shot (``run``) or interactive (``open``), makes the CLI use the workspace's files without
a prompt. Flags go right after the executable, before any subcommand, where each of these CLIs takes its
global options; they are only added when the argv is the backend's own (a template's ``command`` is the
user's argv and gets the environment only).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from actantd.materialize import MATERIALIZERS, Mode


@dataclass(frozen=True, slots=True)
class Additions:
    env: dict[str, str] = field(default_factory=dict)
    args: list[str] = field(default_factory=list)


def additions(materializer: str, workspace: Path, mode: Mode) -> Additions:
    found = MATERIALIZERS.get(materializer)
    if found is None:
        return Additions()
    return Additions(found.launch_env(workspace, mode), found.launch_args(mode))


def with_args(argv: list[str], args: Iterable[str]) -> list[str]:
    extra = [a for a in args if a not in argv[1:]]
    return argv[:1] + extra + argv[1:]
