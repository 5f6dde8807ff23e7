"""The daemon as a service: lifecycle, single instance per home, socket contract, methods and events.

Tests of what a client sees use the in-process daemon (``daemon`` fixture, :class:`InProcessDaemon`); tests
of the process itself (its exit code on SIGTERM/SIGINT/``daemon.shutdown``, an inherited listening socket,
shutdown under signals) start ``actantd`` as a subprocess (:class:`Daemon`).
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.harness import PYTHON, Daemon, InProcessDaemon, RpcError, make_configs
from tests.helpers import alive, ignored_mask, ignores, instance_procs, kill_all, write_json


def raw_exchange(path: Path, data: bytes, timeout: float = 10.0) -> bytes:
    """Send bytes, half-close, read until the daemon closes or goes quiet."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(path))
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        chunks = []
        while True:
            try:
                chunk = s.recv(65536)
            except (TimeoutError, ConnectionResetError):
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)


def test_ping_and_status(daemon: InProcessDaemon) -> None:
    ping = daemon.call("daemon.ping")
    assert set(ping) == {"version", "pid", "uptimeSeconds"} and ping["pid"] == daemon.pid
    status = daemon.call("daemon.status")
    assert status["home"] == str(daemon.home) and status["socket"] == str(daemon.socket)
    assert status["configErrors"] == []
    assert status["instances"] == {"total": 0, "byStatus": {}}


def test_socket_modes(daemon: InProcessDaemon) -> None:
    assert (daemon.socket.stat().st_mode & 0o777) == 0o600
    assert (daemon.socket.parent.stat().st_mode & 0o777) == 0o700


def test_second_daemon_on_same_home_refuses(daemon: InProcessDaemon) -> None:
    out = subprocess.run(
        [PYTHON, "-m", "actantd", "--home", str(daemon.home), "--configs", str(daemon.configs),
         "--socket", str(daemon.root / "other.sock")],
        capture_output=True, text=True, timeout=60, env=daemon.env(),
    )  # fmt: skip
    assert out.returncode == 1
    assert f"already running for home {daemon.home}" in out.stderr
    assert daemon.call("daemon.ping")["pid"] == daemon.pid


def test_sigterm_exits_zero_removes_socket_and_stops_agents(short_tmp: Path) -> None:
    d = Daemon(short_tmp, make_configs(short_tmp))
    d.start()
    d.call("agent.create", {"name": "a", "template": "sleeper"})
    pid = d.call("agent.start", {"name": "a"})["agent"]["pid"]
    assert d.stop() == 0
    assert not d.socket.exists()
    assert not alive(pid)
    record = json.loads((d.home / "instances/a/.actant.json").read_text())
    assert record["status"] == "Stopped"


def test_shutdown_method(short_tmp: Path) -> None:
    d = Daemon(short_tmp, make_configs(short_tmp))
    d.start()
    assert d.call("daemon.shutdown") == {"ok": True}
    assert d.proc is not None and d.proc.wait(30) == 0
    d.proc = None
    assert not d.socket.exists()


def test_configs_seeded_on_first_start(short_tmp: Path) -> None:
    d = InProcessDaemon(short_tmp, short_tmp / "fresh-configs")
    d.start()
    try:
        names = {t["name"] for t in d.call("template.list")["items"]}
        assert {"code-reviewer", "ci-agent", "demo"} <= names
        assert (short_tmp / "fresh-configs/templates/demo.json").exists()
    finally:
        d.stop()


def test_config_methods(daemon: InProcessDaemon) -> None:
    for kind in ("template", "skill", "prompt", "workflow", "mcp", "backend"):
        items = daemon.call(f"{kind}.list")["items"]
        assert items, kind
        got = daemon.call(f"{kind}.get", {"name": items[0]["name"]})
        assert got["item"]["name"] == items[0]["name"] and got["file"]
    tpl = daemon.call("template.get", {"name": "code-reviewer"})
    assert tpl["item"]["skills"] == ["typescript-expert", "code-review"]
    with pytest.raises(RpcError) as info:
        daemon.call("template.get", {"name": "nope"})
    assert info.value.code == -32001 and info.value.error_code == "TEMPLATE_NOT_FOUND"
    bad = daemon.root / "templates" / "bad.json"
    write_json(bad, {"version": "1.0", "name": "bad", "backend": "custom", "command": ["x"],
                     "skills": ["code-reveiw"]})  # fmt: skip
    res = daemon.call("template.validate", {"path": str(bad)})
    assert res["valid"] is False
    assert any("$.skills[0]: unknown skill 'code-reveiw'" in e for e in res["errors"])
    ok = daemon.call("template.validate", {"path": str(daemon.configs / "templates/demo.json")})
    assert ok == {"valid": True, "errors": [], "warnings": []}
    assert daemon.call("config.validate")["valid"] is True


