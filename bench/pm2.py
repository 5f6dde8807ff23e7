"""PM2 (from the npm registry) running ``sleep`` apps in the foreground (``pm2-runtime``), with its event bus.

PM2 is installed once with ``npm install --prefix ~/.cache/actant-bench/pm2 pm2`` (outside the repository);
when npm or the registry is unreachable :func:`install` returns None and the figures that need PM2 say so
instead of failing. ``pm2-runtime`` keeps PM2's daemon in the foreground, so the benchmark's process registry
owns it (and sweeps it with everything else of the run). Events are read from PM2's bus by a small node
script (``node/pm2_bus.js``) that prints one JSON line per ``process:event``; a line is timed on arrival, as
Actant's events are.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from bench.actant import SLEEP
from bench.procs import Procs, child_env

CACHE = Path.home() / ".cache" / "actant-bench" / "pm2"
BUS_JS = Path(__file__).resolve().parent / "node" / "pm2_bus.js"


def install(timeout: float = 300.0) -> Path | None:
    """The ``node_modules`` holding pm2, installing it on first use; None (with the reason printed) if not."""
    modules = CACHE / "node_modules"
    if (modules / "pm2" / "package.json").exists():
        return modules
    npm, node = shutil.which("npm"), shutil.which("node")
    if npm is None or node is None:
        return None
    CACHE.mkdir(parents=True, exist_ok=True)
    try:
        subprocess.run([npm, "install", "--prefix", str(CACHE), "pm2"], check=True, timeout=timeout,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return modules if (modules / "pm2" / "package.json").exists() else None


def version(modules: Path) -> str:
    data: dict[str, Any] = json.loads((modules / "pm2" / "package.json").read_text())
    return str(data.get("version", "?"))


class Pm2:
    def __init__(self, root: Path, procs: Procs, modules: Path, apps: list[dict[str, Any]]) -> None:
        self.root = root
        self.procs = procs
        self.modules = modules
        self.home = root / "pm2-home"
        self.home.mkdir(parents=True, exist_ok=True)
        self.eco = root / "ecosystem.json"
        self.eco.write_text(json.dumps({"apps": apps}))
        self.env = child_env({"PM2_HOME": str(self.home)})
        self._runtime: Any = None
        self.bus: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> None:
        runtime = self.modules / ".bin" / "pm2-runtime"
        self._runtime = self.procs.start("pm2-runtime", [str(runtime), "start", str(self.eco)], env=self.env,
                                         log=self.root / "pm2-runtime.log")  # fmt: skip
        deadline = time.monotonic() + timeout
        while not (self.home / "rpc.sock").exists() or not (self.home / "pub.sock").exists():
            if self._runtime.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"pm2-runtime did not come up: {self.log_tail()}")
            time.sleep(0.05)
        argv = ["node", str(BUS_JS), str(self.modules / "pm2")]
        self.bus = subprocess.Popen(
            argv, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True
        )
        first = self.read_event(deadline)
        if not first.get("ready"):
            raise RuntimeError(f"pm2 bus: unexpected first line {first}")

    def read_event(self, deadline: float) -> dict[str, Any]:
        assert self.bus is not None and self.bus.stdout is not None
        line = self.bus.stdout.readline()  # PM2 prints nothing else on this pipe; a timeout is the budget's
        if not line:
            raise RuntimeError(f"pm2 bus ended: {self.log_tail()}")
        del deadline
        event: dict[str, Any] = json.loads(line)
        return event

    def wait_for(self, name: str, what: str, timeout: float = 30.0) -> float:
        """perf_counter at the arrival of the next ``what`` event (``exit``, ``online``) of app ``name``."""
        deadline = time.monotonic() + timeout
        while True:
            event = self.read_event(deadline)
            if event.get("name") == name and event.get("event") == what:
                return time.perf_counter()

    def pid(self, name: str) -> int:
        out = subprocess.run([str(self.modules / ".bin" / "pm2"), "pid", name], env=self.env, capture_output=True,
                             text=True, timeout=30, check=True).stdout  # fmt: skip
        return int(out.split()[-1])

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return (self.root / "pm2-runtime.log").read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""

    def stop(self) -> None:
        if self.bus is not None:
            self.bus.kill()
            self.bus.wait(10)
            self.bus = None
        if self._runtime is not None:
            self.procs.stop(self._runtime, timeout=30)
            self._runtime = None


def crash_app(name: str) -> dict[str, Any]:
    """A ``sleep`` restarted at once whenever it dies (no delay, no backoff, no budget)."""
    return {"name": name, "script": SLEEP, "args": "3600", "interpreter": "none", "autorestart": True,
            "restart_delay": 0, "min_uptime": 0, "max_restarts": 1_000_000}  # fmt: skip
