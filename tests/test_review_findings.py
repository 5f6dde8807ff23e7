"""Reproductions of review findings (manager, daemon, store). Each test fails on the code it was written against.

Integration tests use a real daemon (``tests/harness.py``); the lock races are driven in-process on a real
:class:`~actantd.manager.Manager` (real files, real processes), because only there can a test hold an
instance's lock to line two calls up deterministically.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from actantd.config.service import ConfigService
from actantd.events import EventBus
from actantd.journal import Journal
from actantd.manager import Manager
from actantd.paths import Layout
from tests.harness import Daemon, RpcError, make_configs


def _instance_procs(instance_id: str) -> list[psutil.Process]:
    needle = f"ACTANT_INSTANCE_ID={instance_id}"
    out = []
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if needle in "\0".join(f"{k}={v}" for k, v in proc.environ().items()):
                out.append(proc)
    return out


def _kill_all(procs: list[psutil.Process]) -> None:
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(procs, timeout=5)


def _rewrite_record(home: Path, name: str, **changes: Any) -> None:
    path = home / "instances" / name / ".actant.json"
    doc = json.loads(path.read_text())
    doc.update(changes)
    path.write_text(json.dumps(doc, indent=2) + "\n")


# ------------------------------------------------------------------------------------------- recovery


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
        _kill_all(_instance_procs(iid))


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


# ------------------------------------------------------------------------------------------- start


def test_spawn_error_other_than_agent_launch_does_not_leave_instance_starting(daemon: Daemon) -> None:
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


# ------------------------------------------------------------------------------------------- --work-dir


def test_two_instances_cannot_share_one_work_dir(daemon: Daemon, short_tmp: Path) -> None:
    """The second create overwrites the first's ``.actant.json``; on the next scan the first is quarantined."""
    wd = short_tmp / "repo"
    wd.mkdir()
    daemon.call("agent.create", {"name": "wa", "template": "sleeper", "workDir": str(wd)})
    try:
        daemon.call("agent.create", {"name": "wb", "template": "sleeper", "workDir": str(wd)})
    except RpcError:
        return  # refused: fine
    on_disk = json.loads((daemon.home / "instances/wa/.actant.json").read_text())
    assert on_disk["name"] == "wa", "instances/wa/.actant.json now describes another instance"


def test_failed_work_dir_create_leaves_nothing_in_the_users_directory(daemon: Daemon, short_tmp: Path) -> None:
    """Materialization fails half-way: ``_purge(stage)`` has no symlink to follow yet, so the record stays."""
    wd = short_tmp / "repo"
    (wd / "AGENTS.md").mkdir(parents=True)  # materialize cannot write it
    with pytest.raises(RpcError):
        daemon.call("agent.create", {"name": "wf", "template": "sleeper", "workDir": str(wd)})
    assert sorted(p.name for p in wd.iterdir()) == ["AGENTS.md"], "create failed but left files behind"


def test_work_dir_destroy_never_removes_a_file_the_user_had(daemon: Daemon, short_tmp: Path) -> None:
    """An existing repo's own AGENTS.md is overwritten at create and deleted at destroy (DESIGN §4, §7)."""
    wd = short_tmp / "repo"
    wd.mkdir()
    (wd / "AGENTS.md").write_text("my own notes\n")
    try:
        daemon.call("agent.create", {"name": "wu", "template": "sleeper", "workDir": str(wd)})
    except RpcError:
        return  # refusing to take over the user's file is fine
    daemon.call("agent.destroy", {"name": "wu"})
    assert (wd / "AGENTS.md").exists(), "destroy deleted the user's own AGENTS.md"
    assert (wd / "AGENTS.md").read_text() == "my own notes\n"


def test_work_dir_destroy_does_not_follow_a_symlinked_materialized_file(daemon: Daemon, short_tmp: Path) -> None:
    """``_remove_inside`` resolves the path and unlinks the symlink's *target*, a user file."""
    wd = short_tmp / "repo"
    wd.mkdir()
    daemon.call("agent.create", {"name": "ws", "template": "sleeper", "workDir": str(wd)})
    (wd / "notes.md").write_text("user file\n")
    (wd / "AGENTS.md").unlink()
    (wd / "AGENTS.md").symlink_to("notes.md")
    daemon.call("agent.destroy", {"name": "ws"})
    assert (wd / "notes.md").exists(), "destroy deleted the target of a symlink, a file Actant never wrote"