def test_error_shapes(daemon: InProcessDaemon) -> None:
    with pytest.raises(RpcError) as info:
        daemon.call("agent.status", {"name": "ghost"})
    assert info.value.code == -32003
    assert info.value.error["data"] == {"errorCode": "AGENT_NOT_FOUND", "context": {"agent": "ghost"}}
    with pytest.raises(RpcError) as info:
        daemon.call("agent.create", {"name": "x", "template": "no-such-template"})
    assert info.value.code == -32001
    with pytest.raises(RpcError) as info:
        daemon.call("agent.create", {"name": 5, "template": "demo"})
    assert info.value.code == -32602 and "$.name" in info.value.error["message"]
    with pytest.raises(RpcError) as info:
        daemon.call("no.such.method")
    assert info.value.code == -32601
    for hostile in ("../etc", ".hidden", "a/b", "x" * 200, ""):
        with pytest.raises(RpcError) as info:
            daemon.call("agent.create", {"name": hostile, "template": "demo"})
        assert info.value.error_code == "INVALID_NAME"
    assert sorted(p.name for p in (daemon.home / "instances").iterdir()) == [".corrupted", ".staging", ".trash"]


def test_transition_events_are_persisted_journaled_then_published(daemon: InProcessDaemon) -> None:
    sub = daemon.conn()
    sid = sub.call("events.subscribe", {"agent": "ev", "types": ["transition"]})["subscription"]
    daemon.call("agent.create", {"name": "ev", "template": "sleeper"})
    daemon.call("agent.start", {"name": "ev"})
    daemon.call("agent.stop", {"name": "ev"})
    seen = []
    while len(seen) < 6:
        params = sub.next_notification("event")["params"]
        assert params["subscription"] == sid and params["agent"] == "ev"
        seen.append((params["from"], params["to"]))
    assert seen == [
        ("Created", "Initializing"), ("Initializing", "Ready"), ("Ready", "Starting"),
        ("Starting", "Running"), ("Running", "Stopping"), ("Stopping", "Stopped"),
    ]  # fmt: skip
    history = daemon.call("events.query", {"agent": "ev", "types": ["transition"]})["events"]
    assert [(e["from"], e["to"]) for e in history] == seen
    commands = daemon.call("events.query", {"types": ["command"]})["events"]
    assert [c["method"] for c in commands] == ["agent.create", "agent.start", "agent.stop"]
    assert all(c["outcome"] == "ok" for c in commands)
    assert sub.call("events.unsubscribe", {"subscription": sid}) == {"ok": True}
    sub.close()


def test_content_length_framing_and_batches(daemon: InProcessDaemon) -> None:
    body = json.dumps([
        {"jsonrpc": "2.0", "id": 1, "method": "daemon.ping"},
        {"jsonrpc": "2.0", "method": "daemon.ping"},
        {"jsonrpc": "2.0", "id": 2, "method": "agent.list", "params": {}},
    ]).encode()  # fmt: skip
    reply = raw_exchange(daemon.socket, b"Content-Length: %d\r\n\r\n" % len(body) + body)
    header, _, payload = reply.partition(b"\r\n\r\n")
    assert header.lower().startswith(b"content-length:")
    results = json.loads(payload)
    assert sorted(r["id"] for r in results) == [1, 2]


def test_malformed_frames_keep_connection_usable(daemon: InProcessDaemon) -> None:
    reply = raw_exchange(
        daemon.socket, b'{"jsonrpc": "2.0", "id": 1, bad\n{"jsonrpc":"2.0","id":2,"method":"daemon.ping"}\n'
    )
    lines = [json.loads(line) for line in reply.splitlines()]
    assert lines[0]["error"]["code"] == -32700
    assert lines[1]["id"] == 2 and "result" in lines[1]


