"""The stdlib JSON-RPC client against a real Unix socket: calls, typed errors, streams, and connection failures."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from actantctl.client import Client, ClientTimeout, ConnectionLost, DaemonNotRunning, ProtocolError
from actantd.errors import AgentLaunch, AgentNotFound
from tests.cli.fake_daemon import FakeDaemon, send


@pytest.fixture
def fake(short_tmp: Path) -> Iterator[FakeDaemon]:
    with FakeDaemon(short_tmp / "d.sock") as daemon:
        yield daemon


def test_call_sends_jsonrpc_and_returns_result(fake: FakeDaemon) -> None:
    fake.answer("agent.list", lambda params: {"agents": [], "echo": params})
    with Client(fake.path) as client:
        assert client.call("agent.list", {"status": "Running"}) == {"agents": [], "echo": {"status": "Running"}}
        assert client.call("daemon.ping")["version"] == "0.1.0"  # same connection, next id
    first, second = fake.requests
    assert first == {"jsonrpc": "2.0", "id": 1, "method": "agent.list", "params": {"status": "Running"}}
    assert second["id"] == 2 and second["params"] == {}


def test_daemon_error_becomes_typed_exception(fake: FakeDaemon) -> None:
    fake.fail("agent.start", AgentLaunch("reviewer exited at once", reason="exit 1", stderrTail=["boom"]))
    fake.fail("agent.status", AgentNotFound("no agent named 'x'", name="x"))
    client = Client(fake.path)
    with pytest.raises(AgentLaunch) as launch:
        client.call("agent.start", {"name": "reviewer"})
    assert launch.value.context == {"reason": "exit 1", "stderrTail": ["boom"]}
    with pytest.raises(AgentNotFound):
        client.call("agent.status", {"name": "x"})
    client.close()


def test_no_socket_file_means_not_running(short_tmp: Path) -> None:
    path = short_tmp / "missing.sock"
    with pytest.raises(DaemonNotRunning) as info:
        Client(path).call("daemon.ping")
    assert f"no socket at {path}" in info.value.message
    assert "actantctl daemon start" in info.value.message


def test_stale_socket_file_means_not_running(short_tmp: Path) -> None:
    path = short_tmp / "stale.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    sock.close()  # the file stays, nobody listens: what a crashed daemon leaves
    with pytest.raises(DaemonNotRunning):
        Client(path).call("daemon.ping")


def _one_shot_server(path: Path, reply: bytes | None) -> threading.Thread:
    """Accept one connection, read one request, write ``reply`` raw (None: say nothing), then close."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(1)

    def serve() -> None:
        conn, _ = listener.accept()
        conn.makefile("rb").readline()
        if reply is not None:
            conn.sendall(reply)
            conn.close()
        else:
            conn.recv(1)  # hold the connection open until the client gives up
            conn.close()
        listener.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return thread


def test_connection_closed_before_answer(short_tmp: Path) -> None:
    thread = _one_shot_server(short_tmp / "a.sock", b"")
    with pytest.raises(ConnectionLost, match=r"before answering agent\.list"):
        Client(short_tmp / "a.sock").call("agent.list")
    thread.join(5)


def test_garbled_reply(short_tmp: Path) -> None:
    thread = _one_shot_server(short_tmp / "a.sock", b"not json\n")
    with pytest.raises(ProtocolError):
        Client(short_tmp / "a.sock").call("agent.list")
    thread.join(5)


def test_timeout(short_tmp: Path) -> None:
    thread = _one_shot_server(short_tmp / "a.sock", None)
    with pytest.raises(ClientTimeout, match=r"did not answer daemon\.ping within 0\.2s"):
        Client(short_tmp / "a.sock", timeout=0.2).call("daemon.ping")
    thread.join(5)


def test_call_skips_notifications_and_other_ids(short_tmp: Path) -> None:
    path = short_tmp / "a.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(1)

    def serve() -> None:
        conn, _ = listener.accept()
        request = json.loads(conn.makefile("rb").readline())
        send(conn, {"jsonrpc": "2.0", "method": "event", "params": {"type": "x"}})
        send(conn, {"jsonrpc": "2.0", "id": 999, "result": "not mine"})
        send(conn, {"jsonrpc": "2.0", "id": request["id"], "result": {"ok": True}})
        conn.close()
        listener.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert Client(path).call("x.y") == {"ok": True}
    thread.join(5)


def test_stream_yields_notifications_of_its_subscription(fake: FakeDaemon) -> None:
    fake.answer("events.subscribe", {"subscription": "s1"})
    fake.push_after(
        "events.subscribe",
        [
            ("event", {"subscription": "s1", "type": "transition", "agent": "a", "from": "Starting", "to": "Running"}),
            ("event", {"subscription": "other", "type": "transition"}),
            ("log", {"subscription": "s1", "lines": ["wrong method"]}),
            ("event", {"subscription": "s1", "type": "config", "agent": None}),
        ],
    )
    stream = Client(fake.path).stream("events.subscribe", {"agent": "a"}, "event")
    assert stream.result == {"subscription": "s1"}
    assert [e["type"] for e in stream] == ["transition", "config"]
    assert stream.closed_by_peer


def test_stream_keeps_notifications_that_overtake_the_answer(short_tmp: Path) -> None:
    path = short_tmp / "a.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(1)

    def serve() -> None:
        conn, _ = listener.accept()
        request = json.loads(conn.makefile("rb").readline())
        send(conn, {"jsonrpc": "2.0", "method": "log", "params": {"lines": ["early"]}})
        send(conn, {"jsonrpc": "2.0", "id": request["id"], "result": {"lines": ["tail"]}})
        send(conn, {"jsonrpc": "2.0", "method": "log", "params": {"lines": ["late"]}})
        conn.close()
        listener.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    stream = Client(path).stream("agent.logs", {"name": "a", "follow": True}, "log")
    assert stream.result == {"lines": ["tail"]}
    assert [n["lines"] for n in stream] == [["early"], ["late"]]
    thread.join(5)


def test_stream_error_answer_raises(fake: FakeDaemon) -> None:
    fake.fail("agent.logs", AgentNotFound("no agent named 'x'"))
    with pytest.raises(AgentNotFound):
        Client(fake.path).stream("agent.logs", {"name": "x", "follow": True}, "log")
