"""Re-adoption and recovery at daemon start: agents that outlived the daemon, records that lie, lost processes.

Each test restarts a real ``actantd`` subprocess (SIGKILL or a clean stop, then a new start on the same
home), so these keep the subprocess daemon (``daemon_process``): the agents must outlive the daemon's process.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.harness import Daemon, RpcError, make_configs
from tests.helpers import instance_procs, kill_all, transition


def test_readoption_after_daemon_sigkill(daemon_process: Daemon) -> None:
    daemon = daemon_process
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


def test_readopted_agent_can_be_stopped(daemon_process: Daemon) -> None:
    daemon = daemon_process
    daemon.call("agent.create", {"name": "ra", "template": "sleeper"})
    pid = daemon.call("agent.start", {"name": "ra"})["agent"]["pid"]
    daemon.kill()
    daemon.start()
    assert daemon.call("agent.status", {"name": "ra"})["agent"]["pid"] == pid
    daemon.call("agent.stop", {"name": "ra"})
    psutil.wait_procs([psutil.Process(pid)], timeout=5) if psutil.pid_exists(pid) else None
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def _rewrite_record(home: Path, name: str, **changes: Any) -> None:
    path = home / "instances" / name / ".actant.json"
    doc = json.loads(path.read_text())
    doc.update(changes)
    path.write_text(json.dumps(doc, indent=2) + "\n")


def test_recovery_does_not_restart_an_instance_the_user_was_stopping(short_tmp: Path) -> None:
    """Daemon dies mid-stop and the agent dies too: on restart it must end Stopped, not be relaunched.

    ``_recover`` treats Stopping like Running ("process lost") and then schedules a policy restart.
    """
    d = Daemon(short_tmp, make_configs(short_tmp))
    d.start()
    iid = d.call("agent.create", {"name": "st", "template": "sleeper"})["agent"]["instanceId"]
    d.stop()
    _rewrite_record(d.home, "st", status="Stopping", pid=None, pidCreateTime=None)
    d.start()
    try:
        deadline = time.monotonic() + 1.5
        seen = set()
        while time.monotonic() < deadline:
            seen.add(d.call("agent.status", {"name": "st"})["agent"]["status"])
            time.sleep(0.05)
        assert seen == {"Stopped"}, f"a stop interrupted by a daemon crash was undone: saw {sorted(seen)}"
    finally:
        d.stop()
        kill_all(instance_procs(iid))


def test_record_without_create_time_is_not_adopted_onto_an_unrelated_process(short_tmp: Path) -> None:
    """A migrated v1 record (no pidCreateTime) whose pid now names some other process of the user.

    ``is_same_process(pid, None)`` is true for any live pid, so the daemon re-adopts the stranger and
    ``agent stop`` then kills it (with its group and descendants).
    """
    innocent = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        configs = make_configs(short_tmp)
        d = Daemon(short_tmp, configs)
        inst = d.home / "instances" / "legacy"
        inst.mkdir(parents=True)
        (inst / ".actant.json").write_text(json.dumps({
            "name": "legacy", "template": "sleeper", "status": "running", "launchMode": "service",
            "workspacePolicy": "persistent", "pid": innocent.pid, "createdAt": "2024-01-01T00:00:00Z",
        }))  # fmt: skip
        d.start()
        try:
            agent = d.call("agent.status", {"name": "legacy"})["agent"]
            d.call("agent.stop", {"name": "legacy"})
            assert innocent.poll() is None, f"stop killed an unrelated process (adopted as {agent['status']})"
        finally:
            d.stop()
    finally:
        innocent.kill()
        innocent.wait()


def _chattr(flag: str, path: Path) -> bool:
    return subprocess.run(["chattr", flag, str(path)], capture_output=True).returncode == 0


def test_one_unwritable_instance_does_not_keep_the_daemon_from_starting(short_tmp: Path) -> None:
    """Recovery of a "process lost" instance writes Stopped; if that write fails (EROFS, EACCES, EPERM on a
    --work-dir the user made read-only...), the StateWrite escapes ``initialize`` and the daemon exits 1:
    one instance blocks every other (DESIGN §4: problems with one instance never block startup)."""
    d = Daemon(short_tmp, make_configs(short_tmp))
    d.start()
    d.call("agent.create", {"name": "ok", "template": "sleeper"})
    d.call("agent.create", {"name": "ro", "template": "sleeper"})
    pid = d.call("agent.start", {"name": "ro"})["agent"]["pid"]
    d.kill()
    os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(psutil.Error):
        psutil.Process(pid).wait(5)
    inst = d.home / "instances" / "ro"
    if not _chattr("+i", inst):
        pytest.skip("chattr +i not available here")
    try:
        try:
            d.start(timeout=10)
        except RuntimeError as exc:
            pytest.fail(f"daemon did not start because one instance could not be written: {exc}"[:1500])
        assert d.call("agent.status", {"name": "ok"})["agent"]["status"] == "Ready"
        d.stop()
    finally:
        _chattr("-i", inst)
        if d.proc is not None:
            d.proc.kill()
            d.proc.wait()


def test_a_stop_that_raises_does_not_leave_the_instance_stopping_forever(short_tmp: Path) -> None:
    """``_terminate`` persists Stopping, then ``terminate_tree`` raises (here ValueError: pid 1, adopted from a
    record without pidCreateTime): the instance stays Stopping, later stops "succeed" as no-ops, start refuses."""
    d = Daemon(short_tmp, make_configs(short_tmp))
    inst = d.home / "instances" / "legacy"
    inst.mkdir(parents=True)
    (inst / ".actant.json").write_text(json.dumps({
        "name": "legacy", "template": "sleeper", "status": "running", "launchMode": "service",
        "workspacePolicy": "persistent", "pid": 1, "createdAt": "2024-01-01T00:00:00Z",
    }))  # fmt: skip
    d.start()
    try:
        with contextlib.suppress(RpcError):
            d.call("agent.stop", {"name": "legacy"})
        assert d.call("agent.status", {"name": "legacy"})["agent"]["status"] != "Stopping"
    finally:
        d.stop()