def test_oversize_message_is_refused_and_daemon_lives(daemon: InProcessDaemon) -> None:
    big = b'{"jsonrpc":"2.0","id":1,"method":"daemon.ping","params":{"x":"' + b"a" * (9 * 1024 * 1024) + b'"}}\n'
    reply = raw_exchange(daemon.socket, big)
    assert b"error" in reply.splitlines()[0]
    assert daemon.call("daemon.ping")["pid"]


def test_other_uid_is_refused(daemon: InProcessDaemon) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to run a client as another user")
    nobody = pwd.getpwnam("nobody")
    # Open the path up so the kernel lets 'nobody' connect; the daemon's SO_PEERCRED check must refuse it.
    daemon.socket.parent.chmod(0o755)
    daemon.socket.chmod(0o666)
    code = (
        "import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]);"
        's.sendall(b\'{"jsonrpc":"2.0","id":1,"method":"daemon.ping"}\\n\');'
        "print(s.makefile().readline())"
    )
    # The venv's interpreter lives under /root, which 'nobody' cannot enter; the client is stdlib only.
    system_python = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
    out = subprocess.run([system_python, "-c", code, str(daemon.socket)], capture_output=True, text=True,
                         user=nobody.pw_uid, group=nobody.pw_gid, timeout=30)  # fmt: skip
    reply = json.loads(out.stdout)
    assert reply["error"]["data"]["errorCode"] == "PERMISSION_DENIED"


def test_inherited_socket_via_listen_fds(short_tmp: Path) -> None:
    """Socket activation: systemd binds, the daemon takes fd 3 when LISTEN_PID is its own pid."""
    configs = make_configs(short_tmp)
    path = short_tmp / "activated.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen()
    wrapper = (
        "import os,sys; os.dup2(int(sys.argv[1]), 3); os.environ['LISTEN_FDS']='1';"
        "os.environ['LISTEN_PID']=str(os.getpid()); os.execv(sys.executable, [sys.executable] + sys.argv[2:])"
    )
    d = Daemon(short_tmp, configs)
    d.socket = path
    argv = [PYTHON, "-c", wrapper, str(listener.fileno()), "-m", "actantd", "--home", str(d.home),
            "--configs", str(configs), "--socket", str(short_tmp / "unused.sock")]  # fmt: skip
    d.argv = lambda: argv  # type: ignore[method-assign]
    original = subprocess.Popen

    def popen(*args: Any, **kwargs: Any) -> Any:
        kwargs["pass_fds"] = (listener.fileno(),)
        return original(*args, **kwargs)

    subprocess.Popen = popen  # type: ignore[misc]
    try:
        d.start()
    finally:
        subprocess.Popen = original  # type: ignore[misc]
        listener.close()
    try:
        assert d.call("daemon.ping")["pid"] == d.proc.pid  # type: ignore[union-attr]
        assert not (short_tmp / "unused.sock").exists()
    finally:
        d.stop()


def test_hot_reload_rematerializes_and_keeps_last_good(daemon: InProcessDaemon) -> None:
    daemon.call("agent.create", {"name": "rev", "template": "code-reviewer"})
    agents_md = daemon.home / "instances/rev/AGENTS.md"
    assert "code-review" in agents_md.read_text()
    sub = daemon.conn()
    sub.call("events.subscribe", {"types": ["config.*", "instance"]})
    skill = daemon.configs / "skills/code-review.json"
    doc = json.loads(skill.read_text())
    doc["content"] = "UNIQUE-MARKER-123 review carefully."
    t0 = time.monotonic()
    skill.write_text(json.dumps(doc))
    sub.wait_event(lambda e: e["type"] == "instance" and e.get("event") == "synced" and e["agent"] == "rev")
    assert "UNIQUE-MARKER-123" in agents_md.read_text()
    assert time.monotonic() - t0 < 5
    skill.write_text('{"version": "1.0", "name": "code-review", "content": ')  # a partial write
    err = sub.wait_event(lambda e: e["type"] == "config.error")
    assert "skills/code-review.json" in err["message"]
    assert daemon.call("skill.get", {"name": "code-review"})["item"]["content"].startswith("UNIQUE-MARKER-123")
    assert daemon.call("daemon.ping")
    sub.close()


