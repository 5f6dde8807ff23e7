"""``actantctl`` end to end: the real console script as a subprocess against a real ``actantd`` (DESIGN §9).

The daemon is the in-process one (``daemon`` fixture) on its real socket, which the CLI process cannot tell
from a daemon process; ``daemon status`` (the pid it reports) and ``daemon start|stop`` use real processes.

Unlike ``tests/cli/test_commands.py`` (a scripted fake daemon), every answer here comes from the daemon itself, so
these tests pin the contract between the two halves: ``--json`` prints exactly one JSON document (one object
per line when following), tables otherwise, exit statuses (0 ok, 3 daemon not running, 4 not found, non-zero
with the reason on stderr for any other failure), streaming commands, and ``daemon start|stop``.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.harness import Daemon, DaemonBase, InProcessDaemon
from tests.helpers import alive, gone, with_default_signals, write_json

_SCRIPT = Path(sys.executable).parent / "actantctl"
CTL = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "actantctl"]
"""The installed console script when there is one (what users run), else the module."""

FAST_DEMO = ("-e", "DEMO_INTERVAL=0.2")
"""The demo agent's heartbeat every 0.2 s instead of 3 s, so a follower sees new lines quickly."""


def _env() -> dict[str, str]:
    """The caller's environment without anything that could point the CLI or daemon elsewhere."""
    drop = ("ACTANT_", "NOTIFY_SOCKET", "LISTEN_")
    return {k: v for k, v in os.environ.items() if not k.startswith(drop)}


def ctl(sock: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CTL, "--socket", str(sock), *args], capture_output=True, text=True, env=_env(), timeout=timeout
    )


def ok(sock: Path, *args: str) -> str:
    """Run a command that must succeed; its stdout. Success is silent on stderr (no tty: no progress)."""
    done = ctl(sock, *args)
    assert done.returncode == 0, f"{args}: exit {done.returncode}\nstdout: {done.stdout}\nstderr: {done.stderr}"
    assert done.stderr == "", done.stderr
    return done.stdout


def js(sock: Path, *args: str) -> Any:
    """Run a command with ``--json`` that must succeed: stdout is exactly one JSON document."""
    return json.loads(ok(sock, *args, "--json"))


def failing(sock: Path, *args: str) -> subprocess.CompletedProcess[str]:
    done = ctl(sock, *args)
    assert done.returncode != 0, f"{args} succeeded: {done.stdout}"
    assert done.stderr.startswith("error: "), done.stderr
    return done


def rows(table: str) -> list[list[str]]:
    """A table's lines split on the two-space column gap (cells never contain two spaces in these tests)."""
    return [re.split(r"\s{2,}", line.strip()) for line in table.strip().splitlines()]


