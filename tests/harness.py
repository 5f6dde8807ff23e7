"""A real ``actantd`` in a temp home, for integration tests: as a subprocess, or in-process.

Both serve the real Unix socket and take calls through the same tiny NDJSON client (:class:`Conn`), so a test
reads the same either way. :class:`InProcessDaemon` (the ``daemon`` fixture) runs
:class:`actantd.daemon.Daemon` on the daemon's event loop in a thread of pytest: no interpreter start-up, no import of
the daemon per test. :class:`Daemon` (the ``daemon_process`` fixture) is ``python -m actantd`` in a
subprocess; use it when the test needs the daemon to be a process of its own: to SIGKILL or signal it, to
restart it over agents that outlived it (re-adoption), to check its exit code, or when a CLI process or
systemd must start it. Readiness is an event either way: the subprocess gets a ``NOTIFY_SOCKET`` and the
harness waits for its ``READY=1`` datagram, exactly as systemd would; the in-process one sets ``ready``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, TypeVar

from actantd.config.store import bundled_configs_dir, seed_configs
from tests.helpers import write_json

PYTHON = sys.executable


class RpcError(Exception):
    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(error.get("message"))
        self.error = error
        self.code = error.get("code")
        self.error_code = (error.get("data") or {}).get("errorCode")
        self.context = (error.get("data") or {}).get("context") or {}


class Conn:
    """One NDJSON connection; notifications are queued for ``next_notification``."""

    def __init__(self, path: Path, timeout: float = 30.0) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(str(path))
        self.file = self.sock.makefile("rb")
        self.ids = itertools.count(1)
        self.notifications: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def send(self, obj: Any) -> None:
        self.sock.sendall(json.dumps(obj).encode() + b"\n")

    def read(self) -> Any:
        line = self.file.readline()
        if not line:
            raise ConnectionError("daemon closed the connection")
        return json.loads(line)

    def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        rid = next(self.ids)
        self.send({"jsonrpc": "2.0", "id": rid, "method": method, "params": params or {}})
        while True:
            msg = self.read()
            if "id" not in msg:
                self.notifications.append(msg)
                continue
            assert msg["id"] == rid, msg
            if "error" in msg:
                raise RpcError(msg["error"])
            return msg["result"]

    def next_notification(self, method: str | None = None) -> dict[str, Any]:
        for i, msg in enumerate(self.notifications):
            if method is None or msg.get("method") == method:
                return self.notifications.pop(i)
        while True:
            msg = self.read()
            if "id" in msg:
                continue
            if method is None or msg.get("method") == method:
                return msg  # type: ignore[no-any-return]
            self.notifications.append(msg)

    def wait_event(self, pred: Any, timeout: float = 30.0) -> dict[str, Any]:
        """Read ``event`` notifications until one satisfies ``pred`` (bounded by the socket timeout)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            params = self.next_notification("event")["params"]
            if pred(params):
                return params  # type: ignore[no-any-return]
        raise TimeoutError("event not seen")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.file.close()
            self.sock.close()


def daemon_env() -> dict[str, str]:
    """pytest's environment without the variables that would point a daemon at another home, socket or manager."""
    env = dict(os.environ)
    for var in ("ACTANT_HOME", "ACTANT_CONFIGS", "ACTANT_SOCKET", "NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID"):
        env.pop(var, None)
    return env


