"""The socket server end to end: real Unix sockets, an in-process server, raw and asyncio clients."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import pwd
import socket
import stat
import sys
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import uvloop

from actantd.errors import DaemonBusy
from actantd.rpc.framing import Framing
from actantd.rpc.protocol import CallContext, Dispatcher
from actantd.rpc.server import Connection, RpcServer, inherited_listen_socket
from tests.helpers import until

REPO = Path(__file__).resolve().parents[2]
MIB = 1024 * 1024


# -------------------------------------------------------------------------------------------------- helpers


class Client:
    """A tiny asyncio JSON-RPC client speaking either framing, for tests only."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, framing: Framing) -> None:
        self.reader, self.writer, self.framing = reader, writer, framing
        self._next = 0

    @classmethod
    async def connect(cls, path: Path, framing: Framing = Framing.NDJSON) -> Client:
        reader, writer = await asyncio.open_unix_connection(os.fspath(path), limit=64 * MIB)
        return cls(reader, writer, framing)

    def frame(self, message: Any) -> bytes:
        body = message if isinstance(message, bytes) else json.dumps(message).encode()
        if self.framing is Framing.CONTENT_LENGTH:
            return b"Content-Length: %d\r\n\r\n%b" % (len(body), body)
        return body + b"\n"

    async def send(self, message: Any) -> None:
        self.writer.write(self.frame(message))
        await self.writer.drain()

    async def recv(self) -> Any:
        if self.framing is Framing.CONTENT_LENGTH:
            head = await self.reader.readuntil(b"\r\n\r\n")
            length = int(head.split(b":", 1)[1].split(b"\r\n", 1)[0])
            return json.loads(await self.reader.readexactly(length))
        line = await self.reader.readline()
        if not line:
            raise EOFError
        return json.loads(line)

    async def request(self, method: str, params: Any = None) -> Any:
        self._next += 1
        msg: dict[str, Any] = {"jsonrpc": "2.0", "id": self._next, "method": method}
        if params is not None:
            msg["params"] = params
        await self.send(msg)
        return await self.recv()

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


def make_dispatcher() -> Dispatcher:
    d = Dispatcher()
    gates: defaultdict[str, asyncio.Event] = defaultdict(asyncio.Event)

    @d.register("ping")
    async def ping(params: dict[str, Any], ctx: CallContext) -> Any:
        return {"pong": True}

    @d.register("echo")
    async def echo(params: dict[str, Any], ctx: CallContext) -> Any:
        return params

    @d.register("whoami")
    async def whoami(params: dict[str, Any], ctx: CallContext) -> Any:
        return {"uid": ctx.peer_uid, "pid": ctx.peer_pid, "gid": ctx.peer_gid}

    @d.register("slow")
    async def slow(params: dict[str, Any], ctx: CallContext) -> Any:
        await gates[params.get("gate", "")].wait()
        return "slow"

    @d.register("release")
    async def release(params: dict[str, Any], ctx: CallContext) -> Any:
        gates[params.get("gate", "")].set()
        return "released"

    @d.register("big")
    async def big(params: dict[str, Any], ctx: CallContext) -> Any:
        return "x" * int(params["size"])

    @d.register("subscribe")
    async def subscribe(params: dict[str, Any], ctx: CallContext) -> Any:
        conn = ctx.connection
        assert conn is not None
        conn.add_close_callback(lambda: CLOSED.append(params.get("tag")))
        for i in range(int(params.get("events", 0))):
            conn.notify("event", {"i": i})
        return "subscribed"

    return d


CLOSED: list[Any] = []


@pytest.fixture
async def server(short_tmp: Path) -> AsyncIterator[RpcServer]:
    CLOSED.clear()
    srv = RpcServer(make_dispatcher(), short_tmp / "run" / "actantd.sock")
    await srv.start()
    try:
        yield srv
    finally:
        await srv.close()


def sock_path(srv: RpcServer) -> Path:
    assert srv.path is not None
    return srv.path


async def wait_until_closed(srv: RpcServer, count: int = 0) -> None:
    await until(lambda: len(srv.connections) <= count)


def recv_all_blocking(sock: socket.socket) -> bytes:
    chunks = []
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


# -------------------------------------------------------------------------------------------- basic calls


