"""Supervision against the real daemon: start, stop, crash, restart, trees, adoption, logs, attach, health.

Every wait here is for an event (a transition notification, a process exit, a READY datagram); timeouts only
bound how long a broken build may hang.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any

import psutil
import pytest

from tests.harness import Daemon, RpcError, add_template


def transition(to: str, agent: str | None = None) -> Any:
    def pred(e: dict[str, Any]) -> bool:
        return e["type"] == "transition" and e["to"] == to and (agent is None or e["agent"] == agent)

    return pred


def instance_procs(instance_id: str) -> list[psutil.Process]:
    needle = f"ACTANT_INSTANCE_ID={instance_id}"
    out = []
    for proc in psutil.process_iter():
        try:
            if needle in "\0".join(f"{k}={v}" for k, v in proc.environ().items()):
                out.append(proc)
        except psutil.Error:
            continue
    return out


def test_start_status_stop(daemon: Daemon) -> None:
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


def test_idempotent_operations(daemon: Daemon) -> None:
    a = daemon.call("agent.create", {"name": "idem", "template": "sleeper"})["agent"]
    b = daemon.call("agent.create", {"name": "idem", "template": "sleeper"})["agent"]
    assert a["instanceId"] == b["instanceId"]
    with pytest.raises(RpcError) as info:
        daemon.call("agent.create", {"name": "idem", "template": "demo"})
    assert info.value.error_code == "AGENT_EXISTS"
    assert daemon.call("agent.stop", {"name": "idem"})["agent"]["status"] == "Ready"
    pid = daemon.call("agent.start", {"name": "idem"})["agent"]["pid"]
    assert daemon.call("agent.start", {"name": "idem"})["agent"]["pid"] == pid
    daemon.call("agent.stop", {"name": "idem"})
    assert daemon.call("agent.stop", {"name": "idem"})["agent"]["status"] == "Stopped"
    assert daemon.call("agent.destroy", {"name": "idem"})["destroyed"] is True
    assert daemon.call("agent.destroy", {"name": "idem", "force": True})["destroyed"] is False
    with pytest.raises(RpcError) as info:
        daemon.call("agent.destroy", {"name": "idem"})
    assert info.value.code == -32003


def test_missing_executable_is_a_clear_launch_error(daemon: Daemon) -> None:
    daemon.call("agent.create", {"name": "nx", "template": "missing-exe"})
    with pytest.raises(RpcError) as info:
        daemon.call("agent.start", {"name": "nx"})
    assert info.value.code == -32008
    assert "definitely-not-installed-agent" in info.value.error["message"]
    assert daemon.call("agent.status", {"name": "nx"})["agent"]["status"] == "Failed"


def test_immediate_crash_reports_reason_and_stderr_tail(daemon: Daemon) -> None:
    daemon.call("agent.create", {"name": "cr", "template": "crasher"})
    with pytest.raises(RpcError) as info:
        daemon.call("agent.start", {"name": "cr"})
    assert info.value.error_code == "AGENT_LAUNCH"
    assert "exited with code 3" in info.value.error["message"]
    assert "boom" in info.value.context["stderrTail"]
    daemon.call("agent.stop", {"name": "cr"})


def test_kill_9_restarts_with_new_pid_and_crash_is_fast(daemon: Daemon) -> None:
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


def test_crash_loop_ends_in_failed(daemon: Daemon) -> None:
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


def test_stop_during_backoff_cancels_restart(daemon: Daemon) -> None:
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


def test_sigterm_ignored_escalates_to_sigkill(daemon: Daemon) -> None:
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


def test_tree_with_double_forked_setsid_grandchild_dies_on_stop(daemon: Daemon) -> None:
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


def test_readoption_after_daemon_sigkill(daemon: Daemon) -> None:
    for name in ("live", "dead"):
        daemon.call("agent.create", {"name": name, "template": "sleeper"})
        daemon.call("agent.start", {"name": name})
    live_pid = daemon.call("agent.status", {"name": "live"})["agent"]["pid"]
    dead_pid = daemon.call("agent.status", {"name": "dead"})["agent"]["pid"]
    daemon.kill()
    os.kill(dead_pid, signal.SIGKILL)
    psutil.wait_procs([psutil.Process(dead_pid)], timeout=5)
    assert psutil.Process(live_pid).is_running()
    daemon.start()
    live = daemon.call("agent.status", {"name": "live"})["agent"]
    assert live["status"] == "Running" and live["pid"] == live_pid
    lost = daemon.call("events.query", {"agent": "dead", "types": ["transition"], "limit": 50})["events"]
    assert any(e["to"] == "Stopped" and e["reason"] == "process lost" for e in lost)
    # The restart policy (OnFailure) then applies to the lost one.
    events = daemon.conn()
    events.call("events.subscribe", {"agent": "dead", "types": ["transition"]})
    if daemon.call("agent.status", {"name": "dead"})["agent"]["status"] != "Running":
        events.wait_event(transition("Running", "dead"))
    events.close()
    # The re-adopted process is supervised: its exit is detected...
    watcher = daemon.conn()
    watcher.call("events.subscribe", {"agent": "live", "types": ["transition"]})
    os.kill(live_pid, signal.SIGKILL)
    watcher.wait_event(transition("Crashed", "live"))
    watcher.wait_event(transition("Running", "live"))
    watcher.close()
    # ...and stop works on it after the restart.
    new_pid = daemon.call("agent.status", {"name": "live"})["agent"]["pid"]
    assert daemon.call("agent.stop", {"name": "live"})["agent"]["status"] == "Stopped"
    assert not psutil.pid_exists(new_pid) or psutil.Process(new_pid).status() == psutil.STATUS_ZOMBIE
    daemon.call("agent.stop", {"name": "dead"})


def test_readopted_agent_can_be_stopped(daemon: Daemon) -> None:
    daemon.call("agent.create", {"name": "ra", "template": "sleeper"})
    pid = daemon.call("agent.start", {"name": "ra"})["agent"]["pid"]
    daemon.kill()
    daemon.start()
    assert daemon.call("agent.status", {"name": "ra"})["agent"]["pid"] == pid
    daemon.call("agent.stop", {"name": "ra"})
    psutil.wait_procs([psutil.Process(pid)], timeout=5) if psutil.pid_exists(pid) else None
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_logs_tail_and_follow(daemon: Daemon) -> None:
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


def test_attach_and_detach_external_process(daemon: Daemon) -> None:
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


def test_health_check_restarts_through_policy(daemon: Daemon) -> None:
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


def test_oneshot_completes_to_stopped(daemon: Daemon) -> None:
    daemon.call("agent.create", {"name": "once", "template": "oneshot"})
    ev = daemon.conn()
    ev.call("events.subscribe", {"agent": "once", "types": ["transition"]})
    daemon.call("agent.start", {"name": "once", "wait": False})
    done = ev.wait_event(transition("Stopped", "once"))
    assert done["reason"] == "completed (exit code 0)"
    ev.close()


def test_parallel_stop_and_destroy(daemon: Daemon) -> None:
    names = [f"p{i}" for i in range(8)]
    for n in names:
        daemon.call("agent.create", {"name": n, "template": "stubborn"})
        daemon.call("agent.start", {"name": n})
    conns = [daemon.conn() for _ in names]
    t0 = time.monotonic()
    errors: list[BaseException] = []

    def stop(conn: Any, n: str) -> None:
        try:
            conn.call("agent.destroy", {"name": n, "force": True})
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=stop, args=(c, n)) for c, n in zip(conns, names, strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t0
    assert not errors
    # Each needs its 0.5 s SIGTERM grace; in series that would be 4 s.
    assert elapsed < 3.0, elapsed
    assert daemon.call("agent.list")["agents"] == []
    for c in conns:
        c.close()


def test_concurrent_clients_never_break_the_state_machine(daemon: Daemon) -> None:
    names = [f"c{i}" for i in range(8)]
    for n in names:
        daemon.call("agent.create", {"name": n, "template": "sleeper"})
    errors: list[str] = []

    def worker(seed: int) -> None:
        import random

        rnd = random.Random(seed)
        conn = daemon.conn()
        try:
            for _ in range(12):
                n = rnd.choice(names)
                method = rnd.choice(["agent.start", "agent.stop", "agent.restart", "agent.status"])
                try:
                    conn.call(method, {"name": n})
                except RpcError as exc:
                    if exc.error_code in ("INVALID_TRANSITION", "INTERNAL_ERROR"):
                        errors.append(f"{method} {n}: {exc.error}")
        finally:
            conn.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    listed = {a["name"]: a for a in daemon.call("agent.list")["agents"]}
    for n in names:
        disk = json.loads((daemon.home / "instances" / n / ".actant.json").read_text())
        assert disk["status"] == listed[n]["status"] and disk["pid"] == listed[n]["pid"]
        if disk["pid"] is not None:
            assert psutil.pid_exists(disk["pid"])
    for n in names:
        daemon.call("agent.stop", {"name": n})


def test_reads_never_wait_behind_a_slow_mutation(daemon: Daemon) -> None:
    """A stop that takes its full SIGTERM grace holds only that instance's lock; reads answer meanwhile."""
    daemon.call("agent.create", {"name": "slow", "template": "stubborn"})
    daemon.call("agent.create", {"name": "other", "template": "sleeper"})
    daemon.call("agent.start", {"name": "slow"})
    stopper = daemon.conn()
    done = threading.Event()

    def stop() -> None:
        stopper.call("agent.stop", {"name": "slow"})
        done.set()

    thread = threading.Thread(target=stop)
    thread.start()
    reader = daemon.conn()
    try:
        while reader.call("agent.status", {"name": "slow"})["agent"]["status"] != "Stopping":
            pass
        t0 = time.monotonic()
        listed = reader.call("agent.list")["agents"]
        status = reader.call("agent.status", {"name": "slow"})["agent"]
        started = reader.call("agent.start", {"name": "other", "wait": False})["agent"]
        elapsed = time.monotonic() - t0
        assert not done.is_set(), "the stop finished before the reads; the test proves nothing"
        assert status["status"] == "Stopping" and len(listed) == 2 and started["status"] == "Running"
        assert elapsed < 0.4, elapsed  # the stop itself takes >= 0.5 s (stubborn ignores SIGTERM)
    finally:
        thread.join()
        reader.call("agent.stop", {"name": "other"})
        reader.close()
        stopper.close()
