"""Output parsers for one-shot runs, one module per format; each is ``parse(stdout: str) -> Report``.

A parser never raises on bad input: output that is not in its format gives a report with ``result`` None and
``problem`` saying why, and the caller falls back to the raw text. Token counts use one vocabulary across
backends (``input``, ``output``, ``cacheRead``, ``cacheWrite``, ``reasoning``, ``total``) so history can sum them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from actantd.runs.parsers import claude, codex, gemini, text
from actantd.runs.parsers.base import TOKEN_KEYS, OutputFormat, Report, add_tokens, count

__all__ = ["DEFAULT_FORMAT_BY_MATERIALIZER", "TOKEN_KEYS", "OutputFormat", "Report", "add_tokens", "count",
           "parser_for"]  # fmt: skip


def parser_for(fmt: OutputFormat) -> Callable[[str], Report]:
    return {"claude-json": claude.parse, "codex-jsonl": codex.parse, "gemini-json": gemini.parse, "text": text.parse}[
        fmt
    ]


DEFAULT_FORMAT_BY_MATERIALIZER: Final[dict[str, OutputFormat]] = {
    "claude-code": "claude-json",
    "codex": "codex-jsonl",
    "gemini": "gemini-json",
}
"""When a backend does not name its ``runOutput``: what its CLI prints with the bundled ``run`` argv."""
