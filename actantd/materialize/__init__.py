"""Domain-context materialization: derived files written whole from configs.

Only ``AGENTS.md`` (and ``CLAUDE.md`` importing it for the claude-code backend) is written so far; the
per-backend MCP and permission files come with the materialization issue. Files are written atomically and
their workspace-relative paths returned, so destroy of a ``--work-dir`` instance removes exactly them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from actantd.fsutil import atomic_write
from actantd.materialize import agents_md


def plan(resolved: Any) -> dict[str, str]:
    """Every derived file for ``resolved`` (a resolved template): workspace-relative path → content.

    Planning is separate from writing so the record can list the files *before* they exist: whatever moment
    a create is interrupted, cleanup knows exactly which files are Actant's.
    """
    files: dict[str, str] = {}
    template = resolved.template
    files["AGENTS.md"] = agents_md.render(
        template.name, list(resolved.prompts), list(resolved.skills), resolved.workflow
    )
    if resolved.backend is not None and resolved.backend.materializer == "claude-code":
        files["CLAUDE.md"] = "@AGENTS.md\n"
    return files


def write(workspace: Path, files: dict[str, str]) -> list[str]:
    """Write planned files atomically, skipping unchanged ones; returns their sorted relative paths."""
    for rel, text in files.items():
        path = workspace / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        data = text.encode()
        try:
            current = path.read_bytes()
        except FileNotFoundError:
            current = None
        if current != data:
            atomic_write(path, data)
    return sorted(files)


def materialize(workspace: Path, resolved: Any) -> list[str]:
    """Plan and write in one go (sync and hot reload, where the instance already owns its files)."""
    return write(workspace, plan(resolved))
