"""Whole-system process scans straight from ``/proc``, for the callers that need every process at once.

psutil is the right tool for one process; for "who are the descendants of these pids" it would build a
``Process`` object per pid. Killing a tree and counting children for hundreds of agents both need one pass
over ``/proc`` that reads one small file per process, which is what this gives.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Stat:
    """The fields of ``/proc/<pid>/stat`` the supervisor uses."""

    pid: int
    ppid: int
    pgid: int
    state: str

    @property
    def dead(self) -> bool:
        """A zombie (exited, not reaped) or a task being torn down: nothing left to signal or count."""
        return self.state in ("Z", "X")


def all_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def read_small(path: str) -> bytes | None:
    """A small kernel file (``/proc``, cgroupfs) in one ``read``; None when it cannot be opened or read.

    ``os.open``/``os.read`` rather than ``open()``: no file object and no buffer for a few hundred bytes,
    which is most of the cost when a stop of hundreds of agents reads a few such files each.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        chunks = [os.read(fd, 65536)]
        while len(chunks[-1]) == 65536:  # larger than one read: keep going (cgroup.procs of a big agent)
            chunks.append(os.read(fd, 65536))
    except OSError:
        return None
    finally:
        os.close(fd)
    return b"".join(chunks)


def read_stat(pid: int) -> Stat | None:
    """None when the process is gone (or unreadable)."""
    raw = read_small(f"/proc/{pid}/stat")
    if raw is None:
        return None
    # The command name sits in parentheses and may itself contain ") ": split after the last one.
    fields = raw[raw.rfind(b")") + 2 :].split()
    try:
        return Stat(pid=pid, ppid=int(fields[1]), pgid=int(fields[2]), state=fields[0].decode())
    except (IndexError, ValueError):
        return None


def scan() -> list[Stat]:
    """Every process readable right now (a snapshot: processes come and go while it runs)."""
    out: list[Stat] = []
    for pid in all_pids():
        stat = read_stat(pid)
        if stat is not None:
            out.append(stat)
    return out


def children_map(stats: Iterable[Stat]) -> dict[int, list[int]]:
    """ppid → live child pids."""
    children: dict[int, list[int]] = {}
    for stat in stats:
        if not stat.dead:
            children.setdefault(stat.ppid, []).append(stat.pid)
    return children


def descendants(roots: Iterable[int], children: dict[int, list[int]]) -> set[int]:
    """Every pid below ``roots`` (the roots themselves excluded)."""
    found: set[int] = set()
    stack = list(roots)
    while stack:
        for child in children.get(stack.pop(), ()):
            if child not in found:
                found.add(child)
                stack.append(child)
    return found


def has_env(pid: int, needle: bytes) -> bool:
    """Whether the process's initial environment holds ``needle`` (``b"\\0KEY=value\\0"``).

    ``/proc/<pid>/environ`` is readable only for our own processes (EACCES otherwise: not a match).
    """
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            data = f.read()
    except OSError:
        return False
    return needle in b"\0" + data


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Every live process at one moment, with what finding an agent's processes needs from each."""

    stats: list[Stat]
    children: dict[int, list[int]]
    instance_of: dict[int, str]
    """pid → the value of the marker variable in its initial environment (processes that carry it)."""


def env_value(pid: int, key: bytes) -> str | None:
    """The value of ``key`` in the process's initial environment, None when absent or unreadable."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            data = b"\0" + f.read()
    except OSError:
        return None
    needle = b"\0" + key + b"="
    at = data.find(needle)
    if at < 0:
        return None
    start = at + len(needle)
    end = data.find(b"\0", start)
    return data[start : end if end >= 0 else len(data)].decode(errors="replace")


def snapshot(marker: str) -> Snapshot:
    """One pass over ``/proc``: stat of every process and the ``marker`` variable of those that carry it."""
    stats = [s for s in scan() if not s.dead]
    key = marker.encode()
    instance_of: dict[int, str] = {}
    for stat in stats:
        value = env_value(stat.pid, key)
        if value is not None:
            instance_of[stat.pid] = value
    return Snapshot(stats=stats, children=children_map(stats), instance_of=instance_of)
