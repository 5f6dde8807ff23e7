"""A stand-in for actantd for the CLI tests: a real Unix socket speaking NDJSON JSON-RPC, with canned answers.

In-process (:class:`FakeDaemon`, a thread) it records every request, answers per method with a result, a
callable or an error, and can push notifications after answering a method. As a script
(``python fake_daemon.py --socket S --home H``) it plays the daemon for ``actantctl daemon start``: it takes
the per-home flock like the real one (losers exit 1 at once), answers ping/status, and exits on shutdown.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

Result = Any | Callable[[dict[str, Any]], Any]


class FakeDaemon:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.results: dict[str, Result] = {
            "daemon.ping": {"version": "0.1.0", "pid": os.getpid(), "uptimeSeconds": 1},
            "daemon.shutdown": {"ok": True},
        }
        self.errors: dict[str, dict[str, Any]] = {}
        self.pushes: dict[str, tuple[list[tuple[str, dict[str, Any]]], bool]] = {}
        self.requests: list[dict[str, Any]] = []
        self.stopped = threading.Event()
        self._listener: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()

    # -- configuration ------------------------------------------------------------------------------------

    def answer(self, method: str, result: Result) -> None:
        self.results[method] = result

    def fail(self, method: str, error: Any) -> None:
        """``error`` is an ``ActantError`` (sent via ``to_rpc``) or a raw error object."""
        self.errors[method] = error.to_rpc() if hasattr(error, "to_rpc") else error

    def push_after(self, method: str, notifications: list[tuple[str, dict[str, Any]]], close: bool = True) -> None:
        """After answering ``method``, send these notifications, then close the connection if ``close``."""
        self.pushes[method] = (notifications, close)

    def params(self, method: str) -> list[dict[str, Any]]:
        return [r.get("params") or {} for r in self.requests if r.get("method") == method]

    # -- serving ------------------------------------------------------------------------------------------

    def start(self) -> FakeDaemon:
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(self.path))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def stop(self) -> None:
        self.stopped.set()
        with self._lock:  # stop() runs from the test and from the daemon.shutdown handler: take it once
            listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        with self._lock:
            for conn in self._conns:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
                conn.close()
            self._conns.clear()

    def __enter__(self) -> FakeDaemon:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _accept(self) -> None:
        while not self.stopped.is_set() and self._listener is not None:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self._conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        reader = conn.makefile("rb")
        try:
            for line in reader:
                request = json.loads(line)
                self.requests.append(request)
                if not self._respond(conn, request):
                    return
        except OSError:
            return
        finally:
            with contextlib.suppress(OSError):
                conn.close()

    def _respond(self, conn: socket.socket, request: dict[str, Any]) -> bool:
        """Answer one request; False when the connection should end."""
        method = request["method"]
        params = request.get("params") or {}
        reply: dict[str, Any] = {"jsonrpc": "2.0", "id": request.get("id")}
        if method in self.errors:
            reply["error"] = self.errors[method]
        elif method in self.results:
            result = self.results[method]
            reply["result"] = result(params) if callable(result) else result
        else:
            reply["error"] = {"code": -32601, "message": f"method not found: {method}"}
        send(conn, reply)
        if method == "daemon.shutdown":
            threading.Thread(target=self.stop, daemon=True).start()
            return False
        notifications, close = self.pushes.get(method, ([], False))
        for name, note in notifications:
            send(conn, {"jsonrpc": "2.0", "method": name, "params": note})
        return not close


def send(conn: socket.socket, message: dict[str, Any]) -> None:
    conn.sendall(json.dumps(message).encode() + b"\n")


def main() -> None:
    """Script mode: behave like ``actantd --socket S --home H`` as far as ``daemon start|stop`` can tell."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--socket", required=True)
    parser.add_argument("--home", required=True)
    parser.add_argument("--configs")
    parser.add_argument("--startup-delay", type=float, default=0.3)
    args = parser.parse_args()
    home = Path(args.home)
    home.mkdir(parents=True, exist_ok=True)
    with open(home / "actantd.lock", "a") as lock:  # held for the process lifetime, like the real daemon's
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print("another daemon holds the lock", file=sys.stderr)
            sys.exit(1)
        time.sleep(args.startup_delay)  # the window in which racing starters must keep waiting
        with contextlib.suppress(FileNotFoundError):
            os.unlink(args.socket)
        fake = FakeDaemon(Path(args.socket))
        fake.answer("daemon.status", {"version": "0.1.0", "pid": os.getpid(), "home": str(home)})
        fake.start()
        print(f"fake actantd {os.getpid()} listening", flush=True)
        fake.stopped.wait()


if __name__ == "__main__":
    main()
