"""``codex exec --json``: JSONL events, one object per line.

``thread.started.thread_id`` is the session (``codex exec resume <id>``); the result is the text of the last
``item.completed`` whose item is an ``agent_message``; tokens are summed over every ``turn.completed.usage``
(``input_tokens``, ``cached_input_tokens``, ``output_tokens``, ``reasoning_output_tokens`` where present).
``input_tokens`` already includes the cached part, so ``total`` is input + output. A ``turn.failed`` or
``error`` event marks the run as failed. Lines that are not JSON (a cut first line of a bounded tail) are
skipped. Codex reports no cost.
"""

from __future__ import annotations

import json

from actantd.runs.parsers.base import Report, add_tokens


def parse(stdout: str) -> Report:
    session: str | None = None
    result: str | None = None
    tokens: dict[str, int] = {}
    failed: str | None = None
    events = 0
    for line in stdout.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if not isinstance(event, dict):
            continue
        events += 1
        kind = event.get("type")
        if kind == "thread.started" and isinstance(event.get("thread_id"), str):
            session = event["thread_id"]
        elif kind == "item.completed":
            item = event.get("item")
            if isinstance(item, dict) and item.get("type") == "agent_message" and isinstance(item.get("text"), str):
                result = item["text"]
        elif kind == "turn.completed" and isinstance(event.get("usage"), dict):
            usage = event["usage"]
            add_tokens(tokens, "input", usage.get("input_tokens"))
            add_tokens(tokens, "cacheRead", usage.get("cached_input_tokens"))
            add_tokens(tokens, "output", usage.get("output_tokens"))
            add_tokens(tokens, "reasoning", usage.get("reasoning_output_tokens"))
        elif kind in ("turn.failed", "error"):
            error = event.get("error") if kind == "turn.failed" else event
            message = error.get("message") if isinstance(error, dict) else None
            failed = message if isinstance(message, str) else kind
    if events == 0:
        return Report(problem="no JSON events in the output (was --json given?)")
    if tokens:
        tokens["total"] = tokens.get("input", 0) + tokens.get("output", 0)
    return Report(
        result=result if result is not None else failed,
        session_id=session,
        tokens=tokens,
        is_error=failed is not None,
    )
