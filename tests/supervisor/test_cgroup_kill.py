"""Per-agent cgroups (where the machine allows them) and the shared /proc snapshot fallback of kill.py."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from pathlib import Path

import psutil
import pytest

from actantd.supervisor import cgroup, exits, kill, procfs
from actantd.supervisor.spawn import spawn

PY = sys.executable

SCRUBBED = r"""
import os, sys, time
r, w = os.pipe()
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.write(w, str(os.getpid()).encode() + b"\n")
        os.execve("/bin/sleep", ["sleep", "1000"], {})
    os._exit(0)
os.close(w)
print(os.read(r, 64).decode().strip(), flush=True)
time.sleep(1000)
"""

needs_cgroups = pytest.mark.skipif(cgroup.base() is None, reason="no writable cgroup v2 hierarchy here")


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@needs_cgroups
async def test_an_agent_starts_in_its_own_cgroup_and_an_env_scrubbed_escapee_dies(tmp_path: Path) -> None:
    instance_id = str(uuid.uuid4())
    env = dict(os.environ, ACTANT_INSTANCE_ID=instance_id)
    out = tmp_path / "stdout.log"
    spawned = spawn([PY, "-c", SCRUBBED], tmp_path, env, out, tmp_path / "stderr.log")
    exited = exits.watch_exit(asyncio.get_running_loop(), spawned.pid, is_child=True, popen=spawned.popen)
    path = cgroup.path_of(instance_id)
    assert path is not None
    escapee = 0
    try:
        while not out.read_text().strip():
            await asyncio.sleep(0.01)  # the agent reports its escapee's pid once it is forked
        escapee = int(out.read_text().split()[0])
        members = cgroup.members(path)
        assert members is not None and spawned.pid in members and escapee in members
        assert procfs.env_value(escapee, kill.INSTANCE_ENV.encode()) is None  # no marker: only the cgroup knows
        result = await kill.terminate_tree(spawned.pid, instance_id=instance_id, timeout=0.5, exited=exited)
        assert escapee in result.targets
        assert not _alive(escapee) and not _alive(spawned.pid)
        assert not path.exists()  # removed once empty
    finally:
        if escapee and _alive(escapee):
            os.kill(escapee, signal.SIGKILL)
        await kill.terminate_tree(None, instance_id=instance_id, sig=signal.SIGKILL, timeout=0)
        exits.reap_orphans()


async def test_concurrent_snapshot_requests_share_scans(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = 0
    real = procfs.snapshot

    def counting(marker: str) -> procfs.Snapshot:
        nonlocal calls
        calls += 1
        return real(marker)

    monkeypatch.setattr(procfs, "snapshot", counting)
    snaps = await asyncio.gather(*(kill.shared_snapshot() for _ in range(50)))
    assert calls == 1 and all(s is snaps[0] for s in snaps)
    assert any(s.pid == os.getpid() for s in snaps[0].stats)
    again = await kill.shared_snapshot()  # a later request never gets an older snapshot
    assert calls == 2 and again is not snaps[0]
