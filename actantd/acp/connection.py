"""JSON-RPC 2.0 over an agent's stdin/stdout, newline-delimited, both directions (what ACP speaks on stdio).

Both ends send requests: the client (the daemon) sends ``initialize``, ``session/*``; the agent sends
``session/request_permission`` (and, if a client advertised them, ``fs/*`` and ``terminal/*``) and the
``session/update`` notifications. Requests are answered out of order, so each incoming request runs in its
own task; a slow permission decision never blocks the updates that follow it.

Hand-written on msgspec rather than the ``agent-client-protocol`` SDK: the SDK pulls in pydantic, which
costs the daemon about 20 MiB of RSS and over a second of import time (measured in docs/protocol.md), for
a handful of message shapes that are plain dicts here.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Final

import msgspec

from actantd.errors import AcpError

log = logging.getLogger(__name__)

MAX_MESSAGE: Final = 64 * 1024 * 1024
"""An agent may send whole files in one update; past this the line is a broken agent, not a message."""

RequestHandler = Callable[[str, Any], Awaitable[Any]]
NotificationHandler = Callable[[str, Any], None]

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder()


class RemoteError(AcpError):
    """The agent answered a request with a JSON-RPC error; ``rpc_code`` is its code."""

    def __init__(self, message: str, rpc_code: int | None = None, **context: Any) -> None:
        super().__init__(message, **context)
        self.rpc_code = rpc_code


class HandlerError(Exception):
    """Raised by a request handler to answer the agent with this JSON-RPC error."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Connection:
    """One JSON-RPC peer on a reader/writer pair; :meth:`start` begins reading, :meth:`close` ends it."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        on_request: RequestHandler,
        on_notification: NotificationHandler,
        name: str = "agent",
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._on_request = on_request
        self._on_notification = on_notification
        self.name = name
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._read_task: asyncio.Task[None] | None = None
        self.closed: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        """Resolved with the reason when the connection ends (EOF, a broken message, :meth:`close`)."""

    def start(self) -> None:
        self._read_task = asyncio.get_running_loop().create_task(self._read_loop())

    async def request(self, method: str, params: Any, timeout: float | None = None) -> Any:
        if self.closed.done():
            raise AcpError(f"{self.name}: the ACP connection is closed ({self.closed.result()})", method=method)
        rid = next(self._ids)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        try:
            await self._send({"jsonrpc": "2.0", "id": rid, "method": method, "params": params})
            return await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            raise AcpError(f"{self.name} did not answer {method} within {timeout:g}s", method=method) from None
        finally:
            self._pending.pop(rid, None)

    async def notify(self, method: str, params: Any) -> None:
        if not self.closed.done():
            await self._send({"jsonrpc": "2.0", "method": method, "params": params})

    async def _send(self, message: dict[str, Any]) -> None:
        try:
            self._writer.write(_encoder.encode(message) + b"\n")
            await self._writer.drain()
        except (ConnectionError, RuntimeError) as exc:
            self._end(f"writing to the agent failed: {exc}")
            raise AcpError(f"{self.name}: the agent's stdin is closed", method=message.get("method")) from exc

    async def _read_loop(self) -> None:
        reason = "the agent closed its stdout"
        try:
            while True:
                try:
                    line = await self._reader.readuntil(b"\n")
                except asyncio.IncompleteReadError as exc:
                    if exc.partial.strip():
                        reason = "the agent closed its stdout in the middle of a message"
                    break
                except asyncio.LimitOverrunError:
                    reason = f"the agent sent a message over {MAX_MESSAGE} bytes"
                    break
                if line.strip():
                    self._dispatch(line)
        except (ConnectionError, OSError) as exc:
            reason = f"reading from the agent failed: {exc}"
        except asyncio.CancelledError:
            reason = "closed"
        self._end(reason)

    def _dispatch(self, line: bytes) -> None:
        try:
            message = _decoder.decode(line)
        except msgspec.DecodeError:
            log.warning("%s: ignoring a line that is not JSON: %r", self.name, line[:200])
            return
        if not isinstance(message, dict):
            return
        method = message.get("method")
        if isinstance(method, str):
            if "id" in message and message["id"] is not None:
                self._spawn(self._answer(message["id"], method, message.get("params")))
            else:
                try:
                    self._on_notification(method, message.get("params"))
                except Exception:
                    log.exception("%s: notification handler failed for %s", self.name, method)
            return
        rid = message.get("id")
        fut = self._pending.get(rid) if isinstance(rid, int) else None
        if fut is None or fut.done():
            return
        error = message.get("error")
        if isinstance(error, dict):
            code = error.get("code")
            fut.set_exception(
                RemoteError(
                    f"{self.name}: {error.get('message', 'error')}",
                    rpc_code=code if isinstance(code, int) else None,
                    rpcCode=code,
                    rpcData=error.get("data"),
                )
            )
        else:
            fut.set_result(message.get("result"))

    async def _answer(self, rid: Any, method: str, params: Any) -> None:
        try:
            result = await self._on_request(method, params)
            reply: dict[str, Any] = {"jsonrpc": "2.0", "id": rid, "result": result}
        except HandlerError as exc:
            reply = {"jsonrpc": "2.0", "id": rid, "error": {"code": exc.code, "message": exc.message}}
        except Exception as exc:
            log.exception("%s: handling %s failed", self.name, method)
            reply = {"jsonrpc": "2.0", "id": rid, "error": {"code": -32603, "message": f"internal error: {exc}"}}
        with contextlib.suppress(AcpError):
            await self._send(reply)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _end(self, reason: str) -> None:
        if self.closed.done():
            return
        self.closed.set_result(reason)
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(AcpError(f"{self.name}: {reason}", reason=reason))
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(Exception):
            self._writer.close()

    def abort(self) -> None:
        self._end("closed")
        if self._read_task is not None:
            self._read_task.cancel()

    async def close(self) -> None:
        self._end("closed")
        if self._read_task is not None:
            self._read_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._read_task


async def open_pipes(stdin_fd: int, stdout_fd: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Asyncio streams on a child's stdin (we write) and stdout (we read); the fds are taken over."""
    import os

    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=MAX_MESSAGE)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(stdout_fd, "rb", 0))
    transport, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin, os.fdopen(stdin_fd, "wb", 0))
    writer = asyncio.StreamWriter(transport, protocol, None, loop)
    return reader, writer
