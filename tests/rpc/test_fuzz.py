"""Fuzzed frames (DESIGN §12): the server never dies and every reply is a valid JSON-RPC response.

Two levels: ``Dispatcher.handle_payload`` on arbitrary bytes (fast, many examples), and whole connections
against a real server on uvloop in a background thread, fed random, mutated and well-formed frames in both
framings through blocking sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvloop
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actantd.errors import AgentNotFound
from actantd.rpc.protocol import CallContext, Dispatcher
from actantd.rpc.server import RpcServer


def make_dispatcher() -> Dispatcher:
    d = Dispatcher()

    @d.register("ping")
    async def ping(params: dict[str, Any], ctx: CallContext) -> Any:
        return "pong"

    @d.register("echo")
    async def echo(params: dict[str, Any], ctx: CallContext) -> Any:
        return params

    @d.register("fail")
    async def fail(params: dict[str, Any], ctx: CallContext) -> Any:
        raise AgentNotFound("nope", params=params)

    @d.register("boom")
    async def boom(params: dict[str, Any], ctx: CallContext) -> Any:
        raise ZeroDivisionError("fuzz")

    return d


# ------------------------------------------------------------------------------------------------ validity


def assert_valid_response(obj: Any) -> None:
    assert isinstance(obj, dict), obj
    assert obj.get("jsonrpc") == "2.0", obj
    assert "id" in obj, obj
    rid = obj["id"]
    assert rid is None or isinstance(rid, str) or (isinstance(rid, int) and not isinstance(rid, bool)), obj
    assert ("result" in obj) != ("error" in obj), obj
    assert set(obj) <= {"jsonrpc", "id", "result", "error"}, obj
    if "error" in obj:
        err = obj["error"]
        assert isinstance(err, dict)
        assert isinstance(err["code"], int) and not isinstance(err["code"], bool)
        assert isinstance(err["message"], str)
        assert isinstance(err["data"]["errorCode"], str)


def assert_valid_reply(raw: bytes) -> None:
    obj = json.loads(raw)
    if isinstance(obj, list):
        assert obj, "an empty array is never a valid reply"
        for item in obj:
            assert_valid_response(item)
    else:
        assert_valid_response(obj)


def split_replies(data: bytes) -> list[bytes]:
    """Replies come as NDJSON lines, or Content-Length frames once the connection chose that framing."""
    out: list[bytes] = []
    pos = 0
    while pos < len(data):
        if data[pos : pos + 1] in (b"\n", b"\r", b" "):
            pos += 1
            continue
        if data[pos : pos + 15].lower() == b"content-length:":
            end = data.index(b"\r\n\r\n", pos)
            length = int(data[pos + 15 : end])
            out.append(data[end + 4 : end + 4 + length])
            pos = end + 4 + length
        else:
            end = data.index(b"\n", pos)
            out.append(data[pos:end])
            pos = end + 1
    return out


# ------------------------------------------------------------------------------------------------ strategies

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
methods = st.sampled_from(["ping", "echo", "fail", "boom", "missing", "rpc.x"]) | json_values
ids = st.integers(-(2**63), 2**63 - 1) | st.text(max_size=10) | st.none() | json_values
requests = st.fixed_dictionaries(
    {"jsonrpc": st.just("2.0") | json_values, "method": methods},
    optional={"id": ids, "params": st.dictionaries(st.text(max_size=8), json_values, max_size=4) | json_values},
)
messages = requests | st.lists(requests, max_size=6) | json_values


@st.composite
def payloads(draw: st.DrawFn) -> bytes:
    """A JSON line, often valid, sometimes mutated byte-wise, or plain random bytes."""
    kind = draw(st.sampled_from(["json", "json", "mutated", "random"]))
    if kind == "random":
        return draw(st.binary(max_size=120))
    raw = json.dumps(draw(messages)).encode()
    if kind == "mutated" and raw:
        buf = bytearray(raw)
        for pos, new in draw(st.lists(st.tuples(st.integers(0, 10**6), st.binary(max_size=3)), min_size=1, max_size=4)):
            at = pos % (len(buf) + 1)
            buf[at : at + draw(st.integers(0, 3))] = new
        raw = bytes(buf)
    return raw


@st.composite
def streams(draw: st.DrawFn) -> bytes:
    frames = draw(st.lists(payloads(), min_size=1, max_size=6))
    if draw(st.booleans()):
        return b"".join(f.replace(b"\n", b" ") + b"\n" for f in frames)
    out = b""
    for f in frames:
        header = b"Content-Length: %d\r\n\r\n" % len(f)
        if draw(st.integers(0, 9)) == 0:  # occasionally a broken or lying header
            header = draw(
                st.sampled_from([b"Content-Length: x\r\n\r\n", b"Content-Length: 3\r\n\r\n", b"X: 1\r\n\r\n"])
            )
        out += header + f
    return out


# ------------------------------------------------------------------------------------ protocol-level fuzzing


@settings(max_examples=400, deadline=None)
@given(raw=payloads())
def test_handle_payload_always_answers_validly(raw: bytes) -> None:
    reply = asyncio.run(make_dispatcher().handle_payload(raw, CallContext()))
    if reply is not None:
        assert_valid_reply(reply)


# -------------------------------------------------------------------------------------- socket-level fuzzing


class ThreadedServer:
    """The real server on uvloop in its own thread, so the test can use plain blocking sockets."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="rpc-fuzz-server", daemon=True)

    def _run(self) -> None:
        async def main() -> None:
            srv = RpcServer(make_dispatcher(), self.path, max_message=64 * 1024)
            await srv.start()
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            self.ready.set()
            await self._stop.wait()
            await srv.close()

        try:
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                runner.run(main())
        except BaseException as exc:
            self.error = exc
            self.ready.set()

    def __enter__(self) -> ThreadedServer:
        self._thread.start()
        assert self.ready.wait(30)
        assert self.error is None, self.error
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)
        assert not self._thread.is_alive()
        assert self.error is None, self.error

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() and self.error is None


