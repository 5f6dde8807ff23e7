"""What every output parser returns, and the shared token-count helpers (see the package docstring)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Final, Literal

OutputFormat = Literal["text", "claude-json", "codex-jsonl", "gemini-json"]

TOKEN_KEYS: Final = ("input", "output", "cacheRead", "cacheWrite", "reasoning", "total")


@dataclass(frozen=True, slots=True)
class Report:
    """What a backend said about its run; every field is None when the backend did not report it."""

    result: str | None = None
    session_id: str | None = None
    cost_usd: float | None = None
    tokens: dict[str, int] = field(default_factory=dict)
    is_error: bool | None = None
    problem: str | None = None
    """Why the output could not be read in this format (None when it could)."""


def count(value: object) -> int | None:
    """A token count from JSON: a non-negative int (bools and floats with fractions are not counts)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and value >= 0:
        return value
    if isinstance(value, float) and value.is_integer() and value >= 0:
        return int(value)
    return None


def add_tokens(into: dict[str, int], key: str, value: object) -> None:
    n = count(value)
    if n is not None:
        into[key] = into.get(key, 0) + n


_OBJECT_START = re.compile(r"^[ \t]*\{", re.MULTILINE)


def json_objects(stdout: str) -> list[dict[str, Any]]:
    """The top-level JSON objects that start a line, in order; text around them (warnings before, log lines
    after) is skipped, and an object's own inner lines are never taken for another one."""
    decoder = json.JSONDecoder()
    found: list[dict[str, Any]] = []
    resume = 0
    for match in _OBJECT_START.finditer(stdout):
        start = match.end() - 1
        if start < resume:
            continue
        try:
            doc, end = decoder.raw_decode(stdout, start)
        except ValueError:
            continue
        if isinstance(doc, dict):
            found.append(doc)
            resume = end
    return found