@pytest.mark.parametrize("framing", list(Framing))
async def test_both_framings_round_trip(server: RpcServer, framing: Framing) -> None:
    client = await Client.connect(sock_path(server), framing)
    try:
        assert (await client.request("ping"))["result"] == {"pong": True}
        reply = await client.request("echo", {"text": "multi\nline ünïcode"})
        assert reply["result"] == {"text": "multi\nline ünïcode"}
        who = (await client.request("whoami"))["result"]
        assert who == {"uid": os.getuid(), "pid": os.getpid(), "gid": os.getgid()}
    finally:
        await client.close()


async def test_header_variants_on_one_connection(server: RpcServer) -> None:
    client = await Client.connect(sock_path(server), Framing.CONTENT_LENGTH)
    try:
        body = b'{"jsonrpc":"2.0","id":1,"method":"ping"}'
        variants = [
            b"content-length: %d\r\n\r\n" % len(body),
            b"Content-Type: application/vscode-jsonrpc; charset=utf-8\r\nContent-Length:%d\r\n\r\n" % len(body),
            b"CONTENT-LENGTH: %d   \r\nX-Other: 1\r\n\r\n" % len(body),
        ]
        for header in variants:
            client.writer.write(header + body)
            assert (await client.recv())["result"] == {"pong": True}
    finally:
        await client.close()


async def test_malformed_messages_keep_the_connection_usable(server: RpcServer) -> None:
    client = await Client.connect(sock_path(server))
    try:
        await client.send(b'{"jsonrpc": "2.0", "method": ')
        assert (await client.recv())["error"]["code"] == -32700
        await client.send({"jsonrpc": "2.0", "method": 12, "id": 3})
        reply = await client.recv()
        assert reply["error"]["code"] == -32600 and reply["id"] == 3
        await client.send(b"not json at all")
        assert (await client.recv())["error"]["code"] == -32700
        assert (await client.request("ping"))["result"] == {"pong": True}
    finally:
        await client.close()


async def test_notifications_and_batches(server: RpcServer) -> None:
    client = await Client.connect(sock_path(server))
    try:
        await client.send({"jsonrpc": "2.0", "method": "ping"})  # notification: no reply
        await client.send([{"jsonrpc": "2.0", "method": "ping"}, {"jsonrpc": "2.0", "method": "echo"}])  # silent
        await client.send([])
        empty = await client.recv()
        assert empty["error"]["code"] == -32600 and empty["id"] is None
        await client.send([{"jsonrpc": "2.0", "id": "a", "method": "ping"}, {"jsonrpc": "2.0", "method": "ping"}, 5])
        batch = await client.recv()
        assert isinstance(batch, list) and len(batch) == 2
        assert batch[0] == {"jsonrpc": "2.0", "id": "a", "result": {"pong": True}}
        assert batch[1]["error"]["code"] == -32600
        # Nothing else is pending: the next reply is the next request's.
        assert (await client.request("echo", {"n": 1}))["result"] == {"n": 1}
    finally:
        await client.close()


async def test_slow_request_does_not_hold_back_a_fast_one(server: RpcServer) -> None:
    client = await Client.connect(sock_path(server))
    try:
        await client.send({"jsonrpc": "2.0", "id": "slow", "method": "slow"})
        await client.send({"jsonrpc": "2.0", "id": "fast", "method": "ping"})
        assert (await asyncio.wait_for(client.recv(), 5))["id"] == "fast"
        await client.send({"jsonrpc": "2.0", "id": "release", "method": "release"})
        rest = {(await client.recv())["id"], (await client.recv())["id"]}
        assert rest == {"release", "slow"}
    finally:
        await client.close()


async def test_notify_and_close_callbacks(server: RpcServer) -> None:
    client = await Client.connect(sock_path(server))
    first = await client.request("subscribe", {"tag": "c1", "events": 3})
    # The handler's notifications are written before its reply, in order.
    messages = [first] + [await client.recv() for _ in range(3)]
    assert [m.get("params") for m in messages[:3]] == [{"i": 0}, {"i": 1}, {"i": 2}]
    assert all(m["method"] == "event" and "id" not in m for m in messages[:3])
    assert messages[3]["result"] == "subscribed"
    (conn,) = server.connections
    assert conn.notify("event", {"late": True})
    assert (await client.recv())["params"] == {"late": True}
    await client.close()
    await wait_until_closed(server)
    assert CLOSED == ["c1"]
    assert not conn.notify("event", {})
    late: list[str] = []
    conn.add_close_callback(lambda: late.append("after"))
    async with asyncio.timeout(5):
        while not late:
            await asyncio.sleep(0)


