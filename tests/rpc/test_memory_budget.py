"""Class 6 of issue #10: memory is bounded across connections and returned when they close.

Before: 100 connections each holding an almost complete 8 MiB message took the daemon to 1.7 GB and kept
it (connection objects lived on in reference cycles), subscribers that never read grew it steadily, and one
``agent.logs`` with a huge ``lines`` built a 301 MiB reply. These tests run an in-process server with small
budgets; the soak variant attacks the real daemon with its default ones.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import resource
import socket
import time
import tracemalloc
import weakref
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import psutil
import pytest

from actantd.rpc.protocol import CallContext, Dispatcher
from actantd.rpc.server import RpcServer
from actantd.supervisor.logs import tail_lines
from tests.harness import running_daemon

MIB = 1024 * 1024
TIMEOUT = 10.0


async def until(pred: Callable[[], bool], what: str) -> None:
    """Wait for in-process server state to settle (the server runs on this very loop)."""
    deadline = time.monotonic() + TIMEOUT
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


def dispatcher() -> Dispatcher:
    d = Dispatcher()

    @d.register("ping")
    async def ping(params: dict[str, Any], ctx: CallContext) -> Any:
        return "pong"

    @d.register("big")
    async def big(params: dict[str, Any], ctx: CallContext) -> Any:
        return "x" * params["bytes"]

    @d.register("flood")
    async def flood(params: dict[str, Any], ctx: CallContext) -> Any:
        sent = 0
        chunk = "y" * params["chunk"]
        for _ in range(params["count"]):
            for conn in list(server_ref[0].connections):
                if conn is not ctx.connection:
                    sent += conn.notify("spam", chunk)
            await asyncio.sleep(0)
        return sent

    return d


server_ref: list[RpcServer] = []


@pytest.fixture
async def server(short_tmp: Path) -> AsyncIterator[RpcServer]:
    srv = RpcServer(dispatcher(), short_tmp / "s.sock", input_budget=2 * MIB, output_budget=1 * MIB)
    server_ref[:] = [srv]
    await srv.start()
    try:
        yield srv
    finally:
        await srv.close(grace=1)
        server_ref.clear()


async def _connect(srv: RpcServer) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    assert srv.path is not None
    return await asyncio.open_unix_connection(os.fspath(srv.path), limit=64 * MIB)


async def test_input_of_all_connections_is_budgeted_biggest_dropped_first(server: RpcServer) -> None:
    clients = []
    for i in range(6):
        before = set(server.connections)
        reader, writer = await _connect(server)
        message = b'{"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"pad": "' + b"p" * (MIB - 100 + i)
        await until(lambda: len(server.connections - before) == 1, "connection accepted")  # noqa: B023
        (conn,) = server.connections - before
        writer.write(message)
        await writer.drain()
        clients.append((reader, writer))
        await until(lambda: conn.closed or conn.input_bytes == len(message), "input counted")  # noqa: B023
        assert server.input_total <= server.input_budget
    dropped = 0
    for reader, writer in clients:
        try:
            line = await asyncio.wait_for(reader.readline(), 0.5 if dropped >= 4 else TIMEOUT)
        except TimeoutError:
            line = b""
        if line:
            assert json.loads(line)["error"]["data"]["errorCode"] == "OVERLOADED"
            dropped += 1
        writer.close()
    assert dropped >= 4, dropped
    # Everyone else still gets served.
    reader, writer = await _connect(server)
    writer.write(b'{"jsonrpc": "2.0", "id": 7, "method": "ping"}\n')
    assert json.loads(await reader.readline())["result"] == "pong"
    writer.close()


async def test_output_of_all_connections_is_budgeted_slowest_reader_dropped(server: RpcServer) -> None:
    assert server.path is not None
    sleepers = []
    for _ in range(5):  # raw sockets that never read (an asyncio reader would read into its buffer)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(os.fspath(server.path))
        sleepers.append(s)
    await until(lambda: len(server.connections) == 5, "sleepers accepted")
    reader, writer = await _connect(server)
    writer.write(b'{"jsonrpc": "2.0", "id": 1, "method": "flood", "params": {"chunk": 65536, "count": 200}}\n')
    reply = json.loads(await asyncio.wait_for(reader.readline(), TIMEOUT))
    assert isinstance(reply["result"], int)
    assert server.output_total() <= server.output_budget
    assert len(server.connections) < 6, "nobody was dropped, yet 5 x 12.5 MiB were pushed at non-readers"
    writer.write(b'{"jsonrpc": "2.0", "id": 2, "method": "ping"}\n')
    assert json.loads(await reader.readline())["result"] == "pong"
    writer.close()
    for s in sleepers:
        s.close()


async def test_a_reply_past_the_limit_is_an_error_not_a_buffer(server: RpcServer) -> None:
    reader, writer = await _connect(server)
    writer.write(b'{"jsonrpc": "2.0", "id": 1, "method": "big", "params": {"bytes": 9437184}}\n')
    reply = json.loads(await reader.readline())
    assert reply["error"]["data"]["errorCode"] == "MESSAGE_TOO_LARGE"
    batch = [{"jsonrpc": "2.0", "id": i, "method": "big", "params": {"bytes": 3 * MIB}} for i in range(5)]
    writer.write(json.dumps(batch).encode() + b"\n")
    line = await reader.readline()
    assert len(line) < 9 * MIB
    codes = [r.get("error", {}).get("data", {}).get("errorCode") for r in json.loads(line)]
    assert "MESSAGE_TOO_LARGE" in codes
    writer.close()


def test_tail_with_a_huge_line_count_is_bounded(tmp_path: Path) -> None:
    log = tmp_path / "stdout.log"
    with open(log, "wb") as f:
        line = b"z" * 99 + b"\n"
        f.write(line * (200_000))  # 20 MB
    (tmp_path / "stdout.log.1").write_bytes(line * 100_000)
    lines = tail_lines(log, 10**9)
    assert 0 < sum(map(len, lines)) <= 8 * MIB


async def test_a_closed_connection_frees_its_memory_without_the_cycle_collector(server: RpcServer) -> None:
    gc.collect()
    gc.disable()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        clients = []
        for _ in range(3):
            reader, writer = await _connect(server)
            writer.write(b'{"jsonrpc": "2.0", "id": 1, "method": "ping"}\n')
            await reader.readline()
            writer.write(b'{"jsonrpc": "2.0", "id": 2, "method": "ping", "params": {"pad": "' + b"q" * 500_000)
            await writer.drain()
            clients.append((reader, writer))
        await until(lambda: server.input_total >= 1_400_000, "partial messages buffered")
        refs = [weakref.ref(c) for c in server.connections]
        assert len(refs) == 3
        held = tracemalloc.get_traced_memory()[0] - base
        assert held > 1_400_000
        for _, writer in clients:
            writer.close()
        await until(lambda: not server.connections, "connections closed")
        del clients, writer, reader
        await asyncio.sleep(0)
        alive = [r for r in refs if r() is not None]
        assert not alive, [gc.get_referrers(r()) for r in alive]
        left = tracemalloc.get_traced_memory()[0] - base
        assert left < 300_000, f"{left} bytes still held after close"
        assert server.input_total == 0
    finally:
        tracemalloc.stop()
        gc.enable()


@pytest.mark.soak
def test_soak_real_daemon_rss_stays_bounded_under_partial_messages_and_returns(short_tmp: Path) -> None:
    """100 connections each holding an almost complete 8 MiB message (the issue's attack)."""
    resource.setrlimit(resource.RLIMIT_NOFILE, (4096, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    with running_daemon(short_tmp) as daemon:
        assert daemon.proc is not None
        proc = psutil.Process(daemon.proc.pid)
        start_rss = proc.memory_info().rss
        chunk = b'{"jsonrpc": "2.0", "id": 1, "method": "daemon.ping", "params": {"p": "' + b"a" * (8 * MIB - 200)
        socks = []
        peak = 0
        for _ in range(100):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(str(daemon.socket))
            s.settimeout(30)
            try:
                s.sendall(chunk)
            except OSError:
                pass  # dropped while sending: the budget at work
            socks.append(s)
            peak = max(peak, proc.memory_info().rss)
        assert daemon.call("daemon.ping") is not None
        for s in socks:
            s.close()
        assert daemon.call("daemon.ping") is not None
        assert peak - start_rss < 400 * MIB, f"RSS grew by {(peak - start_rss) // MIB} MiB"
