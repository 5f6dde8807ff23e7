"""``agent run`` end to end: a real daemon running each fake backend, through the RPC and the real CLI."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from tests.e2e.test_cli import ctl
from tests.harness import Daemon, RpcError

BACKENDS = ["fake-claude", "fake-codex", "fake-gemini"]


def _create(d: Daemon, name: str, template: str, **env: str) -> None:
    params: dict[str, Any] = {"name": name, "template": template}
    if env:
        params["overrides"] = {"env": env}
    d.call("agent.create", params)


@pytest.mark.parametrize("backend", BACKENDS)
def test_run_shows_output_cost_and_history_then_continues(fake_daemon: Daemon, backend: str) -> None:
    d = fake_daemon
    _create(d, "a1", backend)
    done = ctl(d.socket, "agent", "run", "a1", "hello there")
    assert done.returncode == 0, done.stderr
    assert "turn 1 of session" in done.stdout and "hello there" in done.stdout
    assert "exit 0" in done.stderr and "tokens input" in done.stderr
    if backend == "fake-claude":
        assert "cost $0.0125" in done.stderr

    again = ctl(d.socket, "agent", "run", "a1", "and again", "--continue", "--json")
    assert again.returncode == 0, again.stderr
    result = json.loads(again.stdout)
    assert "turn 2 of session" in result["result"] and result["continued"] is True
    assert result["exitCode"] == 0 and result["tokens"]["input"] > 0

    # The session id survives a daemon restart: the record keeps it.
    d.stop()
    d.start()
    third = ctl(d.socket, "agent", "run", "a1", "third", "--continue", "--json")
    assert json.loads(third.stdout)["result"].startswith("turn 3 of session " + result["sessionId"])

    history = json.loads(ctl(d.socket, "history", "a1", "--runs", "--json").stdout)
    rows = history["events"]
    assert [r["type"] for r in rows] == ["execution"] * 3
    assert rows[0]["promptPreview"] == "hello there" and rows[0]["exitCode"] == 0 and rows[0]["outputBytes"] > 0
    assert rows[1]["sessionId"] == result["sessionId"] and rows[1]["continued"] is True
    totals = history["totals"]["a1"]
    assert totals["runs"] == 3 and totals["failed"] == 0 and totals["tokens"]["input"] > 0
    if backend == "fake-claude":
        assert totals["costUsd"] == pytest.approx(0.0125 + 0.025 + 0.0375)
    else:
        assert totals["costUsd"] is None  # Codex and Gemini report no cost
    text = ctl(d.socket, "history", "a1").stdout
    assert "Totals of runs per agent" in text and "a1" in text and "exit 0" in text


def test_run_streams_log_notifications(fake_daemon: Daemon) -> None:
    _create(fake_daemon, "s1", "fake-claude")
    conn = fake_daemon.conn()
    try:
        result = conn.call("agent.run", {"name": "s1", "prompt": "stream please"})
        lines = [(n["params"]["stream"], line) for n in conn.notifications if n["method"] == "log"
                 for line in n["params"]["lines"]]  # fmt: skip
    finally:
        conn.close()
    assert ("stderr", "fake-claude: working (1/3)") in lines
    assert any(stream == "stdout" and '"total_cost_usd"' in line for stream, line in lines)
    assert result["costUsd"] == 0.0125 and result["sessionId"]


def test_timeout_kills_and_says_so(fake_daemon: Daemon) -> None:
    _create(fake_daemon, "slow", "fake-codex", FAKE_SLEEP="60", FAKE_GRANDCHILD="1")
    done = ctl(fake_daemon.socket, "agent", "run", "slow", "take your time", "--timeout", "1")
    assert done.returncode == 1
    assert "did not finish within 1" in done.stderr and "stopped" in done.stderr
    rows = fake_daemon.call("events.query", {"agent": "slow", "types": ["execution"]})["events"]
    assert rows[-1]["timedOut"] is True and rows[-1]["exitCode"] is None


def test_second_run_of_one_agent_is_refused(fake_daemon: Daemon) -> None:
    _create(fake_daemon, "busy", "fake-gemini", FAKE_SLEEP="3")
    first: dict[str, Any] = {}
    started = threading.Event()

    def long_run() -> None:
        conn = fake_daemon.conn()
        try:
            conn.send({"jsonrpc": "2.0", "id": 1, "method": "agent.run", "params": {"name": "busy", "prompt": "1"}})
            started.set()
            while True:
                msg = conn.read()
                if msg.get("id") == 1:
                    first.update(msg)
                    return
        finally:
            conn.close()

    thread = threading.Thread(target=long_run)
    thread.start()
    started.wait(10)
    other = fake_daemon.conn()
    try:
        # Wait until the first run is visibly under way (its first log line), then try a second one.
        other.call("events.subscribe", {"agent": "busy"})
        with pytest.raises(RpcError) as info:
            for _ in range(100):
                other.call("agent.run", {"name": "busy", "prompt": "2", "timeoutSeconds": 30})
        assert info.value.error_code == "AGENT_BUSY" and "busy with a run" in str(info.value)
    finally:
        other.close()
        thread.join(30)
    assert first["result"]["exitCode"] == 0


def test_run_errors_are_clear(fake_daemon: Daemon) -> None:
    _create(fake_daemon, "fresh", "fake-claude")
    with pytest.raises(RpcError) as info:
        fake_daemon.call("agent.run", {"name": "fresh", "prompt": "x", "continue": True})
    assert info.value.error_code == "INVALID_PARAMS" and "no earlier run" in str(info.value)
    fake_daemon.call("agent.create", {"name": "svc", "template": "sleeper"})
    with pytest.raises(RpcError) as info:
        fake_daemon.call("agent.run", {"name": "svc", "prompt": "x"})
    assert info.value.error_code == "NOT_SUPPORTED" and "no 'run' argv" in str(info.value)


def test_daemon_shutdown_stops_a_run_in_progress(fake_daemon: Daemon) -> None:
    from actantd.supervisor import kill

    d = fake_daemon
    _create(d, "long", "fake-claude", FAKE_SLEEP="120", FAKE_GRANDCHILD="1")
    marker = d.call("agent.status", {"name": "long"})["agent"]["instanceId"] + ".run"
    conn = d.conn()
    conn.send({"jsonrpc": "2.0", "id": 1, "method": "agent.run", "params": {"name": "long", "prompt": "p"}})
    conn.next_notification("log")  # under way
    with pytest.raises(RpcError) as info:
        d.call("agent.destroy", {"name": "long", "force": True})
    assert info.value.error_code == "AGENT_BUSY"
    assert d.stop() == 0
    conn.close()
    assert kill.find_instance_processes(marker) == []
