"""terminate_tree(): whole trees, double-forked setsid'd escapees, SIGTERM-ignoring processes, dead pids."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from actantd.supervisor import exits, kill
from actantd.supervisor.spawn import Spawned, spawn
from tests.helpers import until

PY = sys.executable

TREE = """
import subprocess, sys, time
for _ in range(2):
    subprocess.Popen(["sh", "-c", "sleep 1000 & sleep 1000 & wait"])
mid = "import subprocess, time; subprocess.Popen(['sleep', '1000']); time.sleep(1000)"
subprocess.Popen([sys.executable, "-c", mid])
time.sleep(1000)
"""
TREE_SIZE = 8  # 2 sh + 4 sleep + 1 python + its sleep

ESCAPEE = """
import os, sys, time
ready = sys.argv[1]
pid = os.fork()
if pid == 0:
    os.setsid()
    if os.fork() == 0:
        with open(ready + ".tmp", "w") as f:
            f.write(str(os.getpid()))
        os.rename(ready + ".tmp", ready)
        os.execvp("sleep", ["sleep", "1000"])
    os._exit(0)
os.waitpid(pid, 0)
time.sleep(1000)
"""

STUBBORN = """
import signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
subprocess.Popen(["sleep", "1000"])  # inherits the ignored SIGTERM across exec
open(sys.argv[1], "w").close()
time.sleep(1000)
"""


@dataclass
class Agent:
    spawned: Spawned
    instance_id: str
    exited: asyncio.Future[exits.ExitInfo]

    @property
    def pid(self) -> int:
        return self.spawned.pid


@asynccontextmanager
async def agent(tmp_path: Path, script: str, *args: str) -> AsyncIterator[Agent]:
    """An agent started like the daemon does it; whatever is left of it is killed and reaped on exit."""
    instance_id = str(uuid.uuid4())
    env = dict(os.environ, ACTANT_INSTANCE_ID=instance_id)
    logs = tmp_path / "logs" / instance_id
    spawned = spawn([PY, "-c", script, *args], tmp_path, env, logs / "stdout.log", logs / "stderr.log")
    exited = exits.watch_exit(asyncio.get_running_loop(), spawned.pid, is_child=True, popen=spawned.popen)
    try:
        yield Agent(spawned, instance_id, exited)
    finally:
        await kill.terminate_tree(spawned.pid, instance_id=instance_id, sig=signal.SIGKILL, timeout=0, exited=exited)


def descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


async def test_whole_tree_with_children_and_grandchildren(tmp_path: Path) -> None:
    async with agent(tmp_path, TREE) as a:
        await until(lambda: len(descendants(a.pid)) >= TREE_SIZE)
        tree = descendants(a.pid)
        result = await kill.terminate_tree(a.pid, instance_id=a.instance_id, timeout=10, exited=a.exited)
        assert not result.forced and result.killed == ()
        assert result.leader_alive and result.survivors == ()
        assert result.targets[0] == a.pid
        assert {p.pid for p in tree} <= set(result.targets)
        assert not any(alive(p) for p in tree)
        assert a.exited.done() and a.exited.result().signal == signal.SIGTERM


async def test_double_forked_setsid_grandchild_does_not_survive(tmp_path: Path) -> None:
    ready = tmp_path / "escapee.pid"
    async with agent(tmp_path, ESCAPEE, str(ready)) as a:
        await until(ready.exists)
        escapee = psutil.Process(int(ready.read_text()))
        # Once its parent has exited it has left the agent's tree, session and group: only the instance mark
        # still ties it to the agent.
        await until(lambda: escapee.pid not in {p.pid for p in descendants(a.pid)})
        assert os.getsid(escapee.pid) != os.getsid(a.pid)
        assert [p.pid for p in kill.find_instance_processes(a.instance_id)].count(escapee.pid) == 1
        result = await kill.terminate_tree(a.pid, instance_id=a.instance_id, timeout=10, exited=a.exited)
        assert escapee.pid in result.targets
        assert not alive(escapee)
        assert kill.find_instance_processes(a.instance_id) == []
        # We are its subreaper: it was reaped too, not left a zombie.
        with pytest.raises(psutil.NoSuchProcess):
            escapee.status()


async def test_sigterm_ignored_means_sigkill_after_the_timeout(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    async with agent(tmp_path, STUBBORN, str(ready)) as a:
        await until(ready.exists)
        await until(lambda: len(descendants(a.pid)) == 1)
        child = descendants(a.pid)[0]
        start = time.monotonic()
        result = await kill.terminate_tree(a.pid, instance_id=a.instance_id, timeout=0.5, exited=a.exited)
        elapsed = time.monotonic() - start
        assert result.forced
        assert set(result.killed) == {a.pid, child.pid}
        assert 0.5 <= elapsed < 3.0
        assert a.exited.result().signal == signal.SIGKILL
        assert not alive(child)


async def test_already_dead_pid(tmp_path: Path) -> None:
    async with agent(tmp_path, "pass") as a:
        await a.exited
        result = await kill.terminate_tree(a.pid, instance_id=a.instance_id, timeout=1, exited=a.exited)
        assert result == kill.TreeResult(targets=(), killed=(), forced=False, survivors=(), leader_alive=False)


async def test_without_a_pid_only_marked_processes_are_targeted(tmp_path: Path) -> None:
    """After a crash (leader gone) the escapees are still found by their mark."""
    ready = tmp_path / "escapee.pid"
    async with agent(tmp_path, ESCAPEE, str(ready)) as a:
        await until(ready.exists)
        escapee = int(ready.read_text())
        await until(lambda: escapee not in {p.pid for p in descendants(a.pid)})
        os.kill(a.pid, signal.SIGKILL)
        await a.exited
        result = await kill.terminate_tree(None, instance_id=a.instance_id, timeout=5)
        assert result.targets == (escapee,)
        assert not psutil.pid_exists(escapee)


async def test_other_instances_are_untouched(tmp_path: Path) -> None:
    async with agent(tmp_path, TREE) as a, agent(tmp_path, TREE) as b:
        await until(lambda: len(descendants(a.pid)) >= TREE_SIZE and len(descendants(b.pid)) >= TREE_SIZE)
        others = [psutil.Process(b.pid), *descendants(b.pid)]
        await kill.terminate_tree(a.pid, instance_id=a.instance_id, timeout=5, exited=a.exited)
        assert all(alive(p) for p in others)
        assert not b.exited.done()


async def test_recycled_pid_is_not_the_leader(tmp_path: Path) -> None:
    """A recorded pid whose create time does not match belongs to someone else: leave it alone."""
    async with agent(tmp_path, "import time; time.sleep(1000)") as a:
        result = await kill.terminate_tree(a.pid, instance_id=None, timeout=1, create_time=a.spawned.create_time - 60)
        assert result.targets == ()
        assert exits.is_same_process(a.pid, a.spawned.create_time)


async def test_children_forked_during_the_grace_period_are_killed(tmp_path: Path) -> None:
    """A leader that keeps forking while ignoring SIGTERM: the SIGKILL rounds re-collect and catch them all."""
    script = """
import os, signal, subprocess, sys, time
signal.signal(signal.SIGTERM, lambda *_: subprocess.Popen(["sleep", "1000"], start_new_session=True))
open(sys.argv[1], "w").close()
time.sleep(1000)
"""
    ready = tmp_path / "ready"
    async with agent(tmp_path, script, str(ready)) as a:
        await until(ready.exists)
        result = await kill.terminate_tree(a.pid, instance_id=a.instance_id, timeout=0.3, exited=a.exited)
        assert result.forced and result.survivors == ()
        assert kill.find_instance_processes(a.instance_id) == []


@pytest.mark.parametrize("pid", [0, 1, -5])
async def test_refuses_dangerous_pids(pid: int) -> None:
    with pytest.raises(ValueError):
        await kill.terminate_tree(pid, instance_id=None)


async def test_refuses_own_pid() -> None:
    with pytest.raises(ValueError):
        await kill.terminate_tree(os.getpid(), instance_id=None)


def test_find_instance_processes_needs_an_exact_value(tmp_path: Path) -> None:
    assert kill.find_instance_processes("") == []
    assert kill.find_instance_processes(str(uuid.uuid4())) == []
