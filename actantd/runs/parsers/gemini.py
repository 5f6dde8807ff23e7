"""``gemini -p PROMPT --output-format json``: one JSON document (pretty-printed) with ``response`` and ``stats``.

Tokens are summed over ``stats.models.<model>.tokens``: ``prompt`` (input, includes ``cached``),
``candidates`` (output), ``cached``, ``thoughts``, ``total``. Newer versions add ``session_id``; an ``error``
object marks a failed run. Gemini reports no cost.
"""

from __future__ import annotations

from typing import Any

from actantd.runs.parsers.base import Report, add_tokens, json_objects


def _document(stdout: str) -> dict[str, Any] | None:
    """The first JSON object that starts a line (warnings may precede it; a log line may follow it)."""
    objects = json_objects(stdout)
    return objects[0] if objects else None


def parse(stdout: str) -> Report:
    doc = _document(stdout)
    if doc is None:
        return Report(problem="no JSON document in the output (was --output-format json given?)")
    tokens: dict[str, int] = {}
    stats = doc.get("stats")
    models = stats.get("models") if isinstance(stats, dict) else None
    for model in (models or {}).values() if isinstance(models, dict) else ():
        counts = model.get("tokens") if isinstance(model, dict) else None
        if not isinstance(counts, dict):
            continue
        add_tokens(tokens, "input", counts.get("prompt"))
        add_tokens(tokens, "output", counts.get("candidates"))
        add_tokens(tokens, "cacheRead", counts.get("cached"))
        add_tokens(tokens, "reasoning", counts.get("thoughts"))
        add_tokens(tokens, "total", counts.get("total"))
    response = doc.get("response")
    error = doc.get("error")
    message = error.get("message") if isinstance(error, dict) else None
    session = doc.get("session_id", doc.get("sessionId"))
    return Report(
        result=response if isinstance(response, str) else (message if isinstance(message, str) else None),
        session_id=session if isinstance(session, str) and session else None,
        tokens=tokens,
        is_error=error is not None,
    )
