"""One supervised agent through the real daemon: start, stop, crash, restart, escalation, trees, logs, attach,
health, one-shots.

The daemon runs in-process (``daemon`` fixture) and is talked to over its real socket; the agents are real
processes. Re-adoption after a daemon restart is in ``test_readoption.py`` (it needs a daemon process).
Every wait here is for an event (a transition notification, a process exit); timeouts only bound how long a
broken build may hang.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from tests.harness import InProcessDaemon, RpcError, add_template
from tests.helpers import instance_procs, transition


def test_start_status_stop(daemon: InProcessDaemon) -> None:
    daemon.call("agent.create", {"name": "s1", "template": "sleeper"})
    agent = daemon.call("agent.start", {"name": "s1"})["agent"]
    assert agent["status"] == "Running" and agent["pid"] > 0
    proc = psutil.Process(agent["pid"])
    assert proc.is_running()
    status = daemon.call("agent.status", {"name": "s1"})["agent"]
    assert status["live"]["rssBytes"] > 0 and status["live"]["uptimeSeconds"] >= 0
    assert status["workspace"].endswith("/instances/s1")
    stopped = daemon.call("agent.stop", {"name": "s1"})["agent"]
    assert stopped["status"] == "Stopped" and stopped["pid"] is None
    assert stopped["lastExit"]["code"] == 0
    assert not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
    on_disk = json.loads((daemon.home / "instances/s1/.actant.json").read_text())
    assert on_disk["status"] == "Stopped"


def test_missing_executable_is_a_clear_launch_error(daemon: InProcessDaemon) -> None:
    daemon.call("agent.create", {"name": "nx", "template": "missing-exe"})
    with pytest.raises(RpcError) as info:
        daemon.call("agent.start", {"name": "nx"})
    assert info.value.code == -32008
    assert "definitely-not-installed-agent" in info.value.error["message"]
    assert daemon.call("agent.status", {"name": "nx"})["agent"]["status"] == "Failed"


def test_immediate_crash_reports_reason_and_stderr_tail(daemon: InProcessDaemon) -> None:
    daemon.call("agent.create", {"name": "cr", "template": "crasher"})
    with pytest.raises(RpcError) as info:
        daemon.call("agent.start", {"name": "cr"})
    assert info.value.error_code == "AGENT_LAUNCH"
    assert "exited with code 3" in info.value.error["message"]
    assert "boom" in info.value.context["stderrTail"]
    daemon.call("agent.stop", {"name": "cr"})


def test_kill_9_restarts_with_new_pid_and_crash_is_fast(daemon: InProcessDaemon) -> None:
    daemon.call("agent.create", {"name": "k9", "template": "sleeper"})
    pid = daemon.call("agent.start", {"name": "k9"})["agent"]["pid"]
    events = daemon.conn()
    events.call("events.subscribe", {"agent": "k9", "types": ["transition"]})
    t0 = time.time()
    os.kill(pid, signal.SIGKILL)
    crashed = events.wait_event(transition("Crashed"))
    latency_ms = (time.time() - t0) * 1000
    assert "SIGKILL" in crashed["reason"]
    assert latency_ms < 1000, latency_ms  # a sanity bound; the benchmark measures the real figure
    events.wait_event(transition("Restarting"))
    events.wait_event(transition("Running"))
    agent = daemon.call("agent.status", {"name": "k9"})["agent"]
    assert agent["pid"] != pid and agent["restartCount"] == 1
    assert agent["lastExit"]["signal"] == signal.SIGKILL
    events.close()
    daemon.call("agent.stop", {"name": "k9"})


def test_crash_loop_ends_in_failed(daemon: InProcessDaemon) -> None:
    daemon.call("agent.create", {"name": "loop", "template": "crasher"})
    events = daemon.conn()
    events.call("events.subscribe", {"agent": "loop", "types": ["transition"]})
    daemon.call("agent.start", {"name": "loop", "wait": False})
    failed = events.wait_event(transition("Failed"))
    assert "restart budget exhausted" in failed["reason"]
    agent = daemon.call("agent.status", {"name": "loop"})["agent"]
    assert agent["status"] == "Failed" and agent["restartCount"] == 3
    history = daemon.call("events.query", {"agent": "loop", "types": ["transition"], "limit": 100})["events"]
    assert [e["to"] for e in history].count("Crashed") == 4
    events.close()


def test_stop_during_backoff_cancels_restart(daemon: InProcessDaemon) -> None:
    add_template(daemon, {
        "name": "slowback", "backend": "custom",
        "command": ["{python}", "-c", "import sys; sys.exit(1)"],
        "restart": {"policy": "Always", "initialDelayMs": 60000, "maxDelayMs": 60000, "minUptimeSeconds": 0},
    })  # fmt: skip
    events = daemon.conn()
    events.call("events.subscribe", {"types": ["transition"]})
    daemon.call("agent.create", {"name": "sb", "template": "slowback"})
    daemon.call("agent.start", {"name": "sb", "wait": False})
    events.wait_event(transition("Restarting", "sb"))
    assert daemon.call("agent.stop", {"name": "sb"})["agent"]["status"] == "Stopped"
    agent = daemon.call("agent.status", {"name": "sb"})["agent"]
    assert agent["status"] == "Stopped" and "cancelled" in agent["reason"]
    events.close()


def test_sigterm_ignored_escalates_to_sigkill(daemon: InProcessDaemon) -> None:
    daemon.call("agent.create", {"name": "st", "template": "stubborn"})
    pid = daemon.call("agent.start", {"name": "st"})["agent"]["pid"]
    t0 = time.monotonic()
    agent = daemon.call("agent.stop", {"name": "st"})["agent"]
    assert time.monotonic() - t0 >= 0.5
    assert agent["lastExit"]["signal"] == signal.SIGKILL
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


TREE = r"""
import os, sys, time, signal
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
child = os.fork()
if child == 0:
    # a child that double-forks a setsid'd grandchild, then both stay
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            print("grandchild", os.getpid(), flush=True)
            time.sleep(3600)
        os._exit(0)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    time.sleep(3600)
