"""Instance lifecycle through the real daemon: create / start / stop / destroy, locks, ``--work-dir`` rules.

Most tests talk to the in-process daemon (``daemon`` fixture) over its real socket; the lock races are driven
in-process on a real :class:`~actantd.manager.Manager` (real files, real processes), because only there can a
test hold an instance's lock to line two calls up deterministically. Several tests reproduce review findings:
each fails on the code it was written against.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
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
from tests.harness import InProcessDaemon, RpcError, make_configs
from tests.helpers import instance_procs, kill_all

# ------------------------------------------------------------------------------------------- operations


def test_idempotent_operations(daemon: InProcessDaemon) -> None:
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


def test_parallel_stop_and_destroy(daemon: InProcessDaemon) -> None:
    names = [f"p{i}" for i in range(8)]
    for n in names:
        daemon.call("agent.create", {"name": n, "template": "stubborn"})
    conns = [daemon.conn() for _ in names]
    # Started in parallel too: each start waits out its grace (1 s) for an immediate crash, by then the agent
    # ignores SIGTERM; one after the other that is 8 s of waiting that tests nothing.
    starters = [
        threading.Thread(target=c.call, args=("agent.start", {"name": n})) for c, n in zip(conns, names, strict=True)
    ]
    for t in starters:
        t.start()
    for t in starters:
        t.join()
    assert {a["status"] for a in daemon.call("agent.list")["agents"]} == {"Running"}
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


def test_concurrent_clients_never_break_the_state_machine(daemon: InProcessDaemon) -> None:
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


def test_reads_never_wait_behind_a_slow_mutation(daemon: InProcessDaemon) -> None:
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


# ------------------------------------------------------------------------------------------- --work-dir


def test_work_dir_instance(daemon: InProcessDaemon, short_tmp: Path) -> None:
    repo = short_tmp / "repo"
    repo.mkdir()
    (repo / "main.py").write_text("print('hi')\n")
    agent = daemon.call("agent.create", {"name": "wd", "template": "code-reviewer", "workDir": str(repo)})["agent"]
    assert agent["workDir"] == str(repo)
    assert (daemon.home / "instances/wd").is_symlink() and (repo / "AGENTS.md").exists()
    daemon.call("agent.destroy", {"name": "wd"})
    assert sorted(p.name for p in repo.iterdir()) == ["main.py"]


def test_two_instances_cannot_share_one_work_dir(daemon: InProcessDaemon, short_tmp: Path) -> None:
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


def test_failed_work_dir_create_leaves_nothing_in_the_users_directory(daemon: InProcessDaemon, short_tmp: Path) -> None:
    """Materialization fails half-way: ``_purge(stage)`` has no symlink to follow yet, so the record stays."""
    wd = short_tmp / "repo"
    (wd / "AGENTS.md").mkdir(parents=True)  # materialize cannot write it
    with pytest.raises(RpcError):
        daemon.call("agent.create", {"name": "wf", "template": "sleeper", "workDir": str(wd)})
    assert sorted(p.name for p in wd.iterdir()) == ["AGENTS.md"], "create failed but left files behind"


def test_work_dir_destroy_never_removes_a_file_the_user_had(daemon: InProcessDaemon, short_tmp: Path) -> None:
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


def test_work_dir_destroy_does_not_follow_a_symlinked_materialized_file(
    daemon: InProcessDaemon, short_tmp: Path
) -> None:
    """``fsutil.remove_inside`` unlinks a symlinked materialized file itself, never the user file it points to."""
    wd = short_tmp / "repo"
    wd.mkdir()
    daemon.call("agent.create", {"name": "ws", "template": "sleeper", "workDir": str(wd)})
    (wd / "notes.md").write_text("user file\n")
    (wd / "AGENTS.md").unlink()
    (wd / "AGENTS.md").symlink_to("notes.md")
    daemon.call("agent.destroy", {"name": "ws"})
    assert (wd / "notes.md").exists(), "destroy deleted the target of a symlink, a file Actant never wrote"


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
            kill_all(instance_procs(iid))
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
    alive = instance_procs(iid)
    kill_all(alive)
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
