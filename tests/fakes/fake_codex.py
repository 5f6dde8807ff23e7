"""A stand-in for ``codex exec --json`` (Codex CLI's non-interactive mode), stdlib only, no model.

``codex exec [--json] [flags] PROMPT`` and ``codex exec [--json] resume (SESSION_ID | --last) PROMPT``. With
``--json`` stdout is JSONL events like the real CLI's: ``thread.started`` (``thread_id``), ``turn.started``,
``item.completed`` (``reasoning``, ``agent_message``), ``turn.completed`` with ``usage`` (``input_tokens``,
``cached_input_tokens``, ``output_tokens``); without it, progress goes to stderr and the final message to
stdout. No cost is reported (the real CLI reports none either).
"""

from __future__ import annotations

import json
import sys

import _state

VALUE_FLAGS = {"-m", "--model", "-s", "--sandbox", "-C", "--cd", "-c", "--config", "-p", "--profile",
               "--output-last-message", "-o"}  # fmt: skip


def emit(event: dict[str, object]) -> None:
    print(json.dumps(event), flush=True)


def main(argv: list[str]) -> int:
    if not argv or argv[0] != "exec":
        print("fake-codex: only `exec` is imitated", file=sys.stderr)
        return 2
    args = argv[1:]
    as_json, resume, last, words = False, False, False, []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in ("--json", "--experimental-json"):
            as_json = True
        elif arg == "resume" and not words and not resume:
            resume = True
        elif arg == "--last":
            last = True
        elif arg in VALUE_FLAGS:
            i += 1
        elif arg.startswith("-") and arg != "-":
            pass
        else:
            words.append(arg)
        i += 1
    session_id = None
    if resume:
        session_id = _state.latest() if last else (words.pop(0) if len(words) > 1 else None)
    prompt = words[-1] if words else sys.stdin.read()
    _state.progress("fake-codex")
    _state.flood()
    _state.maybe_spawn_grandchild()
    _state.wait()
    session = _state.load(session_id) if session_id else None
    if resume and session is None:
        print(f"fake-codex: no session {session_id!r} to resume", file=sys.stderr)
        return 1
    session = session or _state.new_session()
    session["turns"].append(prompt)
    _state.save(session)
    turn = len(session["turns"])
    answer = f"turn {turn} of session {session['id']}: you said {prompt!r}"
    _, code = _state.knobs()
    if as_json:
        emit({"type": "thread.started", "thread_id": session["id"]})
        emit({"type": "turn.started"})
        emit({"type": "item.completed", "item": {"id": "item_0", "type": "reasoning", "text": "**Thinking**"}})
        emit({"type": "item.completed", "item": {"id": "item_1", "type": "agent_message", "text": answer}})
        usage = {"input_tokens": 1000 * turn, "cached_input_tokens": 900 * (turn - 1), "output_tokens": 20}
        if code == 0:
            emit({"type": "turn.completed", "usage": usage})
        else:
            emit({"type": "turn.failed", "error": {"message": "fake failure"}})
    else:
        print(f"session id: {session['id']}", file=sys.stderr, flush=True)
        print(answer, flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