# ------------------------------------------------------------------------------------------- shutdown


def test_no_agent_survives_a_clean_shutdown_even_if_started_during_it(daemon: Daemon) -> None:
    """While ``manager.shutdown`` stops agents the socket still takes mutating calls; a start then spawns an
    agent nobody stops (and whose exit nobody watches, ``_closing`` is set) — it outlives "clean" exit 0."""
    daemon.call("agent.create", {"name": "slow", "template": "stubborn"})
    late_id = daemon.call("agent.create", {"name": "late", "template": "sleeper"})["agent"]["instanceId"]
    daemon.call("agent.start", {"name": "slow"})
    conn = daemon.conn()
    try:
        conn.call("events.subscribe", {"agent": "slow", "types": ["transition"]})
        assert daemon.proc is not None
        daemon.proc.send_signal(signal.SIGTERM)
        conn.wait_event(lambda e: e["to"] == "Stopping")
        with contextlib.suppress(RpcError, ConnectionError, OSError):
            conn.call("agent.start", {"name": "late", "wait": False})
    finally:
        conn.close()
    assert daemon.proc.wait(30) == 0
    daemon.proc = None
    left = _instance_procs(late_id)
    _kill_all(left)
    assert not left, "an agent started during shutdown outlived the daemon"


# ------------------------------------------------------------------------------------------- lock races


@pytest.fixture
async def manager(short_tmp: Path) -> AsyncIterator[Manager]:
    configs = make_configs(short_tmp)
    layout = Layout(home=short_tmp / "home", configs=configs, socket=short_tmp / "s.sock")
    layout.home.mkdir()
    svc = ConfigService(configs)
    journal = Journal(layout.journal)
    m = Manager(layout, lambda: svc.registry, journal, EventBus(), python=sys.executable)
    await m.initialize()
    try:
        yield m
    finally:
        ids = [r.instance_id for r in m.records.values()]
        await m.shutdown(stop_agents=True)
        for iid in ids:
            _kill_all(_instance_procs(iid))
        journal.close()


async def test_destroy_rechecks_status_under_the_lock(manager: Manager) -> None:
    """destroy checks "is it running?" before taking the lock; a start queued ahead of it then wins, and the
    instance directory is deleted under a running agent that nobody supervises any more."""
    m = manager
    iid = (await m.create("race", "sleeper")).instance_id
    lock = m.lock("race")
    await lock.acquire()  # stands for any mutation in progress (sync, a slow stop...)
    start = asyncio.ensure_future(m.start("race", wait=False))
    await asyncio.sleep(0)
    destroy = asyncio.ensure_future(m.destroy("race"))
    await asyncio.sleep(0)
    lock.release()
    results = await asyncio.gather(start, destroy, return_exceptions=True)
    alive = _instance_procs(iid)
    _kill_all(alive)
    assert not (alive and "race" not in m.records), f"agent left running after destroy: {results}"


async def test_destroy_does_not_hand_out_a_second_lock_for_the_same_name(manager: Manager, short_tmp: Path) -> None:
    """destroy pops the instance's lock while a create still waits on it; a later create gets a new lock and
    both run at once: two different instances are "created" under one name, the last rename silently wins."""
    m = manager
    a, b = short_tmp / "wa", short_tmp / "wb"
    a.mkdir()
    b.mkdir()
    await m.create("dup", "sleeper")
    destroy = asyncio.ensure_future(m.destroy("dup"))
    await asyncio.sleep(0)  # destroy holds the lock now
    first = asyncio.ensure_future(m.create("dup", "sleeper", work_dir=str(a)))
    await destroy
    second = asyncio.ensure_future(m.create("dup", "sleeper", work_dir=str(b)))
    results = await asyncio.gather(first, second, return_exceptions=True)
    ok = [r for r in results if not isinstance(r, BaseException)]
    link = os.readlink(m.layout.instance_dir("dup"))
    assert len(ok) == 1, f"both creates succeeded; memory says {m.records['dup'].work_dir}, disk says {link}"


# ------------------------------------------------------------------------------------------- startup robustness


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
