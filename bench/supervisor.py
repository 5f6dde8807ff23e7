"""supervisord (from PyPI, in the venv) with N ``sleep`` programs, driven over its Unix socket.

The comparison is kept fair: the same interpreter runs both daemons, both talk over a Unix socket, both
programs run the same ``sleep 3600`` and log stdout/stderr to files. supervisord's XML-RPC is called
in-process with :mod:`xmlrpc.client` over the socket (what ``supervisorctl`` does), so client start-up
is not counted where it is not counted for Actant either.
"""

from __future__ import annotations

import http.client
import socket
import sys
import time
import xmlrpc.client
from pathlib import Path
from typing import Any

from bench.actant import SLEEP
from bench.procs import RUN_ENV, RUN_TOKEN, Procs, child_env, rss_bytes

BIN = Path(sys.executable).parent
SUPERVISORD = BIN / "supervisord"
SUPERVISORCTL = BIN / "supervisorctl"


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


class _UnixTransport(xmlrpc.client.Transport):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__()
        self._path = path
        self._timeout = timeout

    def make_connection(self, host: Any) -> http.client.HTTPConnection:
        return _UnixHTTPConnection(self._path, self._timeout)


def program_names(count: int) -> list[str]:
    return [f"bench-{i:03d}" for i in range(count)]


def write_config(root: Path, count: int, *, startsecs: int = 0, autostart: bool = False) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "childlogs").mkdir(exist_ok=True)
    lines = [
        "[unix_http_server]",
        f"file={root}/supervisor.sock",
        "chmod=0700",
        "",
        "[supervisord]",
        f"logfile={root}/supervisord.log",
        f"pidfile={root}/supervisord.pid",
        f"childlogdir={root}/childlogs",
        "nodaemon=true",
        "minfds=1024",
        "minprocs=200",
        "",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
        "",
        "[supervisorctl]",
        f"serverurl=unix://{root}/supervisor.sock",
        "",
    ]
    for name in program_names(count):
        lines += [
            f"[program:{name}]",
            f"command={SLEEP} 3600",
            f"autostart={'true' if autostart else 'false'}",
            "autorestart=false",
            f"startsecs={startsecs}",
            f"stdout_logfile={root}/childlogs/{name}.out.log",
            f"stderr_logfile={root}/childlogs/{name}.err.log",
            f'environment={RUN_ENV}="{RUN_TOKEN}"',
            "",
        ]
    path = root / "supervisord.conf"
    path.write_text("\n".join(lines))
    return path


class Supervisord:
    def __init__(self, root: Path, procs: Procs, count: int, *, startsecs: int = 0) -> None:
        self.root = root
        self.procs = procs
        self.count = count
        self.config = write_config(root, count, startsecs=startsecs)
        self.socket = root / "supervisor.sock"
        self.pid = 0
        self._proc: Any = None

    def start(self, timeout: float = 60.0) -> None:
        self._proc = self.procs.start(
            "supervisord", [str(SUPERVISORD), "-c", str(self.config)], env=child_env(), log=self.root / "stdio.log"
        )
        self.pid = self._proc.pid
        deadline = time.monotonic() + timeout
        while True:
            if self._proc.poll() is not None:
                raise RuntimeError(f"supervisord exited with {self._proc.returncode}: {self.log_tail()}")
            try:
                if self.proxy(2.0).supervisor.getState()["statename"] == "RUNNING":
                    return
            except (OSError, xmlrpc.client.Error):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"supervisord not answering after {timeout:.0f}s: {self.log_tail()}")
            time.sleep(0.02)

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return (self.root / "supervisord.log").read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""

    def proxy(self, timeout: float = 60.0) -> Any:
        return xmlrpc.client.ServerProxy("http://localhost", transport=_UnixTransport(str(self.socket), timeout))

    def states(self) -> dict[str, str]:
        return {p["name"]: p["statename"] for p in self.proxy().supervisor.getAllProcessInfo()}

    def start_all(self) -> float:
        """``startAllProcesses(wait=True)`` (what ``supervisorctl start all`` calls); returns seconds."""
        proxy = self.proxy(120.0)
        t0 = time.perf_counter()
        results = proxy.supervisor.startAllProcesses(True)
        elapsed = time.perf_counter() - t0
        bad = [r for r in results if r.get("description") != "OK"]
        if bad:
            raise RuntimeError(f"supervisord failed to start {len(bad)} programs: {bad[:3]}")
        states = self.states()
        not_running = [n for n, s in states.items() if s != "RUNNING"]
        if not_running:
            raise RuntimeError(f"after startAllProcesses, not RUNNING: {not_running[:5]}")
        return elapsed

    def stop_all(self) -> None:
        self.proxy(120.0).supervisor.stopAllProcesses(True)

    def rss(self) -> int:
        return rss_bytes(self.pid)

    def ctl(self) -> list[str]:
        return [str(SUPERVISORCTL), "-c", str(self.config)]

    def stop(self) -> None:
        if self._proc is not None:
            self.procs.stop(self._proc, timeout=60.0)
            self._proc = None
