"""Domain-context materialization: derived files written whole from configs (DESIGN §7).

Only ``AGENTS.md`` (and ``CLAUDE.md`` importing it for the claude-code backend) is written so far; the
per-backend MCP and permission files come with the materialization issue. Files are written atomically and
their workspace-relative paths returned, so destroy of a ``--work-dir`` instance removes exactly them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from actantd.fsutil import atomic_write
from actantd.materialize import agents_md


def materialize(workspace: Path, resolved: Any) -> list[str]:
    """Write every derived file for ``resolved`` (a resolved template) and return their relative paths."""
    written: dict[str, str] = {}
    template = resolved.template
    written["AGENTS.md"] = agents_md.render(
        template.name, list(resolved.prompts), list(resolved.skills), resolved.workflow
    )
    if resolved.backend is not None and resolved.backend.materializer == "claude-code":
        written["CLAUDE.md"] = "@AGENTS.md\n"
    for rel, text in written.items():
        path = workspace / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        current = path.read_bytes() if path.exists() else None
        data = text.encode()
        if current != data:
            atomic_write(path, data)
    return sorted(written)