class Lines:
    """A streaming ``actantctl`` process whose stdout lines are read with a deadline (a reader thread)."""

    def __init__(self, sock: Path, *args: str) -> None:
        self.argv = [*CTL, "--socket", str(sock), *args]
        # The test stops it with SIGINT, as Ctrl-C would: it must not inherit an ignored SIGINT from pytest.
        self.proc = subprocess.Popen(
            with_default_signals(self.argv),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(),
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def next(self, timeout: float = 15.0) -> str:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no output within {timeout}s from {self.argv}") from None
        if line is None:
            raise AssertionError(f"{self.argv} ended (exit {self.proc.poll()}): {self.stderr()}")
        return line

    def until(self, pred: Any, timeout: float = 15.0) -> list[str]:
        """Lines up to and including the first one satisfying ``pred``."""
        seen: list[str] = []
        deadline = time.monotonic() + timeout
        while True:
            line = self.next(max(0.01, deadline - time.monotonic()))
            seen.append(line)
            if pred(line):
                return seen

    def stderr(self) -> str:
        if self.proc.poll() is None or self.proc.stderr is None:
            return ""
        return self.proc.stderr.read()

    def stop(self, sig: int = signal.SIGINT) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(10)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self._thread.join(5)
            for pipe in (self.proc.stdout, self.proc.stderr):
                if pipe is not None:
                    pipe.close()
        return code


def _destroy_all(daemon: DaemonBase) -> None:
    for agent in daemon.call("agent.list")["agents"]:
        with contextlib.suppress(Exception):
            daemon.call("agent.destroy", {"name": agent["name"], "force": True})


@pytest.fixture
def d(daemon: InProcessDaemon) -> Iterator[InProcessDaemon]:
    """The real daemon (in-process); every agent is stopped at the end so nothing outlives the test."""
    yield daemon
    _destroy_all(daemon)


@pytest.fixture
def d_process(daemon_process: Daemon) -> Iterator[Daemon]:
    """The real daemon as a process of its own, as a user runs it."""
    yield daemon_process
    _destroy_all(daemon_process)


# ------------------------------------------------------------------------------------------------ daemon


def test_daemon_status_table_and_json(d_process: Daemon) -> None:
    d = d_process
    text = ok(d.socket, "daemon", "status")
    sheet = dict(line.split(":", 1) for line in text.splitlines() if not line.startswith(" "))
    assert sheet["pid"].strip() == str(d.pid)
    assert sheet["socket"].strip() == str(d.socket)
    assert sheet["home"].strip() == str(d.home)
    assert sheet["config errors"].strip() == "none"

    for args in (("--json", "daemon", "status"), ("daemon", "status", "--json")):  # either position
        doc = json.loads(ok(d.socket, *args))
        assert doc["pid"] == d.pid
        assert doc["socket"] == str(d.socket) and doc["configs"] == str(d.configs)
        assert doc["instances"] == {"total": 0, "byStatus": {}}
        assert doc["configErrors"] == []


def test_not_running_exits_3_and_says_how_to_start(short_tmp: Path) -> None:
    sock = short_tmp / "nobody.sock"
    for args in (("daemon", "status"), ("agent", "list"), ("events",)):
        done = ctl(sock, *args)
        assert done.returncode == 3, done
        assert done.stdout == ""
        assert "not running" in done.stderr and "start it with `actantctl daemon start`" in done.stderr
        assert len(done.stderr.splitlines()) == 1  # a one-line reason
    done = ctl(sock, "--json", "agent", "list")
    assert done.returncode == 3
    assert json.loads(done.stdout)["error"]["errorCode"] == "DAEMON_NOT_RUNNING"
    assert "not running" in done.stderr


# --------------------------------------------------------------------------------------------- templates


def test_template_list_and_show(d: InProcessDaemon) -> None:
    table = rows(ok(d.socket, "template", "list"))
    assert table[0][:2] == ["NAME", "BACKEND"] and table[0][-1] == "DESCRIPTION"
    by_name = {r[0]: r for r in table[1:]}
    assert {"demo", "code-reviewer", "sleeper"} <= set(by_name)
    assert by_name["demo"][1:3] == ["custom", "Service"]

    items = js(d.socket, "template", "list")["items"]
    demo = next(i for i in items if i["name"] == "demo")
    assert demo["file"] == "templates/demo.json" and demo["backend"] == "custom"

    shown = ok(d.socket, "template", "show", "demo")
    fields = dict(re.split(r":\s+", line, maxsplit=1) for line in shown.splitlines() if ":" in line)
    assert fields["name"] == "demo" and fields["backend"] == "custom" and fields["file"] == "templates/demo.json"

    doc = js(d.socket, "template", "show", "demo")
    assert doc["file"] == "templates/demo.json"
    assert doc["item"]["name"] == "demo" and doc["item"]["command"][-1] == "actantd.demo_agent"

    missing = failing(d.socket, "template", "show", "no-such-template")
    assert missing.returncode == 4 and "not found" in missing.stderr

    skills = js(d.socket, "skill", "list")["items"]
    assert {"code-review", "typescript-expert"} <= {s["name"] for s in skills}


def test_template_validate_names_file_and_json_path(d: InProcessDaemon, short_tmp: Path) -> None:
    good = short_tmp / "good.json"
    write_json(good, {"version": "1.0", "name": "good", "backend": "custom", "command": ["true"]})
    assert "is valid" in ok(d.socket, "template", "validate", str(good))

    broken = short_tmp / "broken.json"
    write_json(broken, {"version": "1.0", "name": "broken", "backend": "custom", "skills": ["code-review", 7]})
    done = failing(d.socket, "template", "validate", str(broken))
    assert done.returncode == 1
    assert f"{broken}: $.skills[1]:" in done.stdout
    assert "broken.json is invalid" in done.stderr

    unknown = short_tmp / "unknown-ref.json"
    write_json(unknown, {"version": "1.0", "name": "unknown-ref", "backend": "custom", "skills": ["code-reveiw"]})
    done = ctl(d.socket, "--json", "template", "validate", str(unknown))
    assert done.returncode == 1
    doc = json.loads(done.stdout)
    assert doc["valid"] is False
    assert any(str(unknown) in e and "$.skills[0]" in e and "code-reveiw" in e for e in doc["errors"]), doc

    relative = ctl(d.socket, "template", "validate", "no-such-file.json")
    assert relative.returncode == 2  # click: the file must exist


def test_config_validate_good_then_broken(d: InProcessDaemon) -> None:
    assert ok(d.socket, "config", "validate").strip() == "configs is valid"
    assert js(d.socket, "config", "validate") == {"valid": True, "errors": [], "warnings": []}

    write_json(d.configs / "skills" / "bad-skill.json", {"version": "1.0", "name": "bad-skill", "content": 5})
    done = failing(d.socket, "config", "validate")
    assert done.returncode == 1
    assert "skills/bad-skill.json: $.content" in done.stdout
    doc = json.loads(ctl(d.socket, "config", "validate", "--json").stdout)
    assert doc["valid"] is False and any("bad-skill.json" in e and "$.content" in e for e in doc["errors"])


# ------------------------------------------------------------------------------------------------ agents


def test_agent_lifecycle_with_json(d: InProcessDaemon) -> None:
    """create/list/status/start/logs/restart/stop/destroy, each printing exactly one JSON document."""
    sock = d.socket
    created = js(sock, "agent", "create", "demo", "--template", "demo")["agent"]
    assert created["name"] == "demo" and created["status"] == "Ready" and created["templateRef"] == "demo"
    assert created["pid"] is None and created["schemaVersion"] == 2
    assert js(sock, "agent", "create", "demo", "-t", "demo")["agent"]["instanceId"] == created["instanceId"]

    listed = js(sock, "agent", "list")["agents"]
    assert [(a["name"], a["status"]) for a in listed] == [("demo", "Ready")]

    started = js(sock, "agent", "start", "demo")["agent"]
    assert started["status"] == "Running" and alive(started["pid"])
    assert psutil.Process(started["pid"]).cmdline()[-2:] == ["-m", "actantd.demo_agent"]

    status = js(sock, "agent", "status", "demo")["agent"]
    assert status["status"] == "Running" and status["pid"] == started["pid"]
    assert status["live"]["rssBytes"] > 0 and status["workspace"].endswith("/instances/demo")
    assert js(sock, "agent", "list", "--status", "running")["agents"][0]["name"] == "demo"
    assert js(sock, "agent", "list", "--status", "Stopped")["agents"] == []

    logs = js(sock, "agent", "logs", "demo", "-n", "5", "--stdout")["lines"]
    assert any("demo agent 'demo' started" in line for line in logs), logs

    restarted = js(sock, "agent", "restart", "demo")["agent"]
    assert restarted["status"] == "Running" and restarted["pid"] != started["pid"]
    assert not alive(started["pid"])

    stopped = js(sock, "agent", "stop", "demo")["agent"]
    assert stopped["status"] == "Stopped" and stopped["pid"] is None
    assert stopped["lastExit"]["code"] == 0
    assert not alive(restarted["pid"])
    assert js(sock, "agent", "stop", "demo")["agent"]["status"] == "Stopped"  # idempotent

    assert js(sock, "agent", "destroy", "demo") == {"destroyed": True, "name": "demo"}
    assert js(sock, "agent", "list") == {"agents": []}
    assert js(sock, "agent", "destroy", "demo", "--force") == {"destroyed": False, "name": "demo"}


def test_agent_lifecycle_tables(d: InProcessDaemon) -> None:
    sock = d.socket
    assert ok(sock, "agent", "list").strip() == "no agents"
    assert ok(sock, "agent", "create", "web", "-t", "demo").strip() == "created web (template demo, Ready)"
    ok(sock, "agent", "create", "idle", "-t", "sleeper")

    started = ok(sock, "agent", "start", "web").strip()
    match = re.fullmatch(r"started web \(pid (\d+)\)", started)
    assert match is not None, started
    pid = int(match[1])

    table = rows(ok(sock, "agent", "list"))
    assert table[0] == ["NAME", "STATUS", "TEMPLATE", "BACKEND", "PID", "UPTIME", "CPU", "MEM", "RESTARTS"]
    assert table[1][0] == "idle" and table[1][1:5] == ["Ready", "sleeper", "custom", "-"]  # sorted by name
    assert table[2][:5] == ["web", "Running", "demo", "custom", str(pid)] and table[2][-1] == "0"

    sheet = dict(re.split(r":\s+", line, maxsplit=1) for line in ok(sock, "agent", "status", "web").splitlines())
    assert sheet["name"] == "web" and sheet["status"] == "Running" and sheet["pid"] == str(pid)
    assert sheet["template"] == "demo" and sheet["last exit"] == "-"

    assert "demo agent 'web' started" in ok(sock, "agent", "logs", "web")
    assert ok(sock, "agent", "logs", "web", "--stderr") == ""

    again = re.fullmatch(r"restarted web \(pid (\d+)\)", ok(sock, "agent", "restart", "web").strip())
    assert again is not None and int(again[1]) != pid
    assert ok(sock, "agent", "stop", "web").strip() == "stopped web"
    assert not alive(int(again[1]))
    sheet = dict(re.split(r":\s+", line, maxsplit=1) for line in ok(sock, "agent", "status", "web").splitlines())
    assert sheet["status"] == "Stopped" and sheet["last exit"].startswith("code 0")

    assert ok(sock, "agent", "destroy", "web").strip() == "destroyed web"
    assert ok(sock, "agent", "destroy", "web", "--force").strip() == "web does not exist"
    assert [r[0] for r in rows(ok(sock, "agent", "list"))[1:]] == ["idle"]


def test_unknown_agent_or_template_exits_4(d: InProcessDaemon) -> None:
    for args in (
        ("agent", "status", "ghost"),
        ("agent", "start", "ghost"),
        ("agent", "stop", "ghost"),
        ("agent", "restart", "ghost"),
        ("agent", "logs", "ghost"),
        ("agent", "destroy", "ghost"),
        ("agent", "create", "ghost", "-t", "no-such-template"),
    ):
        done = failing(d.socket, *args)
        assert done.returncode == 4, (args, done.stderr)
        assert done.stdout == ""
    done = ctl(d.socket, "--json", "agent", "status", "ghost")
    assert done.returncode == 4
    err = json.loads(done.stdout)["error"]
    assert err == {
        "code": -32003,
        "message": "no agent named 'ghost'",
        "errorCode": "AGENT_NOT_FOUND",
        "context": {"agent": "ghost"},
    }
    assert ctl(d.socket, "agent", "create", "../evil", "-t", "demo").returncode not in (0, 4)


def test_launch_failure_reports_reason_and_stderr_tail(d: InProcessDaemon) -> None:
    ok(d.socket, "agent", "create", "boom", "-t", "crasher")
    done = failing(d.socket, "agent", "start", "boom")
    assert done.returncode == 1
    assert "agent 'boom' exited right after start (exited with code 3)" in done.stderr
    assert "last lines of stderr:" in done.stderr and "    boom" in done.stderr
    assert done.stdout == ""

    ok(d.socket, "agent", "stop", "boom")  # cancel the policy's pending restarts
    done = ctl(d.socket, "--json", "agent", "start", "boom")
    if done.returncode != 0:  # a policy restart may have won the race and be Running for a moment
        err = json.loads(done.stdout)["error"]
        assert err["errorCode"] == "AGENT_LAUNCH" and err["context"]["stderrTail"][-1] == "boom"
    ok(d.socket, "agent", "stop", "boom")

    ok(d.socket, "agent", "create", "nobin", "-t", "missing-exe")
    done = failing(d.socket, "agent", "start", "nobin")
    assert done.returncode == 1
    assert "definitely-not-installed-agent" in done.stderr and "not found" in done.stderr
    assert js(d.socket, "agent", "status", "nobin")["agent"]["status"] == "Failed"


# ------------------------------------------------------------------------------------------------ events


def test_events_query_and_history(d: InProcessDaemon) -> None:
    sock = d.socket
    ok(sock, "agent", "create", "ev", "-t", "sleeper")
    ok(sock, "agent", "start", "ev")
    ok(sock, "agent", "stop", "ev")
    failing(sock, "agent", "start", "ghost")

    last = js(sock, "events", "--agent", "ev", "--type", "transition", "--limit", "2")["events"]
    assert [(e["from"], e["to"]) for e in last] == [("Running", "Stopping"), ("Stopping", "Stopped")], last
    assert all(e["agent"] == "ev" and e["type"] == "transition" and e["at"].endswith("Z") for e in last)
    everything = js(sock, "events", "--limit", "3")["events"]
    assert len(everything) == 3
    ids = [e["id"] for e in everything]
    assert ids == sorted(ids)

    since = js(sock, "events", "--agent", "ev", "--since", "10m")["events"]
    assert {"instance", "transition", "command"} <= {e["type"] for e in since}

    table = rows(ok(sock, "events", "--agent", "ev", "--type", "transition"))
    assert table[0] == ["TIME", "AGENT", "TYPE", "DETAILS"]
    assert any(r[1:3] == ["ev", "transition"] and r[3].startswith("Starting → Running") for r in table[1:]), table

    history = js(sock, "history")["events"]
    assert {e["type"] for e in history} <= {"command", "execution"}
    calls = [(e["method"], e["agent"], e["outcome"]) for e in history]
    assert ("agent.create", "ev", "ok") in calls and ("agent.stop", "ev", "ok") in calls
    assert ("agent.start", "ghost", "AGENT_NOT_FOUND") in calls
    assert all(e["method"] not in ("agent.list", "agent.status") for e in history)  # reads are not history
    text = ok(sock, "history", "--agent", "ev")
    assert re.search(r"\bev\s+command\s+agent\.start\s+ok\b", text), text


def test_events_follow_streams_json_lines_while_an_agent_starts(d: InProcessDaemon) -> None:
    sock = d.socket
    ok(sock, "agent", "create", "live", "-t", "sleeper")
    follower = Lines(sock, "--json", "events", "-f", "--agent", "live", "--since", "10m")
    try:
        # The backlog (subscription opened first) ends with the creation; everything after it is live.
        backlog = [json.loads(line) for line in follower.until(lambda s: '"to":"Ready"' in s)]
        assert backlog[-1]["type"] == "transition" and backlog[-1]["agent"] == "live"
        ok(sock, "agent", "start", "live")
        ok(sock, "agent", "stop", "live")
        lines = follower.until(lambda s: '"to":"Stopped"' in s)
        events = [json.loads(line) for line in lines]  # each line one JSON object
        assert all(line.endswith("\n") and line.count("\n") == 1 for line in lines)
        pairs = [(e["from"], e["to"]) for e in events if e["type"] == "transition"]
        assert pairs == [("Ready", "Starting"), ("Starting", "Running"), ("Running", "Stopping"),
                         ("Stopping", "Stopped")]  # fmt: skip
        assert all("subscription" not in e and e["agent"] == "live" for e in events)
        ids = [e["id"] for e in backlog + events]
        assert ids == sorted(set(ids))  # nothing printed twice, in order
    finally:
        code = follower.stop(signal.SIGINT)
    assert code == 130, follower.stderr()  # Ctrl-C: 128 + SIGINT


def test_agent_logs_follow(d: InProcessDaemon) -> None:
    sock = d.socket
    ok(sock, "agent", "create", "chatty", "-t", "demo", *FAST_DEMO)
    ok(sock, "agent", "start", "chatty")

    follower = Lines(sock, "agent", "logs", "-f", "chatty", "-n", "1", "--stdout")
    try:
        first = follower.next()
        assert "demo agent 'chatty'" in first
        later = follower.until(lambda s: "heartbeat" in s and s != first)
        assert re.search(r"demo agent 'chatty' heartbeat \d+$", later[-1].rstrip("\n"))
    finally:
        code = follower.stop(signal.SIGTERM)
    assert code in (0, -signal.SIGTERM)

    follower = Lines(sock, "--json", "agent", "logs", "-f", "chatty", "-n", "1", "--stdout")
    try:
        head = json.loads(follower.next())
        assert head["agent"] == "chatty" and head["stream"] == "stdout" and len(head["lines"]) == 1
        note = json.loads(follower.next())
        assert note["agent"] == "chatty" and note["stream"] == "stdout"
        assert note["lines"] and all("heartbeat" in line for line in note["lines"])
        ok(sock, "agent", "stop", "chatty")
        goodbye = follower.until(lambda s: "goodbye" in s)
        assert "got SIGTERM; goodbye" in json.loads(goodbye[-1])["lines"][-1]
    finally:
        code = follower.stop(signal.SIGINT)
    assert code == 130, follower.stderr()  # Ctrl-C: 128 + SIGINT


# ----------------------------------------------------------------------------------------- daemon start/stop


def test_daemon_start_spawns_a_detached_daemon_and_stop_ends_everything(short_tmp: Path) -> None:
    home, configs, sock = short_tmp / "home", short_tmp / "configs", short_tmp / "ctl.sock"
    where = ("--home", str(home), "--configs", str(configs))
    pids: list[int] = []
    try:
        assert ctl(sock, "daemon", "status").returncode == 3
        out = ok(sock, *where, "daemon", "start").strip()
        match = re.fullmatch(rf"started actantd \(pid (\d+), home {re.escape(str(home))}\)", out)
        assert match is not None, out
        pid = int(match[1])
        pids.append(pid)
        assert os.getsid(pid) == pid  # its own session: detached from the caller's terminal
        assert (home / "actantd.out").exists()
        assert (configs / "templates" / "demo.json").exists()  # seeded from the bundled configs

        again = js(sock, *where, "daemon", "start")
        assert again["started"] is False and again["pid"] == pid and again["socket"] == str(sock)
        status = js(sock, "daemon", "status")
        assert (status["pid"], status["home"], status["configs"]) == (pid, str(home), str(configs))

        ok(sock, "agent", "create", "demo", "-t", "demo")
        agent_pid = js(sock, "agent", "start", "demo")["agent"]["pid"]
        pids.append(agent_pid)

        stopped = js(sock, "daemon", "stop")
        assert stopped == {"stopped": True, "pid": pid}
        assert not alive(agent_pid)  # the daemon stops its agents before it stops answering
        # `daemon stop` returns once the socket stops answering; the process exits a few ms later.
        assert gone(pid)
        assert not sock.exists()
        assert ctl(sock, "daemon", "status").returncode == 3
        assert ok(sock, "daemon", "stop").strip() == "actantd is not running"
    finally:
        for leftover in pids:
            if alive(leftover):
                with contextlib.suppress(psutil.Error):
                    psutil.Process(leftover).kill()
                gone(leftover)
