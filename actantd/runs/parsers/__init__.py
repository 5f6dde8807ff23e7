"""Output parsers for one-shot runs, one module per format; each is ``parse(stdout: str) -> Report``.

A parser never raises on bad input: output that is not in its format gives a report with ``result`` None and
``problem`` saying why, and the caller falls back to the raw text. Token counts use one vocabulary across
backends (``input``, ``output``, ``cacheRead``, ``cacheWrite``, ``reasoning``, ``total``) so history can sum them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, Literal

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


def parser_for(fmt: OutputFormat) -> Callable[[str], Report]:
    from actantd.runs.parsers import claude, codex, gemini, text

    return {"claude-json": claude.parse, "codex-jsonl": codex.parse, "gemini-json": gemini.parse, "text": text.parse}[
        fmt
    ]


DEFAULT_FORMAT_BY_MATERIALIZER: Final[dict[str, OutputFormat]] = {
    "claude-code": "claude-json",
    "codex": "codex-jsonl",
    "gemini": "gemini-json",
}
"""When a backend does not name its ``runOutput``: what its CLI prints with the bundled ``run`` argv."""
