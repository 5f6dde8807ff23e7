"""A stand-in ACP agent (Agent Client Protocol over stdio, newline-delimited JSON-RPC), stdlib only, no model.

What it answers, in the shapes of the ACP schema (v0.10):

- ``initialize`` → ``protocolVersion`` 1, ``agentCapabilities.loadSession: true`` (``FAKE_ACP_NO_LOAD=1``
  says false), ``agentInfo``;
- ``session/new {cwd, mcpServers}`` → ``{sessionId}``; the session (turns, MCP server names) is kept in
  ``$FAKE_AGENT_STATE`` so that a new process can ``session/load`` it;
- ``session/load {sessionId, cwd, mcpServers}`` → replays the history as ``session/update`` notifications
  (``user_message_chunk`` / ``agent_message_chunk``), then ``{}``; an unknown id is error -32002;
- ``session/prompt {sessionId, prompt}`` → ``agent_thought_chunk``, a ``tool_call``; when the prompt text
  contains "edit" it asks ``session/request_permission`` (options allow-once / reject-once) and reports the
  tool call completed or failed; then ``agent_message_chunk`` "turn N …", and returns
  ``{stopReason: "end_turn", usage: {inputTokens, outputTokens, totalTokens}}`` (usage is the unstable field);
  ``FAKE_SLEEP`` delays the answer, and ``session/cancel`` then ends the turn with ``stopReason: "cancelled"``.
"""

from __future__ import annotations

import json
import os
import select
import sys
import time
from typing import Any

import _state

_next_id = 0
_pending: list[dict[str, Any]] = []
_cancelled: set[str] = set()


def send(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps({"jsonrpc": "2.0", **message}) + "\n")
    sys.stdout.flush()


def read() -> dict[str, Any] | None:
    line = sys.stdin.readline()
    if not line:
        return None
    return json.loads(line)  # type: ignore[no-any-return]


def update(session_id: str, body: dict[str, Any]) -> None:
    send({"method": "session/update", "params": {"sessionId": session_id, "update": body}})


def text_chunk(kind: str, text: str) -> dict[str, Any]:
    return {"sessionUpdate": kind, "content": {"type": "text", "text": text}}


def request(method: str, params: dict[str, Any]) -> dict[str, Any]:
    """Send a request to the client and wait for its answer; other messages meanwhile are queued."""
    global _next_id
    _next_id += 1
    rid = _next_id
    send({"id": rid, "method": method, "params": params})
    while True:
        msg = read()
        if msg is None:
            raise SystemExit(0)
        if msg.get("id") == rid and "method" not in msg:
            return msg
        if msg.get("method") == "session/cancel":
            _cancelled.add(msg.get("params", {}).get("sessionId", ""))
        else:
            _pending.append(msg)


