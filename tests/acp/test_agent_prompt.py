"""``agent prompt`` end to end: a real daemon keeping the fake ACP agent's session, through RPC and the CLI."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from tests.e2e.test_cli import ctl
from tests.harness import Daemon, RpcError


def _start(d: Daemon, name: str, template: str = "fake-acp", **env: str) -> None:
    params: dict[str, Any] = {"name": name, "template": template}
    if env:
        params["overrides"] = {"env": env}
    d.call("agent.create", params)
    conn = d.conn()
    try:
        conn.call("events.subscribe", {"agent": name, "types": ["acp"]})
        d.call("agent.start", {"name": name})
        ready = conn.wait_event(lambda e: e.get("event") in ("sessionReady", "handshakeFailed"))
    finally:
        conn.close()
    assert ready["event"] == "sessionReady", ready


def test_prompt_streams_updates_and_resumes_after_a_daemon_restart(fake_daemon: Daemon) -> None:
    d = fake_daemon
    _start(d, "p1")
    watcher = d.conn()
    watcher.call("events.subscribe", {"agent": "p1", "types": ["session.*", "prompt"]})
    done = ctl(d.socket, "agent", "prompt", "p1", "hello acp")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("turn 1 of session") and "'hello acp'" in done.stdout
    assert "stop end_turn" in done.stderr and "totalTokens 110" in done.stderr
    update = watcher.wait_event(lambda e: e["type"] == "session.update")  # event subscribers see the stream too
    assert update["update"]["sessionUpdate"] == "agent_thought_chunk"
    watcher.close()
    status = d.call("agent.status", {"name": "p1"})["agent"]
    session_id = status["acp"]["sessionId"]
    assert status["acpSessionId"] == session_id and status["acp"]["alive"] is True

    # The daemon dies; the agent's stdio goes with it. The next daemon starts a new agent process and
    # session/load's the saved session: the conversation goes on.
    old_pid = status["pid"]
    d.kill()
    d.start()
    conn = d.conn()
    try:
        conn.call("events.subscribe", {"agent": "p1", "types": ["acp"]})
        status = d.call("agent.status", {"name": "p1"})["agent"]
        if status.get("acp") is None or status["acp"]["sessionId"] is None:
            conn.wait_event(lambda e: e.get("event") == "sessionReady")
    finally:
        conn.close()
    status = d.call("agent.status", {"name": "p1"})["agent"]
    assert status["pid"] != old_pid and status["acp"]["resumed"] is True and status["acp"]["sessionId"] == session_id
    result = json.loads(ctl(d.socket, "agent", "prompt", "p1", "still there?", "--json").stdout)
    assert result["text"].startswith(f"turn 2 of session {session_id}") and result["resumed"] is True

    # A stop and a start resume it as well.
    d.call("agent.stop", {"name": "p1"})
    conn = d.conn()
    try:
        conn.call("events.subscribe", {"agent": "p1", "types": ["acp"]})
        d.call("agent.start", {"name": "p1"})
        conn.wait_event(lambda e: e.get("event") == "sessionReady")
    finally:
        conn.close()
    result = json.loads(ctl(d.socket, "agent", "prompt", "p1", "third", "--json").stdout)
    assert result["text"].startswith(f"turn 3 of session {session_id}")
    history = d.call("events.query", {"agent": "p1", "types": ["prompt"]})["events"]
    assert [e["stopReason"] for e in history] == ["end_turn"] * 3


def test_permission_by_policy(fake_daemon: Daemon) -> None:
    d = fake_daemon
    _start(d, "open", "fake-acp-permissive")  # "permissions": "Permissive": allowed without asking anyone
    result = d.call("agent.prompt", {"name": "open", "text": "please edit"})
    assert "(permission: allowed)" in result["text"]
    # Standard policy, nobody listening: an edit is denied at once.
    _start(d, "strict")
    result = d.call("agent.prompt", {"name": "strict", "text": "please edit"})
    assert "(permission: denied)" in result["text"]
    for name, by, allowed in (("open", "policy", True), ("strict", "nobody", False)):
        resolved = d.call("events.query", {"agent": name, "types": ["permission.resolved"]})["events"]
        assert (resolved[-1]["by"], resolved[-1]["allowed"]) == (by, allowed)


def test_permission_answered_by_a_subscribed_client(fake_daemon: Daemon) -> None:
    d = fake_daemon
    _start(d, "ed")
    editor = d.conn()
    editor.call("events.subscribe", {"agent": "ed", "types": ["permission.*"]})
    answered: dict[str, Any] = {}

    def answer() -> None:
        request = editor.wait_event(lambda e: e["type"] == "permission.requested")
        answered.update(editor.call("agent.permission.respond", {"name": "ed", "permission": request["permission"],
                                                                 "optionId": "allow-once"}))  # fmt: skip

    thread = threading.Thread(target=answer)
    thread.start()
    try:
        result = d.call("agent.prompt", {"name": "ed", "text": "edit the file", "permissionTimeoutSeconds": 20})
    finally:
        thread.join(30)
        editor.close()
    assert "(permission: allowed)" in result["text"] and answered["allowed"] is True
    resolved = d.call("events.query", {"agent": "ed", "types": ["permission.resolved"]})["events"]
    assert resolved[-1]["by"] == "client"
    with pytest.raises(RpcError) as info:
        d.call("agent.permission.respond", {"name": "ed", "permission": answered["permission"], "allow": True})
    assert info.value.error_code == "INVALID_PARAMS"


def test_prompt_caller_answers_and_errors_are_clear(fake_daemon: Daemon) -> None:
    d = fake_daemon
    _start(d, "self")
    conn = d.conn()
    try:
        conn.send({"jsonrpc": "2.0", "id": 1, "method": "agent.prompt",
                   "params": {"name": "self", "text": "edit me", "answerPermissions": True}})  # fmt: skip
        note = conn.next_notification("prompt.permission")["params"]
        other = d.conn()
        other.call("agent.permission.respond", {"name": "self", "permission": note["permission"], "allow": False})
        other.close()
        while True:
            msg = conn.read()
            if msg.get("id") == 1:
                break
    finally:
        conn.close()
    assert "(permission: denied)" in msg["result"]["text"]
    d.call("agent.create", {"name": "plain", "template": "sleeper"})
    with pytest.raises(RpcError) as info:
        d.call("agent.prompt", {"name": "plain", "text": "hi"})
    assert info.value.error_code == "NOT_SUPPORTED"
    d.call("agent.stop", {"name": "self"})
    with pytest.raises(RpcError) as info:
        d.call("agent.prompt", {"name": "self", "text": "hi"})
    assert info.value.error_code == "ACP_ERROR" and "start it first" in str(info.value)
