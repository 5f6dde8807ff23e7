"""``agent logs`` (last 50 by default, both streams marked, ``-f`` from the tail, a hint before the first run)
and ``agent list`` (backend, cpu, memory; no uptime without a process), against a real daemon (issue #11)."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from tests.e2e.test_cli import CTL, _env, ctl, js, ok
from tests.harness import Daemon, add_template

CHATTY = (
    "import sys\n"
    "for i in range(120): print(f'line {i}')\n"
    "print('oops on stderr', file=sys.stderr, flush=True)\n"
    "sys.stdout.flush()\n"
    "import time; time.sleep(3600)\n"
)


def _chatty(daemon: Daemon) -> None:
    add_template(daemon, {"name": "chatty", "backend": "custom", "launchMode": "Service",
                          "command": ["{python}", "-c", CHATTY], "restart": {"policy": "Never"}})  # fmt: skip


def _wait_for_lines(sock: Path, name: str, count: int) -> None:
    deadline = time.monotonic() + 20
    while len(js(sock, "agent", "logs", name, "--all")["stdout"]) < count:
        assert time.monotonic() < deadline, "the agent's output never reached its log"
        time.sleep(0.05)


def test_logs_last_50_of_both_streams_marked(daemon: Daemon) -> None:
    sock = daemon.socket
    _chatty(daemon)
    ok(sock, "agent", "create", "c", "--template", "chatty")
    never = ctl(sock, "agent", "logs", "c")
    assert never.returncode == 0 and never.stdout == ""
    assert "c has never run" in never.stderr and "actantctl agent start c" in never.stderr
    ok(sock, "agent", "start", "c")
    _wait_for_lines(sock, "c", 120)
    lines = ok(sock, "agent", "logs", "c").splitlines()
    out = [line for line in lines if line.startswith("out | ")]
    assert out == [f"out | line {i}" for i in range(70, 120)], "the last 50 lines of stdout by default"
    assert lines[-1] == "err | oops on stderr"
    assert ok(sock, "agent", "logs", "c", "-n", "2", "--stdout").splitlines() == ["line 118", "line 119"]
    assert ok(sock, "agent", "logs", "c", "--stderr").splitlines() == ["oops on stderr"]
    assert len(ok(sock, "agent", "logs", "c", "--all", "--stdout").splitlines()) == 120
    doc = js(sock, "agent", "logs", "c", "-n", "1")
    assert doc == {"agent": "c", "stdout": ["line 119"], "stderr": ["oops on stderr"]}
    ok(sock, "agent", "stop", "c")


def test_follow_starts_from_the_tail(daemon: Daemon) -> None:
    sock = daemon.socket
    _chatty(daemon)
    ok(sock, "agent", "create", "c", "--template", "chatty")
    ok(sock, "agent", "start", "c")
    _wait_for_lines(sock, "c", 120)
    proc = subprocess.Popen([*CTL, "--socket", str(sock), "agent", "logs", "-f", "c", "-n", "3", "--json"],
                            stdout=subprocess.PIPE, text=True, env=_env())  # fmt: skip
    try:
        assert proc.stdout is not None
        first = json.loads(proc.stdout.readline())
        second = json.loads(proc.stdout.readline())
        assert first == {"agent": "c", "stream": "stdout", "lines": ["line 117", "line 118", "line 119"]}
        assert second["stream"] == "stderr" and second["lines"] == ["oops on stderr"]
    finally:
        proc.terminate()
        proc.wait(10)
    ok(sock, "agent", "stop", "c")


def test_list_shows_backend_cpu_memory_and_no_uptime_without_a_process(daemon: Daemon) -> None:
    sock = daemon.socket
    ok(sock, "agent", "create", "up", "--template", "sleeper")
    ok(sock, "agent", "create", "idle", "--template", "demo")
    ok(sock, "agent", "start", "up")
    table = ok(sock, "agent", "list").splitlines()
    assert table[0].split() == ["NAME", "STATUS", "TEMPLATE", "BACKEND", "PID", "UPTIME", "CPU", "MEM", "RESTARTS"]
    rows = {line.split()[0]: line.split() for line in table[1:]}
    assert rows["idle"][1:] == ["Ready", "demo", "custom", "-", "-", "-", "-", "0"]
    up = rows["up"]
    assert up[1:4] == ["Running", "sleeper", "custom"] and up[4].isdigit()
    assert up[6].endswith("%") and up[8] in ("KiB", "MiB"), up
    wide = ok(sock, "agent", "list", "-o", "wide").splitlines()
    assert wide[0].split()[:9] == table[0].split() and wide[0].endswith("BRANCH  AHEAD/BEHIND  CHANGES")
    ok(sock, "agent", "stop", "up")
    stopped = {line.split()[0]: line.split() for line in ok(sock, "agent", "list").splitlines()[1:]}
    assert stopped["up"][4:6] == ["-", "-"], "a stopped agent has no pid and no uptime"
    records = js(sock, "agent", "list")["agents"]
    assert all("live" not in r for r in records), "--json stays the plain records (cheap for scripts)"