async def test_notify_before_first_byte_is_ndjson(server: RpcServer) -> None:
    client = await Client.connect(sock_path(server))
    try:
        async with asyncio.timeout(5):
            while not server.connections:
                await asyncio.sleep(0.01)
        (conn,) = server.connections
        assert conn.framing is None
        conn.notify("event", {"early": 1})
        assert (await client.recv()) == {"jsonrpc": "2.0", "method": "event", "params": {"early": 1}}
    finally:
        await client.close()


async def test_client_half_close_still_gets_its_replies(server: RpcServer) -> None:
    reader, writer = await asyncio.open_unix_connection(os.fspath(sock_path(server)))
    writer.write(b'{"jsonrpc":"2.0","id":1,"method":"slow"}\n{"jsonrpc":"2.0","id":2,"method":"release"}\n')
    writer.write_eof()
    data = await asyncio.wait_for(reader.read(), 5)  # until EOF: the server closes once both are answered
    assert sorted(json.loads(line)["id"] for line in data.splitlines()) == [1, 2]
    writer.close()


async def test_concurrent_clients(server: RpcServer) -> None:
    async def one(n: int) -> None:
        framing = Framing.CONTENT_LENGTH if n % 2 else Framing.NDJSON
        client = await Client.connect(sock_path(server), framing)
        try:
            msgs = [{"jsonrpc": "2.0", "id": i, "method": "echo", "params": {"c": n, "i": i}} for i in range(200)]
            client.writer.write(b"".join(client.frame(m) for m in msgs))
            replies = [await client.recv() for _ in range(200)]
            assert sorted(r["id"] for r in replies) == list(range(200))
            assert all(r["result"] == {"c": n, "i": r["id"]} for r in replies)
        finally:
            await client.close()

    await asyncio.wait_for(asyncio.gather(*(one(n) for n in range(16))), 60)


async def test_in_flight_cap_applies_backpressure_without_losing_requests(short_tmp: Path) -> None:
    srv = RpcServer(make_dispatcher(), short_tmp / "s.sock", max_in_flight=4)
    await srv.start()
    client = await Client.connect(short_tmp / "s.sock")
    try:
        # 10 requests block on the gate; only 4 may run, the rest wait unread. A ping behind them waits too.
        client.writer.write(b"".join(client.frame({"jsonrpc": "2.0", "id": i, "method": "slow"}) for i in range(10)))
        await until(lambda: len(srv._tasks) == 4)
        (conn,) = srv.connections
        assert conn._read_paused and len(conn._pending) == 6
        other = await Client.connect(short_tmp / "s.sock")
        assert (await other.request("release"))["result"] == "released"
        await other.close()
        ids = sorted([(await client.recv())["id"] for _ in range(10)])
        assert ids == list(range(10))
    finally:
        await client.close()
        await srv.close()


# ------------------------------------------------------------------------------------------------- limits


async def test_oversize_ndjson_gets_an_error_then_close(server: RpcServer) -> None:
    path = os.fspath(sock_path(server))

    def run() -> bytes:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(path)
            s.sendall(b'{"jsonrpc":"2.0","id":1,"method":"ping"}\n')
            # 8 MiB + 64 KiB and never a newline: the error must arrive without one.
            s.sendall(b'{"x":"' + b"a" * (8 * MIB + 64 * 1024))
            return recv_all_blocking(s)

    data = await asyncio.wait_for(asyncio.to_thread(run), 30)
    lines = [json.loads(line) for line in data.splitlines()]
    assert lines[0]["result"] == {"pong": True}
    assert lines[-1]["error"]["code"] == -32018
    assert lines[-1]["error"]["data"]["errorCode"] == "MESSAGE_TOO_LARGE"
    await wait_until_closed(server)


