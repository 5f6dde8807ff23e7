"""A blocking JSON-RPC 2.0 client for the daemon's Unix socket (NDJSON framing).

Stdlib ``socket`` + ``json`` only: the daemon detects the framing from the first byte, and one ``{...}\\n`` per
message is the cheapest thing to write and parse. Daemon-side errors come back as the typed exceptions of
:mod:`actantd.errors` (via ``from_rpc``) so callers can tell "not found" from "failed" without string matching;
failures on this side of the socket are :class:`ClientError` subclasses.
"""

from __future__ import annotations

import itertools
import json
import os
import pwd
import socket
import struct
from collections import deque
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Final, TypeAlias

from actantd.errors import from_rpc

if TYPE_CHECKING:
    from types import TracebackType

SocketPath: TypeAlias = "str | os.PathLike[str]"
"""A socket path as the CLI holds it (a string: no ``pathlib`` on the hot path) or as callers may pass it."""

DEFAULT_TIMEOUT: Final = 30.0
"""Seconds to wait for an answer; long operations (start, stop, run) pass their own."""

_UNSET: Final[Any] = object()


class ClientError(Exception):
    """A failure with no daemon error object behind it (no socket, dropped connection, garbled reply)."""

    error_code = "CLIENT_ERROR"

    def __init__(self, message: str, **context: Any) -> None:
        super().__init__(message)
        self.message = message
        self.context: dict[str, Any] = context


class DaemonNotRunning(ClientError):
    error_code = "DAEMON_NOT_RUNNING"

    def __init__(self, path: SocketPath) -> None:
        super().__init__(
            f"actantd is not running (no socket at {path}); "
            "start it with `actantctl daemon start` (or run `actantd` in a terminal)",
            socket=str(path),
        )


class ConnectionLost(ClientError):
    error_code = "CONNECTION_LOST"


class ClientTimeout(ClientError):
    error_code = "CLIENT_TIMEOUT"


class ProtocolError(ClientError):
    error_code = "PROTOCOL_ERROR"


class UntrustedServer(ClientError):
    """The process listening at the socket path runs as another user: it may be impersonating actantd."""

    error_code = "UNTRUSTED_SERVER"


_PEERCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def check_server(sock: socket.socket, path: SocketPath) -> None:
    """Refuse a server that is not us (or root) before sending it anything, secrets included.

    The daemon checks its peers the same way; without this check, any user able to bind the socket path
    first (a shared ``/tmp``, a stale ``$ACTANT_SOCKET``) would receive every request, ``--env`` values too.
    Root is trusted: it can read our memory anyway.
    """
    try:
        pid, uid, _gid = _PEERCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size))
    except OSError as exc:
        raise UntrustedServer(
            f"cannot tell who listens at {path} ({exc.strerror or exc}); refusing to send it anything",
            socket=str(path),
        ) from None
    me = os.getuid()
    if uid not in (me, 0):
        raise UntrustedServer(
            f"refusing to talk to the process listening at {path}: it runs as {_user_name(uid)} (uid {uid}, "
            f"pid {pid}), not as you ({_user_name(me)}, uid {me}) or root. Another user's process may be "
            "impersonating actantd; point ACTANT_SOCKET (or --socket) at your own daemon's socket.",
            socket=str(path),
            uid=uid,
            pid=pid,
        )


class _Connection:
    """One socket plus a buffered reader: a message is a line, so ``readline`` is the whole decoder."""

    def __init__(self, path: SocketPath, timeout: float | None) -> None:
        self.path = path
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(os.fspath(path))
        except (FileNotFoundError, ConnectionRefusedError):
            # No socket file, or a stale one left by a daemon that died: either way nobody is listening.
            sock.close()
            raise DaemonNotRunning(path) from None
        except TimeoutError:
            sock.close()
            raise ClientTimeout(f"timed out connecting to actantd at {path}", socket=str(path)) from None
        except OSError as exc:
            sock.close()
            reason = exc.strerror or str(exc)
            raise ClientError(f"cannot connect to actantd at {path}: {reason}", socket=str(path)) from None
        try:
            check_server(sock, path)
        except BaseException:
            sock.close()
            raise
        self._sock = sock
        self._reader = sock.makefile("rb")

    def settimeout(self, timeout: float | None) -> None:
        self._sock.settimeout(timeout)

    def send(self, message: dict[str, Any]) -> None:
        data = json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
        try:
            self._sock.sendall(data)
        except OSError as exc:
            raise ConnectionLost(f"lost the connection to actantd: {exc.strerror or exc}") from None

    def receive(self) -> dict[str, Any] | None:
        """The next message, or None at a clean end of stream."""
        try:
            line = self._reader.readline()
        except TimeoutError:
            raise
        except OSError as exc:
            raise ConnectionLost(f"lost the connection to actantd: {exc.strerror or exc}") from None
        if not line:
            return None
        if not line.endswith(b"\n"):
            raise ConnectionLost("actantd closed the connection in the middle of a message")
        try:
            message = json.loads(line)
        except ValueError:
            raise ProtocolError("actantd sent a reply that is not valid JSON") from None
        if not isinstance(message, dict):
            raise ProtocolError("actantd sent a reply that is not a JSON object")
        return message

    def close(self) -> None:
        # Shut down first: a thread blocked reading this connection (``agent logs -f`` reads each stream in
        # its own thread) wakes up with end-of-stream instead of holding the reader's lock forever.
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._reader.close()
        self._sock.close()


