"""OrphanReaper: orphans reparented to us are reaped on SIGCHLD; a watched child's status is never stolen."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import psutil
import pytest

from actantd.supervisor import exits
from actantd.supervisor.spawn import is_child_subreaper, set_child_subreaper

PY = sys.executable
ORPHAN = "import os, sys, time\nif os.fork() == 0:\n    time.sleep(0.2)\n    os._exit(3)\nprint(os.getpid())"


def _zombie(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


async def test_orphans_are_reaped_and_watched_children_keep_their_status(monkeypatch: pytest.MonkeyPatch) -> None:
    if not is_child_subreaper():
        set_child_subreaper()
    monkeypatch.setattr(exits, "ORPHAN_GRACE_SECONDS", 0.05)
    loop = asyncio.get_running_loop()
    reaper = exits.OrphanReaper(loop)
    reaper.start()
    try:
        watched = subprocess.Popen([PY, "-c", "import sys; sys.exit(5)"])  # noqa: ASYNC220
        exits.claim_child(watched.pid)
        info = exits.watch_exit(loop, watched.pid, is_child=True, popen=watched)
        # The orphan: forked by a child that exits at once, so it is reparented to us (a subreaper).
        parent = subprocess.run([PY, "-c", ORPHAN], capture_output=True, text=True, check=True)  # noqa: ASYNC221
        del parent
        assert (await asyncio.wait_for(info, 10)).code == 5  # its watcher, not the reaper, collected it
        deadline = time.monotonic() + 10
        while reaper.reaped == 0:
            assert time.monotonic() < deadline, "the orphan was never reaped"
            await asyncio.sleep(0.02)
        assert not any(_zombie(c.pid) for c in psutil.Process().children())
    finally:
        reaper.close()


async def test_no_timer_runs_without_zombies() -> None:
    reaper = exits.OrphanReaper(asyncio.get_running_loop())
    reaper.start()
    try:
        await asyncio.sleep(0.01)
        assert reaper._timer is None and not reaper._scheduled
    finally:
        reaper.close()
