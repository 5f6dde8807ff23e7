"""Keep ``git status`` clean in a ``--work-dir`` repository: Actant's files go to ``.git/info/exclude``.

``info/exclude`` is the repository's private ignore list (never committed), so listing Actant's derived
files there hides them from ``git status`` without touching the user's ``.gitignore``. Each instance owns one
marked block, rewritten whole (atomically) when its file list changes and removed on destroy; lines
outside the block are never changed. Patterns are anchored at the repository root (``/sub/AGENTS.md``) so
they hide exactly Actant's files, not same-named files elsewhere.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from actantd.fsutil import atomic_write

BEGIN = "# >>> actant {name}: files Actant materialized (managed by actantd; removed on destroy)"
END = "# <<< actant {name}"


def repository(workspace: Path) -> tuple[Path, Path] | None:
    """``(worktree root, exclude file)`` of the git repository holding ``workspace``, or None."""
    for directory in (workspace, *workspace.parents):
        dot_git = directory / ".git"
        if dot_git.is_dir():
            return directory, dot_git / "info" / "exclude"
        if dot_git.is_file():  # a linked worktree or submodule: "gitdir: <path>"
            text = dot_git.read_text(errors="replace").strip()
            if not text.startswith("gitdir:"):
                return None
            git_dir = (directory / text.removeprefix("gitdir:").strip()).resolve()
            common = git_dir
            commondir = git_dir / "commondir"
            if commondir.is_file():
                common = (git_dir / commondir.read_text().strip()).resolve()
            return directory, common / "info" / "exclude"
    return None


def _escape(rel: str) -> str:
    """A literal path as a gitignore pattern (``*``, ``?``, ``[``, ``\\``, ``!`` and ``#`` escaped)."""
    out = "".join(f"\\{c}" if c in "*?[\\" else c for c in rel)
    return out


def _without_block(lines: list[str], name: str) -> tuple[list[str], int | None]:
    begin, end = BEGIN.format(name=name), END.format(name=name)
    if begin not in lines:
        return lines, None
    start = lines.index(begin)
    stop = lines.index(end, start) + 1 if end in lines[start:] else len(lines)
    return lines[:start] + lines[stop:], start


def update(workspace: Path, name: str, files: Iterable[str]) -> Path | None:
    """Replace ``name``'s block with ``files`` (workspace-relative); returns the exclude file, or None
    when the workspace is not in a git repository."""
    found = repository(workspace.resolve())
    if found is None:
        return None
    root, exclude = found
    prefix = workspace.resolve().relative_to(root.resolve()).as_posix()
    prefix = "" if prefix == "." else prefix + "/"
    block = [BEGIN.format(name=name), *(f"/{_escape(prefix + rel)}" for rel in sorted(files)), END.format(name=name)]
    try:
        text = exclude.read_text()
    except FileNotFoundError:
        text = ""
    lines, at = _without_block(text.splitlines(), name)
    lines = lines + block if at is None else lines[:at] + block + lines[at:]
    new = "\n".join(lines) + "\n"
    if new != text:
        exclude.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(exclude, new.encode())
    return exclude


def remove(workspace: Path, name: str) -> None:
    found = repository(workspace.resolve())
    if found is None:
        return
    _root, exclude = found
    try:
        text = exclude.read_text()
    except FileNotFoundError:
        return
    lines, at = _without_block(text.splitlines(), name)
    if at is not None:
        atomic_write(exclude, ("\n".join(lines) + "\n" if lines else "").encode())