def test_corrupted_instance_quarantined_at_startup(short_tmp: Path) -> None:
    d = InProcessDaemon(short_tmp, make_configs(short_tmp))
    broken = d.home / "instances/broken"
    broken.mkdir(parents=True)
    (broken / ".actant.json").write_text("{oops")
    future = d.home / "instances/future"
    future.mkdir()
    (future / ".actant.json").write_text('{"schemaVersion": 42, "name": "future"}')
    d.start()
    try:
        assert not broken.exists()
        assert len(list((d.home / "instances/.corrupted").iterdir())) == 1
        status = d.call("daemon.status")
        assert status["instancesTooNew"] == {"future": 42}
        q = d.call("events.query", {"types": ["instance"]})["events"]
        assert any(e.get("event") == "quarantined" and e["agent"] == "broken" for e in q)
        with pytest.raises(RpcError) as info:
            d.call("agent.create", {"name": "future", "template": "demo"})
        assert info.value.error_code == "AGENT_EXISTS"
    finally:
        d.stop()


def test_sigint_also_clean(short_tmp: Path) -> None:
    d = Daemon(short_tmp, make_configs(short_tmp))
    d.start()
    assert d.proc is not None
    d.proc.send_signal(signal.SIGINT)
    assert d.proc.wait(30) == 0
    d.proc = None
    assert not d.socket.exists()


def test_no_agent_survives_a_clean_shutdown_even_if_started_during_it(daemon_process: Daemon) -> None:
    """While ``manager.shutdown`` stops agents the socket still takes mutating calls; a start then spawns an
    agent nobody stops (and whose exit nobody watches, ``_closing`` is set) — it outlives "clean" exit 0."""
    daemon = daemon_process
    daemon.call("agent.create", {"name": "slow", "template": "stubborn"})
    late_id = daemon.call("agent.create", {"name": "late", "template": "sleeper"})["agent"]["instanceId"]
    daemon.call("agent.start", {"name": "slow"})
    conn = daemon.conn()
    try:
        conn.call("events.subscribe", {"agent": "slow", "types": ["transition"]})
        assert daemon.proc is not None
        daemon.proc.send_signal(signal.SIGTERM)
        conn.wait_event(lambda e: e["to"] == "Stopping")
        with contextlib.suppress(RpcError, ConnectionError, OSError):
            conn.call("agent.start", {"name": "late", "wait": False})
    finally:
        conn.close()
    assert daemon.proc.wait(30) == 0
    daemon.proc = None
    left = instance_procs(late_id)
    kill_all(left)
    assert not left, "an agent started during shutdown outlived the daemon"


class _BackgroundJobDaemon(Daemon):
    """``actantd`` started the way a shell starts a background job: SIGINT and SIGQUIT ignored."""

    def argv(self) -> list[str]:
        return ["bash", "-c", 'trap "" INT QUIT; exec "$@"', "bash", *super().argv()]


def test_agents_start_with_default_signals_when_the_daemon_inherited_ignored_ones(short_tmp: Path) -> None:
    """An ignored signal survives exec: without the reset an agent told to stop with SIGINT never hears it."""
    d = _BackgroundJobDaemon(short_tmp, make_configs(short_tmp))
    d.start()
    try:
        daemon_mask = ignored_mask(d.pid)
        d.call("agent.create", {"name": "bg", "template": "sleeper"})
        pid = d.call("agent.start", {"name": "bg"})["agent"]["pid"]
        agent_mask = ignored_mask(pid)
        for sig in (signal.SIGINT, signal.SIGQUIT):
            assert not ignores(agent_mask, sig), f"agent ignores {sig.name}: SigIgn {agent_mask:#x}"
            assert not ignores(daemon_mask, sig), f"daemon still ignores {sig.name}: SigIgn {daemon_mask:#x}"
    finally:
        assert d.stop() == 0


def test_the_log_guard_follows_agents_as_they_start_and_stop(daemon: InProcessDaemon) -> None:
    """The guard's set changes with each transition (nothing rebuilds it on a timer): an agent's two log files
    are guarded from its start to its stop."""
    guard = daemon.daemon.log_guard
    logs = {daemon.home / "logs" / "a" / f"{stream}.log" for stream in ("stdout", "stderr")}
    daemon.call("agent.create", {"name": "a", "template": "sleeper"})
    daemon.call("agent.start", {"name": "a"})
    assert guard.wait_idle()
    assert logs <= guard.guarded
    daemon.call("agent.stop", {"name": "a"})
    assert guard.wait_idle()
    assert not logs & guard.guarded