def interruptible_sleep(seconds: float, session_id: str) -> bool:
    """Sleep, but notice a ``session/cancel``; True when cancelled."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        ready, _, _ = select.select([sys.stdin], [], [], max(0.0, deadline - time.monotonic()))
        if ready:
            msg = read()
            if msg is None:
                raise SystemExit(0)
            if msg.get("method") == "session/cancel":
                _cancelled.add(msg.get("params", {}).get("sessionId", ""))
            else:
                _pending.append(msg)
        if session_id in _cancelled:
            return True
    return session_id in _cancelled


def prompt_text(blocks: list[dict[str, Any]]) -> str:
    return "".join(b.get("text", "") for b in blocks if isinstance(b, dict) and b.get("type") == "text")


def on_prompt(params: dict[str, Any]) -> dict[str, Any]:
    sid = params["sessionId"]
    session = _state.load(sid)
    if session is None:
        raise LookupError(sid)
    text = prompt_text(params.get("prompt") or [])
    _cancelled.discard(sid)
    update(sid, text_chunk("agent_thought_chunk", "thinking about it"))
    seconds, _ = _state.knobs()
    if seconds and interruptible_sleep(seconds, sid):
        return {"stopReason": "cancelled"}
    outcome = "none"
    if "edit" in text:
        call = {"toolCallId": "call_1", "title": "Edit notes.txt", "kind": "edit", "status": "pending",
                "rawInput": {"path": "notes.txt"}}  # fmt: skip
        update(sid, {"sessionUpdate": "tool_call", **call})
        answer = request("session/request_permission", {
            "sessionId": sid, "toolCall": call,
            "options": [{"optionId": "allow-once", "name": "Allow", "kind": "allow_once"},
                        {"optionId": "reject-once", "name": "Reject", "kind": "reject_once"}],
        })  # fmt: skip
        picked = (answer.get("result") or {}).get("outcome") or {}
        allowed = picked.get("outcome") == "selected" and picked.get("optionId") == "allow-once"
        outcome = "allowed" if allowed else ("cancelled" if picked.get("outcome") == "cancelled" else "denied")
        if allowed:
            with open("notes.txt", "a") as handle:
                handle.write(text + "\n")
        update(sid, {"sessionUpdate": "tool_call_update", "toolCallId": "call_1",
                     "status": "completed" if allowed else "failed"})  # fmt: skip
    session["turns"].append({"user": text})
    turn = len(session["turns"])
    reply = f"turn {turn} of session {sid}: you said {text!r} (permission: {outcome})"
    session["turns"][-1]["agent"] = reply
    _state.save(session)
    update(sid, text_chunk("agent_message_chunk", reply))
    tokens_in, tokens_out = 100 * turn, 10
    return {
        "stopReason": "end_turn",
        "usage": {"inputTokens": tokens_in, "outputTokens": tokens_out, "totalTokens": tokens_in + tokens_out},
    }


def handle(msg: dict[str, Any]) -> None:
    method, params, rid = msg.get("method"), msg.get("params") or {}, msg.get("id")
    if method == "session/cancel":
        _cancelled.add(params.get("sessionId", ""))
        return
    try:
        if method == "initialize":
            result: Any = {
                "protocolVersion": 1,
                "agentCapabilities": {"loadSession": os.environ.get("FAKE_ACP_NO_LOAD") != "1",
                                      "mcpCapabilities": {"http": True, "sse": False},
                                      "promptCapabilities": {"image": False, "audio": False,
                                                             "embeddedContext": False}},
                "agentInfo": {"name": "fake-acp", "title": "Fake ACP agent", "version": "1.0.0"},
                "authMethods": [],
            }  # fmt: skip
        elif method == "session/new":
            session = _state.new_session()
            session["mcpServers"] = [s.get("name") for s in params.get("mcpServers") or []]
            session["cwd"] = params.get("cwd")
            _state.save(session)
            result = {"sessionId": session["id"]}
        elif method == "session/load":
            session = _state.load(params.get("sessionId", ""))
            if session is None:
                send({"id": rid, "error": {"code": -32002, "message": "Resource not found",
                                           "data": {"sessionId": params.get("sessionId")}}})  # fmt: skip
                return
            for turn in session["turns"]:
                update(session["id"], text_chunk("user_message_chunk", turn["user"]))
                update(session["id"], text_chunk("agent_message_chunk", turn.get("agent", "")))
            result = {}
        elif method == "session/prompt":
            result = on_prompt(params)
        else:
            if rid is not None:
                send({"id": rid, "error": {"code": -32601, "message": f"Method not found: {method}"}})
            return
    except LookupError:
        send({"id": rid, "error": {"code": -32002, "message": "Resource not found"}})
        return
    if rid is not None:
        send({"id": rid, "result": result})


def main() -> int:
    print(f"fake-acp: ready (pid {os.getpid()})", file=sys.stderr, flush=True)
    while True:
        msg = _pending.pop(0) if _pending else read()
        if msg is None:
            return 0
        handle(msg)


if __name__ == "__main__":
    sys.exit(main())
