"""``claude -p --output-format json``: one JSON object at the end of stdout.

Fields used: ``result`` (the answer), ``session_id`` (for ``--resume``), ``total_cost_usd``, ``is_error`` and
``usage`` (``input_tokens``, ``output_tokens``, ``cache_read_input_tokens``, ``cache_creation_input_tokens``).
Anything printed before the object (a warning from a hook) is skipped: the object is the last line that
parses, or the whole text when it is pretty-printed.
"""

from __future__ import annotations

from typing import Any

from actantd.runs.parsers.base import Report, add_tokens, json_objects


def _document(stdout: str) -> dict[str, Any] | None:
    objects = json_objects(stdout)
    return objects[-1] if objects else None


def parse(stdout: str) -> Report:
    doc = _document(stdout)
    if doc is None:
        return Report(problem="no JSON result object in the output (was --output-format json given?)")
    raw_usage = doc.get("usage")
    usage: dict[str, Any] = raw_usage if isinstance(raw_usage, dict) else {}
    tokens: dict[str, int] = {}
    add_tokens(tokens, "input", usage.get("input_tokens"))
    add_tokens(tokens, "output", usage.get("output_tokens"))
    add_tokens(tokens, "cacheRead", usage.get("cache_read_input_tokens"))
    add_tokens(tokens, "cacheWrite", usage.get("cache_creation_input_tokens"))
    if tokens:
        tokens["total"] = sum(tokens.values())
    cost = doc.get("total_cost_usd", doc.get("cost_usd"))
    result = doc.get("result")
    session = doc.get("session_id")
    is_error = doc.get("is_error")
    return Report(
        result=result if isinstance(result, str) else None,
        session_id=session if isinstance(session, str) and session else None,
        cost_usd=float(cost) if isinstance(cost, int | float) and not isinstance(cost, bool) else None,
        tokens=tokens,
        is_error=is_error if isinstance(is_error, bool) else None,
    )
