"""A real ``actantd`` in a temp directory: configs with the bench templates, start/stop, READY=1 timing.

The daemon is the installed one, run as ``python -m actantd --home --configs --socket`` with a
``NOTIFY_SOCKET``: readiness is the daemon's own ``READY=1`` datagram, as systemd sees it, and the start-up
time is measured from just before ``exec`` to that datagram.
"""

from __future__ import annotations

import json
import shutil
import socket
import sys
import time
from pathlib import Path
from typing import Any

import msgspec

from actantd.config.store import bundled_configs_dir
from actantd.instances.record import Overrides, encode, new_record, utc_now
from actantd.instances.state import Status
from actantd.paths import INSTANCE_FILE
from bench.procs import Procs, child_env, rss_bytes
from bench.rpc import Rpc

PYTHON = sys.executable
SLEEP = shutil.which("sleep") or "/bin/sleep"

SLEEP_TEMPLATE = "bench-sleep"
"""``sleep 3600`` on the custom backend: the cheapest real agent (about 1 MiB each)."""
CRASH_TEMPLATE = "bench-crash"
"""``sleep 3600`` restarted at once by policy, with a budget no benchmark exhausts."""


def write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2) + "\n")


def make_configs(root: Path) -> Path:
    """A copy of the bundled configs plus the bench templates."""
    configs = root / "configs"
    shutil.copytree(bundled_configs_dir(), configs)
    common = {"version": "1.0", "backend": "custom", "launchMode": "Service", "command": [SLEEP, "3600"]}
    write_json(configs / "templates" / f"{SLEEP_TEMPLATE}.json", {**common, "name": SLEEP_TEMPLATE,
               "description": "benchmark agent: sleep", "restart": {"policy": "Never"}})  # fmt: skip
    write_json(configs / "templates" / f"{CRASH_TEMPLATE}.json", {**common, "name": CRASH_TEMPLATE,
               "description": "benchmark agent: sleep, restarted at once when killed",
               "restart": {"policy": "Always", "maxRestarts": 1_000_000, "windowSeconds": 60,
                           "initialDelayMs": 0, "maxDelayMs": 0, "minUptimeSeconds": 0}})  # fmt: skip
    return configs


def generate_instances(home: Path, count: int, template: str = SLEEP_TEMPLATE, prefix: str = "agent") -> list[str]:
    """Write ``count`` Stopped instances straight to disk, in the daemon's own record format.

    Each gets the ``AGENTS.md`` a real instance of the template has, so a scan walks realistic directories.
    Files are written plainly (no fsync): this builds a fixture, it does not measure anything.
    """
    instances = home / "instances"
    instances.mkdir(parents=True, exist_ok=True)
    agents_md = f"# {template}\n\nBenchmark agent.\n".encode()
    width = len(str(count - 1))
    names = []
    now = utc_now()
    for i in range(count):
        name = f"{prefix}-{i:0{width}d}"
        base = new_record(name=name, template_ref=template, launch_mode="Service", workspace_policy="Persistent",
                          work_dir=None, overrides=Overrides())  # fmt: skip
        record = msgspec.structs.replace(base, status=Status.STOPPED, reason="stopped", updated_at=now,
                                         stopped_at=now, materialized=["AGENTS.md"])  # fmt: skip
        directory = instances / name
        directory.mkdir()
        (directory / INSTANCE_FILE).write_bytes(encode(record))
        (directory / "AGENTS.md").write_bytes(agents_md)
        names.append(name)
    return names


class ActantDaemon:
    def __init__(self, root: Path, procs: Procs, configs: Path | None = None) -> None:
        self.root = root
        self.procs = procs
        self.home = root / "home"
        self.configs = configs if configs is not None else make_configs(root)
        self.socket = root / "actantd.sock"
        self.log = root / "actantd.log"
        self.pid = 0
        self._proc: Any = None

    def argv(self) -> list[str]:
        return [PYTHON, "-m", "actantd", "--home", str(self.home), "--configs", str(self.configs),
                "--socket", str(self.socket)]  # fmt: skip

    def start(self, timeout: float = 120.0) -> float:
        """Start and wait for READY=1; returns the seconds from just before exec to the datagram."""
        notify_path = self.root / f"notify-{time.monotonic_ns()}.sock"
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(str(notify_path))
        notify.settimeout(0.2)
        try:
            env = child_env({"NOTIFY_SOCKET": str(notify_path), "ACTANT_LOG_LEVEL": "WARNING"})
            t0 = time.perf_counter()
            self._proc = self.procs.start("actantd", self.argv(), env=env, log=self.log)
            deadline = time.monotonic() + timeout
            while True:
                try:
                    data = notify.recv(4096)
                except TimeoutError:
                    if self._proc.poll() is not None:
                        raise RuntimeError(
                            f"actantd exited with {self._proc.returncode} before READY=1:\n{self.log_tail()}"
                        ) from None
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"actantd not READY in {timeout:.0f}s:\n{self.log_tail()}") from None
                    continue
                if b"READY=1" in data:
                    elapsed = time.perf_counter() - t0
                    break
        finally:
            notify.close()
            notify_path.unlink(missing_ok=True)
        self.pid = self._proc.pid
        return elapsed

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""

    def rpc(self, timeout: float = 60.0) -> Rpc:
        return Rpc(self.socket, timeout)

    def rss(self) -> int:
        return rss_bytes(self.pid)

    def stop(self, timeout: float = 60.0) -> int | None:
        """SIGTERM: the daemon stops its agents and exits 0 (SIGKILL after ``timeout``)."""
        if self._proc is None:
            return None
        code = self.procs.stop(self._proc, timeout)
        self._proc = None
        return code

    def record(self, name: str) -> dict[str, Any]:
        """The instance's ``.actant.json`` as an outside tool reads it."""
        data: dict[str, Any] = json.loads((self.home / "instances" / name / INSTANCE_FILE).read_bytes())
        return data


def create_many(rpc: Rpc, names: list[str], template: str) -> None:
    rpc.call_many([("agent.create", {"name": n, "template": template}) for n in names], timeout=600, window=16)


def start_all(rpc: Rpc, names: list[str], timeout: float = 120.0) -> float:
    """Start every instance (``wait: false`` pipelined) and wait for a ``Running`` transition of each.

    The caller must have subscribed ``rpc`` to transitions. Returns the seconds until the last ``Running``.
    """
    pending = set(names)
    t0 = time.perf_counter()
    rids = [rpc.send("agent.start", {"name": n, "wait": False}) for n in names]
    last = t0
    deadline = time.monotonic() + timeout
    while pending:
        at, event = rpc.wait_event(
            lambda e: e.get("type") == "transition" and e.get("to") == "Running" and e.get("agent") in pending,
            timeout=max(0.001, deadline - time.monotonic()),
        )
        pending.discard(event["agent"])
        last = at
    for rid in rids:
        rpc.result(rid, timeout=max(0.001, deadline - time.monotonic()))
    return last - t0