async def test_oversize_content_length_is_refused_before_the_body(server: RpcServer) -> None:
    client = await Client.connect(sock_path(server), Framing.CONTENT_LENGTH)
    try:
        client.writer.write(b"Content-Length: %d\r\n\r\n" % (8 * MIB + 1))
        reply = await asyncio.wait_for(client.recv(), 5)
        assert reply["error"]["data"]["errorCode"] == "MESSAGE_TOO_LARGE"
        assert await asyncio.wait_for(client.reader.read(), 5) == b""
    finally:
        await client.close()


async def test_unknown_framing_gets_parse_error_then_close(server: RpcServer) -> None:
    reader, writer = await asyncio.open_unix_connection(os.fspath(sock_path(server)))
    writer.write(b"HELLO daemon\r\n")
    data = await asyncio.wait_for(reader.read(), 5)
    reply = json.loads(data)
    assert reply["error"]["code"] == -32700 and reply["id"] is None
    writer.close()


async def test_stuck_client_is_dropped_and_never_blocks_others(short_tmp: Path) -> None:
    path = short_tmp / "s.sock"
    srv = RpcServer(make_dispatcher(), path, max_outbound=4 * MIB)
    await srv.start()
    stuck = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    healthy = await Client.connect(path)
    try:
        stuck.connect(os.fspath(path))
        stuck.setblocking(False)
        stuck.send(b'{"jsonrpc":"2.0","id":0,"method":"subscribe","params":{"tag":"stuck"}}\n')
        # Phase 1: ~2 MiB of replies the stuck client never reads. Everyone else is still served promptly.
        stuck.send(b'{"jsonrpc":"2.0","id":1,"method":"big","params":{"size":1048576}}\n' * 2)
        for _ in range(100):
            assert (await asyncio.wait_for(healthy.request("ping"), 5))["result"] == {"pong": True}
        assert len(srv.connections) == 2
        # Phase 2: its backlog passes the 4 MiB bound: it is dropped, and we still answer the healthy one.
        stuck.send(b'{"jsonrpc":"2.0","id":2,"method":"big","params":{"size":1048576}}\n' * 4)
        await until(lambda: CLOSED == ["stuck"])
        assert len(srv.connections) == 1
        assert (await healthy.request("ping"))["result"] == {"pong": True}
    finally:
        stuck.close()
        await healthy.close()
        await srv.close()
        CLOSED.clear()


async def test_close_does_not_wait_forever_for_a_stuck_client(short_tmp: Path) -> None:
    path = short_tmp / "s.sock"
    srv = RpcServer(make_dispatcher(), path)
    await srv.start()
    stuck = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        stuck.connect(os.fspath(path))
        stuck.send(b'{"jsonrpc":"2.0","id":1,"method":"big","params":{"size":4194304}}\n')
        await until(lambda: bool(srv.connections) and not srv._tasks)
        await asyncio.wait_for(srv.close(grace=0.2), 5)  # replies can't be flushed: aborted after the grace
        assert not srv.connections
    finally:
        stuck.close()


# ------------------------------------------------------------------------------------------- socket setup


async def test_socket_and_directory_modes(short_tmp: Path) -> None:
    path = short_tmp / "new" / "actantd.sock"
    srv = RpcServer(make_dispatcher(), path)
    await srv.start()
    try:
        assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
        st = os.lstat(path)
        assert stat.S_ISSOCK(st.st_mode)
        assert stat.S_IMODE(st.st_mode) == 0o600
    finally:
        await srv.close()
    assert not path.exists()


async def test_stale_socket_file_is_replaced(short_tmp: Path) -> None:
    path = short_tmp / "s.sock"
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(os.fspath(path))  # bound, never listening, then gone: like a daemon killed with SIGKILL
    dead.close()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe, pytest.raises(ConnectionRefusedError):
        probe.connect(os.fspath(path))
    srv = RpcServer(make_dispatcher(), path)
    await srv.start()
    try:
        client = await Client.connect(path)
        assert (await client.request("ping"))["result"] == {"pong": True}
        await client.close()
    finally:
        await srv.close()


async def test_live_socket_is_refused(server: RpcServer) -> None:
    second = RpcServer(make_dispatcher(), sock_path(server))
    with pytest.raises(DaemonBusy, match="another actantd is listening on"):
        await second.start()
    client = await Client.connect(sock_path(server))  # the first one is untouched
    assert (await client.request("ping"))["result"] == {"pong": True}
    await client.close()


