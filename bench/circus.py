"""circusd (from PyPI, in the venv) with N ``sleep`` watchers, driven over its ZeroMQ endpoint on a Unix socket.

Same fairness rules as :mod:`bench.supervisor`: the same interpreter, the same ``sleep 3600`` programs with
stdout/stderr to files, commands sent in-process with circus's own client (what ``circusctl`` does). A stop is
timed until circus answers ``stop`` with ``waiting: true`` *and* every program's pid is gone.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from bench.actant import SLEEP
from bench.procs import RUN_ENV, RUN_TOKEN, Procs, child_env, pid_alive, rss_bytes

BIN = Path(sys.executable).parent
CIRCUSD = BIN / "circusd"


def watcher_names(count: int) -> list[str]:
    return [f"bench-{i:03d}" for i in range(count)]


def write_config(root: Path, count: int) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "logs").mkdir(exist_ok=True)
    lines = [
        "[circus]",
        f"endpoint = ipc://{root}/circus.sock",
        f"pubsub_endpoint = ipc://{root}/circus-pub.sock",
        "check_delay = 0",
        "statsd = false",
        "",
    ]
    for name in watcher_names(count):
        lines += [
            f"[watcher:{name}]",
            f"cmd = {SLEEP} 3600",
            "numprocesses = 1",
            "autostart = false",
            "respawn = false",
            "graceful_timeout = 10",
            "stdout_stream.class = FileStream",
            f"stdout_stream.filename = {root}/logs/{name}.out.log",
            "stderr_stream.class = FileStream",
            f"stderr_stream.filename = {root}/logs/{name}.err.log",
            "",
            f"[env:{name}]",
            f"{RUN_ENV} = {RUN_TOKEN}",
            "",
        ]
    path = root / "circus.ini"
    path.write_text("\n".join(lines))
    return path


class Circusd:
    def __init__(self, root: Path, procs: Procs, count: int) -> None:
        self.root = root
        self.procs = procs
        self.count = count
        self.config = write_config(root, count)
        self.endpoint = f"ipc://{root}/circus.sock"
        self.pid = 0
        self._proc: Any = None
        self._client: Any = None

    def start(self, timeout: float = 60.0) -> None:
        self._proc = self.procs.start(
            "circusd", [str(CIRCUSD), str(self.config)], env=child_env(), log=self.root / "circusd.log"
        )
        self.pid = self._proc.pid
        deadline = time.monotonic() + timeout
        while True:
            if self._proc.poll() is not None:
                raise RuntimeError(f"circusd exited with {self._proc.returncode}: {self.log_tail()}")
            try:
                if self.call("list", timeout=2.0).get("status") == "ok":
                    return
            except Exception:
                self._reset()
            if time.monotonic() > deadline:
                raise RuntimeError(f"circusd not answering after {timeout:.0f}s: {self.log_tail()}")
            time.sleep(0.05)

    def _reset(self) -> None:
        if self._client is not None:
            self._client.stop()
            self._client = None

    def call(self, command: str, timeout: float = 120.0, **props: Any) -> dict[str, Any]:
        from circus.client import CircusClient  # type: ignore[import-untyped]  # lazily: only here is zmq needed

        if self._client is None or self._client.timeout != timeout:
            self._reset()
            self._client = CircusClient(endpoint=self.endpoint, timeout=timeout)
        reply: dict[str, Any] = self._client.call({"command": command, "properties": props})
        if reply.get("status") != "ok":
            raise RuntimeError(f"circus {command}: {reply}")
        return reply

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return (self.root / "circusd.log").read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""

    def pids(self) -> list[int]:
        out: list[int] = []
        for name in watcher_names(self.count):
            out += [int(p) for p in self.call("list", name=name).get("pids", [])]
        return out

    def start_all(self) -> float:
        """Start every watcher (one ``start`` each: circus's bare ``start`` skips ``autostart = false`` ones)."""
        t0 = time.perf_counter()
        for name in watcher_names(self.count):
            self.call("start", name=name, waiting=True)
        return time.perf_counter() - t0

    def stop_all(self) -> float:
        """``stop`` of every watcher with ``waiting: true``, then until every pid is gone; returns seconds."""
        pids = self.pids()
        t0 = time.perf_counter()
        self.call("stop", waiting=True)
        while any(pid_alive(p) for p in pids):
            time.sleep(0.001)
        return time.perf_counter() - t0

    def rss(self) -> int:
        return rss_bytes(self.pid)

    def stop(self) -> None:
        self._reset()
        if self._proc is not None:
            self.procs.stop(self._proc, timeout=60.0)
            self._proc = None
