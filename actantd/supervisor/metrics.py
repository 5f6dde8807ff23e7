"""Live figures for ``agent status``: cpu percent, RSS, uptime, descendants, threads.

CPU percent is a rate, so it needs two readings: :class:`MetricsSampler` keeps one ``psutil.Process`` per pid
and reports the usage since the previous sample of that pid. On the first sample of a pid there is no
previous reading; the average since the process started is reported instead of psutil's meaningless 0.0.

Cost stays small with hundreds of agents: the per-process reads share one ``oneshot()`` (one read of each
``/proc`` file); an agent in its own cgroup (:mod:`.cgroup`) has its processes counted from that cgroup (one
small read, "children" then also counts setsid'd escapees), and :meth:`MetricsSampler.sample_many` counts the
descendants of the others from a single pass over ``/proc`` instead of one pass per agent. Nothing here runs
unless asked: the sampler is read by ``agent status``, never on a timer. Pids that died, or that another
process now holds, are dropped.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

import psutil

from actantd.supervisor import cgroup, procfs
from actantd.supervisor.exits import CREATE_TIME_TOLERANCE


@dataclass(frozen=True, slots=True)
class Figures:
    cpu_percent: float
    """Percent of one CPU (can exceed 100 for a multi-threaded process), since the previous sample."""
    rss_bytes: int
    uptime_seconds: float
    children: int
    """All live descendants, not only direct children: an agent's work usually happens in grandchildren."""
    threads: int


class MetricsSampler:
    """Samples agents by pid, remembering the previous CPU reading of each."""

    def __init__(self) -> None:
        self._procs: dict[int, psutil.Process] = {}

    def __len__(self) -> int:
        return len(self._procs)

    def forget(self, pid: int) -> None:
        self._procs.pop(pid, None)

    def sample(self, pid: int, create_time: float | None) -> Figures | None:
        """Figures of ``pid`` if it is still the process started at ``create_time``; None if it is gone."""
        figures = self._sample(pid, create_time)
        if figures is None:
            return None
        in_cgroup = _cgroup_count(pid)
        if in_cgroup is not None:
            return _with_children(figures, in_cgroup)
        children_map = procfs.children_map(procfs.scan())
        return _with_children(figures, len(procfs.descendants([pid], children_map)))

    def sample_many(self, items: Iterable[tuple[int, float | None]]) -> dict[int, Figures | None]:
        """Figures for every (pid, create_time); pids not asked for any more are forgotten."""
        wanted = dict(items)
        for pid in set(self._procs) - set(wanted):
            self.forget(pid)
        out: dict[int, Figures | None] = {pid: self._sample(pid, ct) for pid, ct in wanted.items()}
        children_map: dict[int, list[int]] | None = None
        for pid, figures in out.items():
            if figures is None:
                continue
            count = _cgroup_count(pid)
            if count is None:
                if children_map is None:  # one pass over /proc for all agents outside a cgroup
                    children_map = procfs.children_map(procfs.scan())
                count = len(procfs.descendants([pid], children_map))
            out[pid] = _with_children(figures, count)
        return out

    def _process(self, pid: int) -> tuple[psutil.Process, bool] | None:
        proc = self._procs.get(pid)
        if proc is not None and proc.is_running():  # is_running also rejects a recycled pid
            return proc, False
        self.forget(pid)
        try:
            proc = psutil.Process(pid)
        except psutil.Error:
            return None
        self._procs[pid] = proc
        return proc, True

    def _sample(self, pid: int, create_time: float | None) -> Figures | None:
        found = self._process(pid)
        if found is None:
            return None
        proc, first = found
        try:
            with proc.oneshot():
                started = proc.create_time()
                if create_time is not None and abs(started - create_time) > CREATE_TIME_TOLERANCE:
                    self.forget(pid)
                    return None
                if proc.status() == psutil.STATUS_ZOMBIE:
                    self.forget(pid)
                    return None
                cpu = proc.cpu_percent(interval=None)
                uptime = max(0.0, time.time() - started)
                if first:
                    times = proc.cpu_times()
                    cpu = 100.0 * (times.user + times.system) / uptime if uptime > 0 else 0.0
                rss = proc.memory_info().rss
                threads = proc.num_threads()
        except psutil.Error:
            self.forget(pid)
            return None
        return Figures(cpu_percent=round(cpu, 1), rss_bytes=rss, uptime_seconds=uptime, children=0, threads=threads)


def _cgroup_count(pid: int) -> int | None:
    """The agent's other processes, from its own cgroup (:mod:`.cgroup`): one small read instead of a pass over
    ``/proc``. None when ``pid`` is not the agent of an Actant cgroup (then descendants are counted)."""
    path = cgroup.cgroup_of(pid)
    if path is None:
        return None
    found = cgroup.members(path)
    if found is None or pid not in found:
        return None
    return len(found) - 1


def _with_children(figures: Figures, children: int) -> Figures:
    return Figures(
        cpu_percent=figures.cpu_percent,
        rss_bytes=figures.rss_bytes,
        uptime_seconds=figures.uptime_seconds,
        children=children,
        threads=figures.threads,
    )