@pytest.fixture(scope="module")
def fuzz_server() -> Iterator[ThreadedServer]:
    tmp = Path(tempfile.mkdtemp(prefix="act-fz-", dir="/tmp"))
    try:
        with ThreadedServer(tmp / "s.sock") as server:
            yield server
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def exchange(path: Path, data: bytes) -> bytes:
    """Send everything, half-close, read until the server closes: every reply it owed us is then in hand."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(20)
        s.connect(os.fspath(path))
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
        chunks = []
        with contextlib.suppress(ConnectionResetError):
            while chunk := s.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=streams())
def test_fuzzed_connections_never_kill_the_server(fuzz_server: ThreadedServer, data: bytes) -> None:
    for reply in split_replies(exchange(fuzz_server.path, data)):
        assert_valid_reply(reply)
    assert fuzz_server.alive
    pong = exchange(fuzz_server.path, b'{"jsonrpc":"2.0","id":1,"method":"ping"}\n')
    assert json.loads(pong) == {"jsonrpc": "2.0", "id": 1, "result": "pong"}


def test_oversize_and_garbage_storm(fuzz_server: ThreadedServer) -> None:
    """Many abusive connections at once (limit lowered to 64 KiB here): each gets its error, the server lives."""
    bad = [
        b'{"a":"' + b"x" * 200_000,
        b"Content-Length: 999999999\r\n\r\n",
        b"\x00" * 1000,
        b"[" * 50_000 + b"\n",
        b"Content-Length: 5\r\n\r\n{}{}{" * 1000,
    ]
    results: list[bytes] = []
    threads = [threading.Thread(target=lambda d=d: results.append(exchange(fuzz_server.path, d))) for d in bad * 4]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == len(threads)
    for data in results:
        for reply in split_replies(data):
            assert_valid_reply(reply)
    assert fuzz_server.alive
    pong = exchange(fuzz_server.path, b'{"jsonrpc":"2.0","id":2,"method":"ping"}\n')
    assert json.loads(pong)["result"] == "pong"