print("leader", flush=True)
time.sleep(3600)
"""


def test_tree_with_double_forked_setsid_grandchild_dies_on_stop(daemon: InProcessDaemon) -> None:
    add_template(daemon, {
        "name": "tree", "backend": "custom", "command": ["{python}", "-c", TREE],
        "stopTimeoutSeconds": 1, "restart": {"policy": "Never"},
    })  # fmt: skip
    agent = daemon.call("agent.create", {"name": "tree", "template": "tree"})["agent"]
    daemon.call("agent.start", {"name": "tree"})
    log = daemon.home / "logs/tree/stdout.log"
    deadline = time.monotonic() + 10
    while "grandchild" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)  # no event for "a process printed": poll the file, bounded
    procs = instance_procs(agent["instanceId"])
    assert len(procs) >= 3, procs
    daemon.call("agent.stop", {"name": "tree"})
    _gone, alive = psutil.wait_procs(procs, timeout=5)
    assert not [p for p in alive if p.status() != psutil.STATUS_ZOMBIE]
    assert instance_procs(agent["instanceId"]) == []


def test_logs_tail_and_follow(daemon: InProcessDaemon) -> None:
    add_template(daemon, {
        "name": "talker", "backend": "custom", "restart": {"policy": "Never"},
        "command": ["{python}", "-u", "-c",
                    "import signal,sys\nfor i in range(5): print('line', i)\nprint('err!', file=sys.stderr)\n"
                    "signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))\nsignal.pause()"],
    })  # fmt: skip
    daemon.call("agent.create", {"name": "talk", "template": "talker"})
    daemon.call("agent.start", {"name": "talk"})
    follower = daemon.conn()
    first = follower.call("agent.logs", {"name": "talk", "lines": 3, "follow": True})
    got = list(first["lines"])
    while len(got) < 3 or got[-1] != "line 4":
        got += follower.next_notification("log")["params"]["lines"]
    assert got[-3:] == ["line 2", "line 3", "line 4"]
    err = daemon.call("agent.logs", {"name": "talk", "stream": "stderr"})
    assert err["lines"] == ["err!"]
    follower.close()
    daemon.call("agent.stop", {"name": "talk"})


def test_attach_and_detach_external_process(daemon: InProcessDaemon) -> None:
    ext = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
    try:
        daemon.call("agent.create", {"name": "ext", "template": "sleeper"})
        with pytest.raises(RpcError) as info:
            daemon.call("agent.attach", {"name": "ext", "pid": 2**22 + 12345})
        assert info.value.code == -32602
        agent = daemon.call("agent.attach", {"name": "ext", "pid": ext.pid})["agent"]
        assert agent["status"] == "Running" and agent["attached"] is True and agent["pid"] == ext.pid
        with pytest.raises(RpcError) as info:
            daemon.call("agent.attach", {"name": "ext", "pid": ext.pid})
        assert info.value.code == -32009
        agent = daemon.call("agent.detach", {"name": "ext"})["agent"]
        assert agent["status"] == "Stopped"
        assert ext.poll() is None  # detach never kills
        with pytest.raises(RpcError) as info:
            daemon.call("agent.detach", {"name": "ext"})
        assert info.value.code == -32010
        # attached again, its exit is detected (not our child: exit code unknown)
        daemon.call("agent.attach", {"name": "ext", "pid": ext.pid})
        ev = daemon.conn()
        ev.call("events.subscribe", {"agent": "ext", "types": ["transition"]})
        ext.kill()
        ext.wait()
        stopped = ev.wait_event(transition("Stopped", "ext"))
        assert stopped["reason"] == "attached process exited"
        ev.close()
    finally:
        if ext.poll() is None:
            ext.kill()
            ext.wait()


def test_health_check_restarts_through_policy(daemon: InProcessDaemon) -> None:
    add_template(daemon, {
        "name": "sick", "backend": "custom",
        "command": ["{python}", "-c", "import time; time.sleep(3600)"],
        "stopTimeoutSeconds": 1,
        "healthCheck": {"command": ["false"],
                        "intervalSeconds": 0.1, "timeoutSeconds": 1, "failureThreshold": 2},
        "restart": {"policy": "OnFailure", "maxRestarts": 1, "windowSeconds": 60, "initialDelayMs": 10,
                    "minUptimeSeconds": 0},
    })  # fmt: skip
    ev = daemon.conn()
    ev.call("events.subscribe", {"types": ["transition"]})
    daemon.call("agent.create", {"name": "sick", "template": "sick"})
    daemon.call("agent.start", {"name": "sick", "wait": False})
    crashed = ev.wait_event(transition("Crashed", "sick"))
    assert crashed["reason"].startswith("health check failed")
    ev.wait_event(transition("Running", "sick"))
    failed = ev.wait_event(transition("Failed", "sick"))
    assert "restart budget exhausted" in failed["reason"]
    ev.close()


def test_oneshot_completes_to_stopped(daemon: InProcessDaemon) -> None:
    daemon.call("agent.create", {"name": "once", "template": "oneshot"})
    ev = daemon.conn()
    ev.call("events.subscribe", {"agent": "once", "types": ["transition"]})
    daemon.call("agent.start", {"name": "once", "wait": False})
    done = ev.wait_event(transition("Stopped", "once"))
    assert done["reason"] == "completed (exit code 0)"
    ev.close()


def test_spawn_error_other_than_agent_launch_does_not_leave_instance_starting(daemon: InProcessDaemon) -> None:
    """``spawn`` can raise plain OSError (log file cannot be opened): the record must not stay Starting.

    Today: Starting is persisted, the error escapes as INTERNAL_ERROR, and from then on ``agent start``
    answers "already starting" (idempotent success) for an instance that has no process at all.
    """
    daemon.call("agent.create", {"name": "lg", "template": "sleeper"})
    (daemon.home / "logs").mkdir(exist_ok=True)
    (daemon.home / "logs" / "lg").write_text("not a directory")  # _open_log's mkdir raises FileExistsError
    with pytest.raises(RpcError) as info:
        daemon.call("agent.start", {"name": "lg"})
    assert info.value.error_code == "AGENT_LAUNCH", info.value.error
    status = daemon.call("agent.status", {"name": "lg"})["agent"]
    assert status["status"] == "Failed", status
