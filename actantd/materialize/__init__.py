"""Domain-context materialization: the files each agent CLI reads, derived whole from configs.

One module per backend (``claude_code``, ``codex``, ``gemini``, ``cursor``, ``custom``), each a pure function
resolved template → {workspace-relative path: text} plus the warnings for what its CLI cannot express, and
two pure launch functions (``launch_env(workspace, mode)``, ``launch_args(mode)``) that make the CLI use the
files without a trust prompt. This package writes the plan: only changed files, atomically; a file that
left the plan is deleted, but only if the instance's record lists it (the record's ``materialized`` list is
the ownership proof), so files Actant did not write are never touched.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Final

from actantd.config.registry import Resolved
from actantd.config.schema import MaterializerName
from actantd.fsutil import atomic_write, remove_inside
from actantd.materialize import claude_code, codex, cursor, custom, gemini
from actantd.materialize.base import MODES, Mode, Rendered

__all__ = ["MODES", "Materializer", "Mode", "Rendered", "WriteResult", "by_name", "materialize", "plan", "write"]


@dataclass(frozen=True, slots=True)
class Materializer:
    name: MaterializerName
    render: Callable[[Resolved], Rendered]
    launch_env: Callable[[Path, Mode], dict[str, str]]
    launch_args: Callable[[Mode], list[str]]


def _of(module: ModuleType) -> Materializer:
    return Materializer(module.NAME, module.render, module.launch_env, module.launch_args)


MATERIALIZERS: Final[dict[str, Materializer]] = {
    m.name: m for m in map(_of, (claude_code, codex, gemini, cursor, custom))
}


def by_name(name: str) -> Materializer:
    return MATERIALIZERS[name]


def of(resolved: Resolved) -> Materializer:
    return by_name(resolved.backend.materializer)


def render(resolved: Resolved) -> Rendered:
    return of(resolved).render(resolved)


def plan(resolved: Resolved) -> dict[str, str]:
    """Every derived file for ``resolved``: workspace-relative path → content.

    Planning is separate from writing so the record can list the files *before* they exist: whatever moment
    a create is interrupted, cleanup knows exactly which files are Actant's.
    """
    return render(resolved).files


def warnings(resolved: Resolved) -> list[str]:
    """What the template asks for that its backend cannot express (turned into config warnings)."""
    return render(resolved).warnings


@dataclass(frozen=True, slots=True)
class WriteResult:
    files: list[str]
    """Sorted paths Actant now owns in the workspace (the record's ``materialized``)."""
    written: list[str]
    removed: list[str]
    skipped: list[str]
    """Planned files that exist but are not Actant's: left alone and reported."""


def write(workspace: Path, files: dict[str, str], owned: Iterable[str] = ()) -> WriteResult:
    """Write planned files (skipping unchanged ones) and delete owned files that left the plan."""
    owned_set = set(owned)
    written: list[str] = []
    skipped: list[str] = []
    for rel, text in files.items():
        path = workspace / rel
        data = text.encode()
        try:
            current: bytes | None = path.read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            current = None
        if current == data:
            continue
        if (current is not None or path.is_symlink()) and rel not in owned_set:
            skipped.append(rel)
            continue
        if not _inside(workspace, path.parent):
            skipped.append(rel)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, data)
        written.append(rel)
    removed = [rel for rel in sorted(owned_set - files.keys()) if remove_inside(workspace, rel)]
    kept = sorted(set(files) - set(skipped))
    return WriteResult(kept, sorted(written), removed, sorted(skipped))


def _inside(root: Path, directory: Path) -> bool:
    """``directory`` (possibly not yet existing) resolves inside ``root``: a symlinked ``.claude`` pointing
    elsewhere must not let a sync write outside the workspace."""
    real_root = root.resolve()
    real = directory.resolve()
    return real == real_root or real_root in real.parents


def materialize(workspace: Path, resolved: Resolved, owned: Iterable[str] = ()) -> WriteResult:
    """Plan and write in one go (sync and hot reload, where the instance already owns its files)."""
    return write(workspace, plan(resolved), owned)
