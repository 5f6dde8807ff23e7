"""Exit detection by pidfd for children and non-children; orphan reaping; the PID-reuse guard."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import uvloop

from actantd.supervisor import exits
from actantd.supervisor.spawn import spawn

PY = sys.executable


def _wait_exited_unreaped(pid: int) -> None:
    """Block until our child ``pid`` has exited, leaving it a zombie (WNOWAIT): an event, not a poll."""
    os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)


async def test_child_exit_code_is_reported_and_popen_settled(tmp_path: Path) -> None:
    spawned = spawn([PY, "-c", "raise SystemExit(3)"], tmp_path, dict(os.environ), tmp_path / "o", tmp_path / "e")
    fut = exits.watch_exit(asyncio.get_running_loop(), spawned.pid, is_child=True, popen=spawned.popen)
    assert exits.is_watched_child(spawned.pid)
    info = await asyncio.wait_for(fut, 10)
    assert (info.code, info.signal, info.known, info.clean) == (3, None, True, False)
    assert info.describe() == "exited with code 3"
    assert abs(info.at - time.time()) < 5
    assert spawned.popen.returncode == 3
    assert spawned.popen.poll() == 3  # Popen does not try to wait again
    assert not exits.is_watched_child(spawned.pid)


async def test_child_killed_by_signal(tmp_path: Path) -> None:
    spawned = spawn(["sleep", "1000"], tmp_path, dict(os.environ), tmp_path / "o", tmp_path / "e")
    fut = exits.watch_exit(asyncio.get_running_loop(), spawned.pid, is_child=True, popen=spawned.popen)
    os.kill(spawned.pid, signal.SIGKILL)
    info = await asyncio.wait_for(fut, 10)
    assert (info.code, info.signal) == (None, signal.SIGKILL)
    assert info.describe() == "killed by SIGKILL"
    assert spawned.popen.returncode == -signal.SIGKILL


async def test_detection_is_prompt(tmp_path: Path) -> None:
    """The pidfd wakes the loop: no polling interval between death and the future resolving."""
    spawned = spawn(["sleep", "1000"], tmp_path, dict(os.environ), tmp_path / "o", tmp_path / "e")
    fut = exits.watch_exit(asyncio.get_running_loop(), spawned.pid, is_child=True, popen=spawned.popen)
    start = time.monotonic()
    os.kill(spawned.pid, signal.SIGKILL)
    await asyncio.wait_for(fut, 10)
    assert time.monotonic() - start < 0.1


async def test_already_exited_child_resolves_at_once(tmp_path: Path) -> None:
    popen = spawn(["true"], tmp_path, dict(os.environ), tmp_path / "o", tmp_path / "e").popen
    _wait_exited_unreaped(popen.pid)
    info = await asyncio.wait_for(
        exits.watch_exit(asyncio.get_running_loop(), popen.pid, is_child=True, popen=popen), 5
    )
    assert info.code == 0
    assert popen.returncode == 0


async def test_vanished_pid_resolves_unknown_at_once(tmp_path: Path) -> None:
    popen = spawn(["true"], tmp_path, dict(os.environ), tmp_path / "o", tmp_path / "e").popen
    popen.wait()
    exits.release_child(popen.pid)
    fut = exits.watch_exit(asyncio.get_running_loop(), popen.pid, is_child=True)
    assert fut.done()
    info = fut.result()
    assert (info.code, info.signal, info.known) == (None, None, False)
    assert not exits.is_watched_child(popen.pid)


async def test_non_child_exit_is_noticed_without_status(tmp_path: Path) -> None:
    """A process we did not start (its parent is alive, so it is not ours): exit seen, status not ours."""
    pidfile = tmp_path / "pid"
    script = f"sleep 1000 & echo $! > {pidfile}.tmp; mv {pidfile}.tmp {pidfile}; wait"
    parent = spawn(["sh", "-c", script], tmp_path, dict(os.environ), tmp_path / "o", tmp_path / "e").popen
    try:
        deadline = time.monotonic() + 10
        while not pidfile.exists():  # no event for "a file appeared"; bounded poll
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        pid = int(pidfile.read_text())
        assert psutil.Process(pid).ppid() == parent.pid
        fut = exits.watch_exit(asyncio.get_running_loop(), pid, is_child=False)
        assert not exits.is_watched_child(pid)
        os.kill(pid, signal.SIGTERM)
        info = await asyncio.wait_for(fut, 10)
        assert (info.code, info.signal) == (None, None)
    finally:
        parent.kill()
        parent.wait()
        exits.release_child(parent.pid)


async def test_before_reap_runs_while_the_pid_is_still_held(tmp_path: Path) -> None:
    spawned = spawn([PY, "-c", "pass"], tmp_path, dict(os.environ), tmp_path / "o", tmp_path / "e")
    seen: list[str] = []

    def hook() -> None:
        seen.append(psutil.Process(spawned.pid).status())

    info = await exits.watch_exit(
        asyncio.get_running_loop(), spawned.pid, is_child=True, popen=spawned.popen, before_reap=hook
    )
    assert info.code == 0
    assert seen == [psutil.STATUS_ZOMBIE]


async def test_unwatch_stops_watching_without_killing(tmp_path: Path) -> None:
    spawned = spawn(["sleep", "1000"], tmp_path, dict(os.environ), tmp_path / "o", tmp_path / "e")
    fut = exits.watch_exit(asyncio.get_running_loop(), spawned.pid, is_child=True, popen=spawned.popen)
    exits.unwatch(fut)
    await asyncio.sleep(0)
    assert fut.cancelled()
    assert not exits.is_watched_child(spawned.pid)
    assert exits.is_same_process(spawned.pid, spawned.create_time)
    spawned.popen.kill()
    assert spawned.popen.wait() == -signal.SIGKILL


def test_works_on_uvloop(tmp_path: Path) -> None:
    async def main() -> exits.ExitInfo:
        spawned = spawn([PY, "-c", "raise SystemExit(7)"], tmp_path, dict(os.environ), tmp_path / "o", tmp_path / "e")
        return await exits.watch_exit(asyncio.get_running_loop(), spawned.pid, is_child=True, popen=spawned.popen)

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        assert runner.run(main()).code == 7


def test_decode_status() -> None:
    assert exits.decode_status(3 << 8) == (3, None)
    assert exits.decode_status(signal.SIGTERM) == (None, signal.SIGTERM)
    assert exits.signal_name(9) == "SIGKILL"
    assert exits.signal_name(200) == "signal 200"
    assert exits.ExitInfo(None, None, 0).describe() == "exited (status unknown)"


def test_reap_orphans_collects_reparented_zombies_only() -> None:
    """A grandchild orphaned to us (pytest is a subreaper, like the daemon) is reaped once it dies."""
    script = "import os, sys\nif os.fork() == 0:\n    sys.stdin.read()\n    os._exit(0)\nprint(os.getpid())\n"
    middle = subprocess.Popen([PY, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert middle.stdout is not None and middle.stdin is not None
    middle.stdout.readline()  # the grandchild keeps the pipe open: read the line, not to EOF
    middle.wait()
    orphans = [c for c in psutil.Process().children() if c.pid != middle.pid and "-c" in c.cmdline()]
    assert len(orphans) == 1
    orphan = orphans[0].pid
    watched = subprocess.Popen(["true"])
    exits.claim_child(watched.pid)
    try:
        assert exits.reap_orphans() == []  # alive orphan: nothing to reap
        middle.stdin.close()  # the orphan's stdin hits EOF: it exits
        _wait_exited_unreaped(orphan)
        _wait_exited_unreaped(watched.pid)
        assert exits.reap_orphans(known={12345678}) == [orphan]
        assert psutil.Process(watched.pid).status() == psutil.STATUS_ZOMBIE  # claimed: left alone
    finally:
        exits.release_child(watched.pid)
        watched.wait()
        middle.stdout.close()


def test_is_same_process_guards_pid_reuse() -> None:
    me = psutil.Process()
    assert exits.is_same_process(me.pid, me.create_time())
    assert exits.is_same_process(me.pid, None)
    assert not exits.is_same_process(me.pid, me.create_time() - 3600)
    assert not exits.is_same_process(0, None)
    dead = subprocess.Popen(["true"])
    dead_ct = psutil.Process(dead.pid).create_time()
    _wait_exited_unreaped(dead.pid)
    assert not exits.is_same_process(dead.pid, dead_ct)  # zombie counts as dead
    dead.wait()
    assert not exits.is_same_process(dead.pid, dead_ct)


def test_describe_pid() -> None:
    info = exits.describe_pid(os.getpid())
    assert info is not None
    assert info.uid == os.getuid()
    assert info.create_time == pytest.approx(psutil.Process().create_time())
    assert exits.describe_pid(0) is None
    dead = subprocess.Popen(["true"])
    dead.wait()
    assert exits.describe_pid(dead.pid) is None
