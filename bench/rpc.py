"""A minimal NDJSON JSON-RPC client for actantd's socket, built for measuring.

It reads with large ``recv`` calls and splits lines itself, and it stamps every message with the
``perf_counter`` instant its line was read, so a benchmark can tell when an event *arrived* even if it only
looks at it later. Notifications are queued; requests can be pipelined with :meth:`Rpc.call_many`.
"""

from __future__ import annotations

import itertools
import json
import socket
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

Event = dict[str, Any]


class RpcError(Exception):
    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(f"{error.get('code')}: {error.get('message')}")
        self.error = error


class Rpc:
    def __init__(self, path: Path, timeout: float = 60.0) -> None:
        self.timeout = timeout
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(str(path))
        self._parts: list[bytes] = []
        self._lines: deque[tuple[float, bytes]] = deque()
        self._ids = itertools.count(1)
        self._responses: dict[int, dict[str, Any]] = {}
        self.events: deque[tuple[float, Event]] = deque()
        """``(arrival perf_counter, params)`` of every ``event`` notification not consumed yet."""

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Rpc:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading ---------------------------------------------------------------------------------------

    def read_line(self, deadline: float | None = None) -> tuple[float, bytes]:
        """The next complete line and the instant its last byte was read."""
        while not self._lines:
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError("no message from actantd before the deadline")
                self.sock.settimeout(min(remaining, self.timeout))
            chunk = self.sock.recv(1 << 20)
            now = time.perf_counter()
            if not chunk:
                raise ConnectionError("actantd closed the connection")
            if b"\n" not in chunk:
                self._parts.append(chunk)
                continue
            data = b"".join((*self._parts, chunk)) if self._parts else chunk
            *complete, rest = data.split(b"\n")
            self._parts = [rest] if rest else []
            self._lines.extend((now, line) for line in complete if line)
        if deadline is not None:
            self.sock.settimeout(self.timeout)
        return self._lines.popleft()

    def _read_message(self, deadline: float | None) -> None:
        at, line = self.read_line(deadline)
        msg = json.loads(line)
        if isinstance(msg, dict) and "id" in msg and msg["id"] is not None:
            self._responses[msg["id"]] = msg
        elif isinstance(msg, dict) and msg.get("method") == "event":
            self.events.append((at, msg["params"]))

    # -- requests --------------------------------------------------------------------------------------

    def send(self, method: str, params: dict[str, Any] | None = None) -> int:
        rid = next(self._ids)
        self.sock.sendall(self.encode(rid, method, params))
        return rid

    @staticmethod
    def encode(rid: int, method: str, params: dict[str, Any] | None) -> bytes:
        return json.dumps({"jsonrpc": "2.0", "id": rid, "method": method, "params": params or {}}).encode() + b"\n"

    def result(self, rid: int, timeout: float | None = None) -> Any:
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        while rid not in self._responses:
            self._read_message(deadline)
        msg = self._responses.pop(rid)
        if "error" in msg:
            raise RpcError(msg["error"])
        return msg["result"]

    def call(self, method: str, params: dict[str, Any] | None = None, timeout: float | None = None) -> Any:
        return self.result(self.send(method, params), timeout)

    def call_many(
        self, calls: Sequence[tuple[str, dict[str, Any]]], timeout: float | None = None, window: int = 64
    ) -> list[Any]:
        """Pipeline ``calls`` with at most ``window`` in flight; results in call order (errors raise)."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        ids: list[int] = []
        pending: deque[int] = deque()
        for method, params in calls:
            while len(pending) >= window:
                while pending[0] not in self._responses:
                    self._read_message(deadline)
                pending.popleft()
            rid = next(self._ids)
            self.sock.sendall(self.encode(rid, method, params))
            ids.append(rid)
            pending.append(rid)
        return [self.result(rid, max(0.001, deadline - time.monotonic())) for rid in ids]

    # -- events ----------------------------------------------------------------------------------------

    def wait_event(self, pred: Callable[[Event], bool], timeout: float = 30.0) -> tuple[float, Event]:
        """The first queued or arriving event matching ``pred`` (earlier non-matching ones stay queued)."""
        deadline = time.monotonic() + timeout
        for i, (at, event) in enumerate(self.events):
            if pred(event):
                del self.events[i]
                return at, event
        while True:
            seen = len(self.events)
            self._read_message(deadline)
            if len(self.events) > seen:
                at, event = self.events[-1]
                if pred(event):
                    self.events.pop()
                    return at, event

    def drain_events(self) -> list[tuple[float, Event]]:
        """Read whatever has already arrived (without blocking) and return every queued event."""
        self.sock.setblocking(False)
        try:
            while True:
                try:
                    chunk = self.sock.recv(1 << 20)
                except BlockingIOError:
                    break
                if not chunk:
                    raise ConnectionError("actantd closed the connection")
                self._parts.append(chunk)
        finally:
            self.sock.settimeout(self.timeout)
        data = b"".join(self._parts)
        *complete, rest = data.split(b"\n")
        self._parts = [rest] if rest else []
        now = time.perf_counter()
        self._lines.extend((now, line) for line in complete if line)
        while self._lines:
            self._read_message(None)
        out = list(self.events)
        self.events.clear()
        return out
