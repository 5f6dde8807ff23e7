"""MetricsSampler: live figures of real processes, CPU as a delta between samples, forgetting the dead."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import psutil

from actantd.supervisor import exits
from actantd.supervisor.metrics import MetricsSampler
from actantd.supervisor.spawn import Spawned, spawn
from tests.helpers import until

PY = sys.executable

BUSY = """
import subprocess, time
kids = [subprocess.Popen(["sh", "-c", "sleep 1000 & wait"]) for _ in range(2)]
end = time.monotonic() + 1000
while time.monotonic() < end:
    pass
"""


def _start(tmp_path: Path, script: str) -> tuple[Spawned, asyncio.Future[exits.ExitInfo]]:
    spawned = spawn([PY, "-c", script], tmp_path, dict(os.environ), tmp_path / "o", tmp_path / "e")
    return spawned, exits.watch_exit(asyncio.get_running_loop(), spawned.pid, is_child=True, popen=spawned.popen)


async def _stop(spawned: Spawned, exited: asyncio.Future[exits.ExitInfo]) -> None:
    for child in psutil.Process(spawned.pid).children(recursive=True):
        child.kill()
    os.kill(spawned.pid, signal.SIGKILL)
    await exited


async def test_figures_of_a_busy_process_with_descendants(tmp_path: Path) -> None:
    spawned, exited = _start(tmp_path, BUSY)
    try:
        sampler = MetricsSampler()
        await until(lambda: len(psutil.Process(spawned.pid).children(recursive=True)) == 4)
        await until(lambda: psutil.Process(spawned.pid).cpu_times().user > 0.05)
        first = sampler.sample(spawned.pid, spawned.create_time)
        assert first is not None
        assert first.cpu_percent > 0  # first sight: average since start, not psutil's 0.0
        assert first.rss_bytes > 1024 * 1024
        assert first.children == 4  # two sh and their sleeps: all descendants
        assert first.threads >= 1
        assert 0 <= first.uptime_seconds < 60
        await until(lambda: psutil.Process(spawned.pid).cpu_times().user > 0.2)
        second = sampler.sample(spawned.pid, spawned.create_time)
        assert second is not None and second.cpu_percent > 0  # a delta since the first sample (busy loop)
        assert len(sampler) == 1
    finally:
        await _stop(spawned, exited)


async def test_gone_or_recycled_pids_give_none_and_are_forgotten(tmp_path: Path) -> None:
    spawned, exited = _start(tmp_path, "import time; time.sleep(1000)")
    sampler = MetricsSampler()
    assert sampler.sample(spawned.pid, spawned.create_time - 60) is None  # another process's record
    assert len(sampler) == 0
    assert sampler.sample(spawned.pid, None) is not None
    os.kill(spawned.pid, signal.SIGKILL)
    await exited
    assert sampler.sample(spawned.pid, spawned.create_time) is None
    assert len(sampler) == 0


async def test_sample_many_scans_once_and_prunes(tmp_path: Path) -> None:
    started = [_start(tmp_path, "import time; time.sleep(1000)") for _ in range(20)]
    try:
        sampler = MetricsSampler()
        items = [(s.pid, s.create_time) for s, _ in started]
        t0 = time.perf_counter()
        out = sampler.sample_many(items)
        elapsed = time.perf_counter() - t0
        assert set(out) == {pid for pid, _ in items}
        assert all(f is not None and f.children == 0 for f in out.values())
        assert elapsed < 0.5
        assert len(sampler) == 20
        sampler.sample_many(items[:5])
        assert len(sampler) == 5
    finally:
        for spawned, exited in started:
            await _stop(spawned, exited)
