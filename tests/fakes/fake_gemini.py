"""A stand-in for ``gemini -p PROMPT --output-format json`` (Gemini CLI's headless mode), stdlib only.

Flags: ``-p/--prompt TEXT``, ``--output-format text|json``, ``--resume/-r ID|latest``, ``-m/--model M``,
``--yolo``, ``--skip-trust``. The json document has ``session_id``, ``response`` and ``stats`` in the real
CLI's shape: ``stats.models.<model>.tokens`` (``prompt``, ``candidates``, ``total``, ``cached``, ``thoughts``,
``tool``) and ``.api`` (``totalRequests``, ``totalErrors``, ``totalLatencyMs``). Gemini reports no cost.
"""

from __future__ import annotations

import json
import sys

import _state

MODEL = "gemini-2.5-pro"


def main(argv: list[str]) -> int:
    fmt, prompt, resume = "text", None, None
    i = 0
    while i < len(argv):
        arg = argv[i]
        nxt = argv[i + 1] if i + 1 < len(argv) else ""
        if arg in ("-p", "--prompt"):
            prompt, i = nxt, i + 1
        elif arg in ("-o", "--output-format"):
            fmt, i = nxt, i + 1
        elif arg in ("-r", "--resume"):
            resume, i = nxt, i + 1
        elif arg in ("-m", "--model"):
            i += 1
        elif not arg.startswith("-") and prompt is None:
            prompt = arg
        i += 1
    if prompt is None:
        print("fake-gemini: interactive mode is not imitated; use -p", file=sys.stderr)
        return 42
    _state.progress("fake-gemini")
    _state.flood()
    _state.maybe_spawn_grandchild()
    _state.wait()
    session_id = _state.latest() if resume == "latest" else resume
    session = (_state.load(session_id) if session_id else None) or _state.new_session()
    session["turns"].append(prompt)
    _state.save(session)
    turn = len(session["turns"])
    answer = f"turn {turn} of session {session['id']}: you said {prompt!r}"
    _, code = _state.knobs()
    if fmt == "json":
        tokens = {"input": 40 * turn, "prompt": 50 * turn, "candidates": 12, "total": 50 * turn + 12 + 3,
                  "cached": 10 * (turn - 1), "thoughts": 3, "tool": 0}  # fmt: skip
        stats = {
            "models": {MODEL: {"api": {"totalRequests": 1, "totalErrors": 0, "totalLatencyMs": 42}, "tokens": tokens}},
            "tools": {"totalCalls": 0, "totalSuccess": 0, "totalFail": 0, "totalDurationMs": 0, "byName": {}},
            "files": {"totalLinesAdded": 0, "totalLinesRemoved": 0},
        }
        doc: dict[str, object] = {"session_id": session["id"], "response": answer, "stats": stats}
        if code:
            doc["error"] = {"type": "FatalError", "message": "fake failure", "code": code}
        print(json.dumps(doc, indent=2), flush=True)
    else:
        print(answer, flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