def _request(request_id: int, method: str, params: dict[str, Any] | None) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params or {}}


def _result_of(message: dict[str, Any]) -> Any:
    error = message.get("error")
    if error is not None:
        if not isinstance(error, dict):
            raise ProtocolError("actantd sent a malformed error object")
        raise from_rpc(error)
    return message.get("result")


class Stream:
    """The answer to a subscribing request (``result``) followed by its notifications, as an iterator.

    It owns its connection: the daemon ties a subscription to the connection, so closing it is the
    unsubscribe. Iteration ends when the daemon closes the connection; Ctrl-C raises through it, closing the connection.
    """

    def __init__(
        self, conn: _Connection, result: Any, notification_method: str, pending: deque[dict[str, Any]]
    ) -> None:
        self.result = result
        self.closed_by_peer = False
        self._conn = conn
        self._method = notification_method
        self._pending = pending
        self._subscription = result.get("subscription") if isinstance(result, dict) else None

    def matches(self, message: dict[str, Any]) -> bool:
        if "id" in message or message.get("method") != self._method:
            return False
        params = message.get("params")
        if not isinstance(params, dict):
            return False
        sub = params.get("subscription")
        return self._subscription is None or sub is None or sub == self._subscription

    def __iter__(self) -> Iterator[dict[str, Any]]:
        try:
            while self._pending:
                yield self._pending.popleft()
            while True:
                message = self._conn.receive()
                if message is None:
                    self.closed_by_peer = True
                    return
                if self.matches(message):
                    yield message["params"]
        finally:  # Ctrl-C propagates (the CLI exits 130); closing the connection is the unsubscribe
            self.close()

    def close(self) -> None:
        self._conn.close()


class Client:
    """Calls on one lazily opened connection; ``stream`` opens a dedicated one per subscription."""

    def __init__(self, path: SocketPath, timeout: float | None = DEFAULT_TIMEOUT) -> None:
        self.path = path
        self.timeout = timeout
        self._conn: _Connection | None = None
        self._ids = itertools.count(1)

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def call(self, method: str, params: dict[str, Any] | None = None, *, timeout: float | None = _UNSET) -> Any:
        """Send one request and return its ``result``; a daemon error raises its typed ``ActantError``."""
        if self._conn is None:
            self._conn = _Connection(self.path, self.timeout)
        conn = self._conn
        limit = self.timeout if timeout is _UNSET else timeout
        conn.settimeout(limit)
        request_id = next(self._ids)
        conn.send(_request(request_id, method, params))
        try:
            while True:
                message = conn.receive()
                if message is None:
                    self.close()
                    raise ConnectionLost(f"actantd closed the connection before answering {method}")
                if message.get("id") == request_id:
                    return _result_of(message)
                # Anything else is a notification for an earlier subscription on this connection: not ours.
        except TimeoutError:
            self.close()
            raise ClientTimeout(f"actantd did not answer {method} within {limit:g}s", method=method) from None

    def stream(self, method: str, params: dict[str, Any] | None, notification_method: str) -> Stream:
        """Send a subscribing request; return once it is answered, with the notifications still to come.

        Notifications that overtake the answer are kept and yielded first, so nothing is lost either way.
        """
        conn = _Connection(self.path, self.timeout)
        pending: deque[dict[str, Any]] = deque()
        early: list[dict[str, Any]] = []
        try:
            conn.send(_request(0, method, params))
            while True:
                message = conn.receive()
                if message is None:
                    raise ConnectionLost(f"actantd closed the connection before answering {method}")
                if message.get("id") == 0:
                    result = _result_of(message)
                    break
                early.append(message)
        except TimeoutError:
            conn.close()
            limit = f"{self.timeout:g}s" if self.timeout is not None else "the time limit"
            raise ClientTimeout(f"actantd did not answer {method} within {limit}", method=method) from None
        except BaseException:
            conn.close()
            raise
        conn.settimeout(None)
        stream = Stream(conn, result, notification_method, pending)
        pending.extend(m["params"] for m in early if stream.matches(m))
        return stream


def call_streaming(
    client: Client,
    method: str,
    params: dict[str, Any] | None,
    on_notification: Callable[[str, Any], None],
    *,
    timeout: float | None = None,
) -> Any:
    """One request whose notifications (``log`` lines of ``agent.run``, ``prompt`` updates of ``agent.prompt``)
    arrive while it runs: each goes to ``on_notification(method, params)``, then the result is returned.

    ``timeout`` bounds the silence between two messages, not the whole call: a long run that keeps talking
    is not cut off, a daemon that went quiet is.
    """
    conn = _Connection(client.path, client.timeout)
    try:
        conn.settimeout(timeout)
        conn.send(_request(1, method, params))
        while True:
            try:
                message = conn.receive()
            except TimeoutError:
                raise ClientTimeout(f"actantd went quiet during {method} for {timeout:g}s", method=method) from None
            if message is None:
                raise ConnectionLost(f"actantd closed the connection before answering {method}")
            if message.get("id") == 1:
                return _result_of(message)
            if "id" not in message and isinstance(message.get("method"), str):
                on_notification(message["method"], message.get("params"))
    finally:
        conn.close()