async def test_non_socket_file_is_not_replaced(short_tmp: Path) -> None:
    path = short_tmp / "s.sock"
    path.write_text("precious")
    with pytest.raises(FileExistsError):
        await RpcServer(make_dispatcher(), path).start()
    assert path.read_text() == "precious"


async def test_close_leaves_a_successors_socket_alone(short_tmp: Path) -> None:
    path = short_tmp / "s.sock"
    srv = RpcServer(make_dispatcher(), path)
    await srv.start()
    os.unlink(path)
    successor = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    successor.bind(os.fspath(path))
    try:
        await srv.close()
        assert stat.S_ISSOCK(os.lstat(path).st_mode)
    finally:
        successor.close()


async def test_close_answers_running_requests_then_closes(short_tmp: Path) -> None:
    path = short_tmp / "s.sock"
    srv = RpcServer(make_dispatcher(), path)
    await srv.start()
    client = await Client.connect(path)
    await client.send({"jsonrpc": "2.0", "id": 1, "method": "slow"})
    async with asyncio.timeout(5):
        while not srv._tasks:
            await asyncio.sleep(0.01)
    closing = asyncio.create_task(srv.close(grace=5))
    await asyncio.sleep(0)  # one loop turn: close() runs up to its first await
    assert not path.exists()  # the listener and the socket file go first
    await srv.dispatcher.call("release", {}, CallContext())
    assert (await client.recv())["result"] == "slow"
    await closing
    assert await client.reader.read() == b""
    await client.close()


# ------------------------------------------------------------------------------------ LISTEN_FDS (systemd)


def test_inherited_socket_env_handling(monkeypatch: pytest.MonkeyPatch) -> None:
    assert inherited_listen_socket({}) is None
    env = {"LISTEN_PID": str(os.getpid() + 1), "LISTEN_FDS": "1", "LISTEN_FDNAMES": "x", "OTHER": "1"}
    assert inherited_listen_socket(env) is None
    assert env == {"OTHER": "1"}  # unset even when not for us, so agents never inherit them
    env = {"LISTEN_PID": "junk", "LISTEN_FDS": "1"}
    assert inherited_listen_socket(env) is None and env == {}
    env = {"LISTEN_PID": str(os.getpid()), "LISTEN_FDS": "0"}
    assert inherited_listen_socket(env) is None


CHILD = """
import asyncio, os, sys
from actantd.rpc.protocol import Dispatcher
from actantd.rpc.server import RpcServer, inherited_listen_socket

async def main():
    sock = inherited_listen_socket()
    assert sock is not None, "no inherited socket"
    done = asyncio.Event()
    d = Dispatcher()

    @d.register("info")
    async def info(params, ctx):
        return {"pid": os.getpid(), "env": sorted(k for k in os.environ if k.startswith("LISTEN_")),
                "cloexec": not os.get_inheritable(3)}

    @d.register("quit")
    async def quit(params, ctx):
        done.set()
        return True

    srv = RpcServer(d, inherited_sock=sock)
    await srv.start()
    print("ready", srv.path, flush=True)
    await done.wait()
    await srv.close()

asyncio.run(main())
"""

LAUNCHER = """
import os, sys
fd = int(sys.argv[1])
os.dup2(fd, 3)
os.close(fd)
env = dict(os.environ, LISTEN_PID=str(os.getpid()), LISTEN_FDS="1")
os.execve(sys.executable, [sys.executable, "-c", sys.argv[2]], env)
"""


async def test_inherited_listen_fds_socket_serves(short_tmp: Path) -> None:
    """systemd style: the launcher puts a bound, listening socket on fd 3 and exec()s with LISTEN_* set."""
    path = short_tmp / "act.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(os.fspath(path))
    listener.listen()
    fd = fcntl.fcntl(listener.fileno(), fcntl.F_DUPFD_CLOEXEC, 10)
    env = dict(os.environ, PYTHONPATH=os.fspath(REPO))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", LAUNCHER, str(fd), CHILD, pass_fds=(fd,), stdout=asyncio.subprocess.PIPE, env=env
    )
    os.close(fd)
    listener.close()
    try:
        assert proc.stdout is not None
        ready = await asyncio.wait_for(proc.stdout.readline(), 30)
        assert ready.split() == [b"ready", os.fsencode(path)]
        client = await Client.connect(path)
        info = (await client.request("info"))["result"]
        assert info == {"pid": proc.pid, "env": [], "cloexec": True}
        assert (await client.request("quit"))["result"] is True
        await client.close()
        assert await asyncio.wait_for(proc.wait(), 30) == 0
        assert path.exists()  # systemd owns the socket file: the daemon must not unlink it
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


