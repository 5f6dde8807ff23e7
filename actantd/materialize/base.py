"""What every backend materializer shares: the launch modes, the result shape and file encoders."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final, Literal

import msgspec

from actantd.config.registry import Resolved
from actantd.materialize import agents_md

Mode = Literal["service", "run", "open"]
MODES: Final[tuple[Mode, ...]] = ("service", "run", "open")

INSTRUCTIONS: Final = "AGENTS.md"
IMPORT_INSTRUCTIONS: Final = "@AGENTS.md\n"
"""``CLAUDE.md`` / ``GEMINI.md``: both CLIs inline a file named after ``@``, so the text lives once."""


@dataclass(slots=True)
class Rendered:
    """A backend's files (workspace-relative path → text) and what it could not express (warnings)."""

    files: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def agents_file(resolved: Resolved) -> str:
    return agents_md.render(resolved.template.name, resolved.prompts, resolved.skills, resolved.workflow)


def json_text(obj: Any) -> str:
    """Two-space JSON with a trailing newline, keys in insertion order: stable bytes for stable configs."""
    return (msgspec.json.format(msgspec.json.encode(obj), indent=2) + b"\n").decode()
