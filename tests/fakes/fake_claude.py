"""A stand-in for ``claude -p --output-format json`` (Claude Code's print mode), stdlib only, no model.

Accepts what Actant's backend argv passes: ``-p/--print``, ``--output-format text|json|stream-json``,
``--verbose``, ``--resume/-r ID``, ``--continue/-c``, ``--session-id ID``, ``--model M``, and ignores other
``--flag value`` pairs it does not know. Prints progress lines on stderr first, then (json) one result
object shaped like the real one: ``type``, ``subtype``, ``is_error``, ``duration_ms``, ``num_turns``,
``result``, ``session_id``, ``total_cost_usd``, ``usage`` (``input_tokens``, ``cache_creation_input_tokens``,
``cache_read_input_tokens``, ``output_tokens``). The answer names the turn number of the session, so a
resumed conversation is visible: ``turn 2 of session …``. Knobs: see ``_state.py``.
"""

from __future__ import annotations

import json
import sys
import time

import _state

VALUE_FLAGS = {"--output-format", "--resume", "-r", "--session-id", "--model", "--permission-mode", "--allowedTools",
               "--disallowedTools", "--append-system-prompt", "--max-turns", "--mcp-config"}  # fmt: skip


def main(argv: list[str]) -> int:
    fmt, resume, cont, prompt = "text", None, False, None
    print_mode = False
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("-p", "--print"):
            print_mode = True
        elif arg in ("-c", "--continue"):
            cont = True
        elif arg in VALUE_FLAGS:
            value = argv[i + 1] if i + 1 < len(argv) else ""
            i += 1
            if arg == "--output-format":
                fmt = value
            elif arg in ("--resume", "-r", "--session-id"):
                resume = value
        elif arg.startswith("--"):
            pass
        else:
            prompt = arg
        i += 1
    if not print_mode:
        print("fake-claude: interactive mode is not imitated; use -p", file=sys.stderr)
        return 2
    if prompt is None:
        prompt = sys.stdin.read()
    started = time.monotonic()
    _state.progress("fake-claude")
    _state.flood()
    _state.maybe_spawn_grandchild()
    _state.wait()
    session_id = resume or (_state.latest() if cont else None)
    session = _state.load(session_id) if session_id else None
    if session_id and session is None and not resume:
        session_id = None
    if session is None:
        session = _state.new_session()
        if session_id:
            session["id"] = session_id
    session["turns"].append(prompt)
    _state.save(session)
    turn = len(session["turns"])
    answer = f"turn {turn} of session {session['id']}: you said {prompt!r}"
    _, code = _state.knobs()
    usage = {"input_tokens": 10 * turn, "cache_creation_input_tokens": 5, "cache_read_input_tokens": 100 * (turn - 1),
             "output_tokens": 7, "server_tool_use": {"web_search_requests": 0}, "service_tier": "standard"}  # fmt: skip
    if fmt == "json":
        print(json.dumps({
            "type": "result", "subtype": "success" if code == 0 else "error_during_execution",
            "is_error": code != 0, "duration_ms": round((time.monotonic() - started) * 1000),
            "duration_api_ms": 3, "num_turns": 1, "result": answer, "session_id": session["id"],
            "total_cost_usd": round(0.0125 * turn, 6), "usage": usage, "permission_denials": [],
        }), flush=True)  # fmt: skip
    elif fmt == "stream-json":
        print(json.dumps({"type": "system", "subtype": "init", "session_id": session["id"]}), flush=True)
        print(json.dumps({"type": "result", "result": answer, "session_id": session["id"],
                          "total_cost_usd": 0.0125 * turn, "usage": usage}), flush=True)  # fmt: skip
    else:
        print(answer, flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