# ------------------------------------------------------------------------------------------- peer uid check


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to connect as another user")
async def test_other_uid_is_refused(short_tmp: Path) -> None:
    path = short_tmp / "run" / "s.sock"
    srv = RpcServer(make_dispatcher(), path)
    await srv.start()
    # Open the doors so only the SO_PEERCRED check stands between "nobody" and the daemon.
    os.chmod(short_tmp, 0o755)
    os.chmod(path.parent, 0o755)
    os.chmod(path, 0o666)
    nobody = pwd.getpwnam("nobody")
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: become nobody, connect, send a ping, read until the server closes
        code = 1
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(10)
                s.connect(os.fspath(path))
                with contextlib.suppress(OSError):
                    s.sendall(b'{"jsonrpc":"2.0","id":1,"method":"ping"}\n')
                os.write(write_end, recv_all_blocking(s))
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    try:
        _, status = await asyncio.wait_for(asyncio.to_thread(os.waitpid, pid, 0), 30)
        assert os.waitstatus_to_exitcode(status) == 0
        with os.fdopen(read_end, "rb") as f:
            data = f.read()
        lines = data.splitlines()
        assert len(lines) == 1, data  # the refusal only: the ping was never dispatched
        reply = json.loads(lines[0])
        assert reply["id"] is None
        assert reply["error"]["code"] == -32013
        assert reply["error"]["data"]["errorCode"] == "PERMISSION_DENIED"
        assert reply["error"]["data"]["context"]["uid"] == nobody.pw_uid
        await wait_until_closed(srv)
    finally:
        await srv.close()


# ---------------------------------------------------------------------------------------------------- uvloop


def test_under_uvloop(short_tmp: Path) -> None:
    """The daemon runs on uvloop: the transport calls we rely on (peer creds, pause, write_eof) work there too."""

    async def scenario() -> None:
        CLOSED.clear()
        path = short_tmp / "uv" / "s.sock"
        srv = RpcServer(make_dispatcher(), path, max_outbound=4 * MIB)
        await srv.start()
        try:
            assert isinstance(asyncio.get_running_loop(), uvloop.Loop)
            for framing in Framing:
                client = await Client.connect(path, framing)
                assert (await client.request("whoami"))["result"]["uid"] == os.getuid()
                gate = {"gate": framing.value}
                await client.send({"jsonrpc": "2.0", "id": "s", "method": "slow", "params": gate})
                assert (await client.request("ping"))["result"] == {"pong": True}
                assert (await client.request("release", gate))["result"] == "released"
                assert (await client.recv())["id"] == "s"
                await client.close()
            client = await Client.connect(path, Framing.CONTENT_LENGTH)
            client.writer.write(b"Content-Length: %d\r\n\r\n" % (9 * MIB))
            assert (await client.recv())["error"]["code"] == -32018
            assert await client.reader.read() == b""
            await client.close()
            # A stuck reader is dropped; a healthy one carries on.
            stuck = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            stuck.connect(os.fspath(path))
            stuck.setblocking(False)
            stuck.send(b'{"jsonrpc":"2.0","id":0,"method":"subscribe","params":{"tag":"uv"}}\n')
            stuck.send(b'{"jsonrpc":"2.0","id":1,"method":"big","params":{"size":1048576}}\n' * 8)
            healthy = await Client.connect(path)
            await until(lambda: CLOSED == ["uv"])
            assert (await healthy.request("ping"))["result"] == {"pong": True}
            stuck.close()
            await healthy.close()
            assert isinstance(next(iter(srv.connections), None), Connection | None)
        finally:
            await srv.close()
            CLOSED.clear()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(scenario())