class DaemonBase:
    """What both kinds of daemon share: the paths under ``root`` and calls over the real socket."""

    def __init__(self, root: Path, configs: Path | None = None) -> None:
        self.root = root
        self.home = root / "home"
        self.configs = configs or root / "configs"
        self.socket = root / "actantd.sock"
        self._conn: Conn | None = None

    def env(self) -> dict[str, str]:
        return daemon_env()

    def conn(self, timeout: float = 30.0) -> Conn:
        return Conn(self.socket, timeout)

    def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        """A call on one connection kept for the daemon's lifetime (``conn()`` for a separate one)."""
        if self._conn is None:
            self._conn = self.conn()
        return self._conn.call(method, params)

    def drop_conn(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class Daemon(DaemonBase):
    """``python -m actantd`` in a subprocess, for tests that need the daemon to be a process of its own."""

    def __init__(self, root: Path, configs: Path | None = None) -> None:
        super().__init__(root, configs)
        self.proc: subprocess.Popen[bytes] | None = None
        self.stderr_path = root / "actantd.stderr"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def argv(self) -> list[str]:
        return [PYTHON, "-m", "actantd", "--home", str(self.home), "--configs", str(self.configs),
                "--socket", str(self.socket)]  # fmt: skip

    def start(self, timeout: float = 30.0) -> None:
        notify_path = self.root / f"notify-{time.monotonic_ns()}.sock"
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(str(notify_path))
        notify.settimeout(timeout)
        env = self.env()
        env["NOTIFY_SOCKET"] = str(notify_path)
        stderr = open(self.stderr_path, "ab")  # noqa: SIM115
        try:
            self.proc = subprocess.Popen(self.argv(), env=env, stdin=subprocess.DEVNULL,
                                         stdout=stderr, stderr=stderr)  # fmt: skip
            while True:
                try:
                    data = notify.recv(4096)
                except TimeoutError:
                    raise RuntimeError(f"actantd not ready in {timeout}s:\n{self.read_stderr()}") from None
                if b"READY=1" in data:
                    break
        finally:
            stderr.close()
            notify.close()
            notify_path.unlink(missing_ok=True)

    def read_stderr(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")[-5000:]
        except FileNotFoundError:
            return ""

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait: the daemon stops its agents and exits 0."""
        self.drop_conn()
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout)
        self.proc = None
        return code

    def kill(self) -> None:
        """SIGKILL the daemon only; its agents live on (they are in their own sessions)."""
        self.drop_conn()
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()
        self.proc = None


SLEEPER = (
    "import signal,sys,time; signal.signal(signal.SIGTERM, lambda *a: sys.exit(0)); "
    "print('up', flush=True); time.sleep(3600)"
)


def test_templates(configs: Path) -> None:
    """Templates the integration tests use, on the custom backend, needing nothing but Python."""
    common = {"version": "1.0", "backend": "custom", "launchMode": "Service"}
    write_json(configs / "templates/sleeper.json", {**common, "name": "sleeper",
               "command": ["{python}", "-c", SLEEPER],
               "restart": {"policy": "OnFailure", "maxRestarts": 3, "windowSeconds": 60, "initialDelayMs": 50,
                           "maxDelayMs": 200, "minUptimeSeconds": 0.2}})  # fmt: skip
    write_json(configs / "templates/crasher.json", {**common, "name": "crasher",
               "command": ["{python}", "-c", "import sys; print('boom', file=sys.stderr); sys.exit(3)"],
               "restart": {"policy": "OnFailure", "maxRestarts": 3, "windowSeconds": 60, "initialDelayMs": 20,
                           "maxDelayMs": 100, "minUptimeSeconds": 0.5}})  # fmt: skip
    write_json(configs / "templates/stubborn.json", {**common, "name": "stubborn",
               "command": ["{python}", "-c", "import signal,time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                           "print('up', flush=True); time.sleep(3600)"],
               "stopTimeoutSeconds": 0.5, "restart": {"policy": "Never"}})  # fmt: skip
    write_json(configs / "templates/oneshot.json", {**common, "name": "oneshot", "launchMode": "OneShot",
               "command": ["{python}", "-c", "print('done')"], "restart": {"policy": "OnFailure"}})  # fmt: skip
    write_json(configs / "templates/missing-exe.json", {**common, "name": "missing-exe",
               "command": ["definitely-not-installed-agent", "--serve"]})  # fmt: skip


def make_configs(root: Path) -> Path:
    configs = root / "configs"
    shutil.copytree(bundled_configs_dir(), configs)
    test_templates(configs)
    return configs


D = TypeVar("D", bound=Daemon)


@contextlib.contextmanager
def served(d: D) -> Iterator[D]:
    """Start ``d``, and on the way out stop it whatever the test did (SIGKILL when a clean stop fails)."""
    d.start()
    try:
        yield d
    finally:
        if d.proc is not None:
            with contextlib.suppress(Exception):
                d.stop()
            if d.proc is not None and d.proc.poll() is None:
                d.proc.kill()
                d.proc.wait()


@contextlib.contextmanager
def running_daemon(root: Path) -> Iterator[Daemon]:
    with served(Daemon(root, make_configs(root))) as d:
        yield d


class InProcessDaemon(DaemonBase):
    """The real daemon object (:class:`actantd.daemon.Daemon`) in a thread of pytest, on the event loop the
    daemon would run on (``ACTANT_EVENT_LOOP``: the standard one unless it says ``uvloop``).

    It serves the real Unix socket under ``root`` with the same client API as :class:`Daemon`; what it lacks
    is a process of its own (``proc``): the tests that kill, signal or restart the daemon use :class:`Daemon`.
    It is started as ``actantd``'s ``main`` would start it (the home's lock, seeded configs; pytest is a child
    subreaper already, see ``conftest.py``), with two differences, both because it shares pytest's process:

    - no signal handlers: ``loop.add_signal_handler`` works only in the main thread, and a signal to pytest
      is not meant for the daemon; stop it with :meth:`stop` (``request_shutdown``, as SIGTERM would);
    - no orphan reaping: every zombie child of pytest would count as the daemon's orphan, including the
      ``actantctl`` processes a test runs and waits for itself (their exit status would be lost). The
      autouse ``no_leftover_processes`` fixture reaps what is left at the end of each test instead.
    """

    def __init__(self, root: Path, configs: Path | None = None) -> None:
        super().__init__(root, configs)
        self.daemon: Any = None
        """The :class:`actantd.daemon.Daemon` while running (for assertions on its state, never to mutate it)."""
        self._thread: threading.Thread | None = None
        self._loop: Any = None
        self._result: list[BaseException | int] = []
        self._lock: IO[str] | None = None

    def start(self, timeout: float = 30.0) -> None:
        from actantd.daemon import acquire_lock
        from actantd.paths import Layout

        layout = Layout(home=self.home, configs=self.configs, socket=self.socket)
        self._lock = acquire_lock(layout)
        seed_configs(layout.configs)
        ready = threading.Event()
        self._result = []
        self._thread = threading.Thread(target=self._serve, args=(layout, ready), name="actantd", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise RuntimeError(f"in-process actantd not ready in {timeout}s")
        if self._result:  # run() ended before it was ready
            self._thread.join()
            self._thread = None
            self._release_lock()
            raise RuntimeError(f"in-process actantd failed to start: {self._result[0]!r}")

    def _serve(self, layout: Any, ready: threading.Event) -> None:
        from actantd import eventloop
        from actantd.daemon import Daemon as ActantDaemon

        async def main() -> int:
            self._loop = asyncio.get_running_loop()
            self.daemon = ActantDaemon(layout, signal_handlers=False)
            run = asyncio.ensure_future(self.daemon.run())
            up = asyncio.ensure_future(self.daemon.ready.wait())
            await asyncio.wait({run, up}, return_when=asyncio.FIRST_COMPLETED)
            if not run.done():
                ready.set()
            else:
                up.cancel()
            return await run

        try:
            self._result.append(eventloop.run(main(), eventloop.chosen_loop()))
        except BaseException as exc:  # reported to the test thread, by start() or stop()
            self._result.append(exc)
        finally:
            ready.set()

    @property
    def pid(self) -> int:
        return os.getpid()

    @property
    def running(self) -> bool:
        return self._thread is not None

    def stop(self, timeout: float = 30.0, keep_agents: bool = False) -> int:
        """What SIGTERM does: stop the agents (unless ``keep_agents``), close the socket; return run()'s code."""
        self.drop_conn()
        assert self._thread is not None
        if self._thread.is_alive():
            with contextlib.suppress(RuntimeError):  # the loop already closed
                self._loop.call_soon_threadsafe(self.daemon.request_shutdown, keep_agents)
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise RuntimeError(f"in-process actantd did not stop in {timeout}s")
        self._thread = None
        self._release_lock()
        result = self._result[0]
        if isinstance(result, BaseException):
            raise result
        return result

    def _release_lock(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None


@contextlib.contextmanager
def in_process_daemon(root: Path) -> Iterator[InProcessDaemon]:
    d = InProcessDaemon(root, make_configs(root))
    d.start()
    try:
        yield d
    finally:
        if d.running:
            d.stop()


def add_template(daemon: DaemonBase, template: dict[str, Any]) -> None:
    """Write a template into the running daemon's configs and wait for the hot reload that picks it up."""
    conn = daemon.conn()
    try:
        conn.call("events.subscribe", {"types": ["config.*"]})
        write_json(daemon.configs / "templates" / f"{template['name']}.json", {"version": "1.0", **template})
        conn.wait_event(lambda e: e["type"] == "config.changed" and f"template/{template['name']}" in e["changed"])
    finally:
        conn.close()
