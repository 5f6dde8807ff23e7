"""Stop an agent and everything it started, grandchildren and escapees included.

"After ``stop`` returns, no process of the agent is left." supervisord signals one pid and PM2 a tree it
walks once; both lose processes that double-fork and ``setsid`` away, and both forget everything after a
restart. Here the targets are collected *before* any signal is sent (once a parent dies its children are
reparented and the tree can no longer be walked), in one of two ways.

**With a cgroup per agent** (:mod:`.cgroup`; used whenever the instance's cgroup exists and holds the live
leader): the targets are the members of the agent's cgroup, read from ``cgroup.procs``, and the SIGKILL
rounds also write ``cgroup.kill``, which kills every member atomically. Cost: O(the agent's own processes),
whatever else runs on the machine. It also catches the one process the fallback cannot: a setsid'd,
double-forked descendant that cleared its environment. Chosen over the other ways to avoid a whole-machine
scan per stop because it is the only one that is both O(agent) and complete: the daemon's own children
table (it is a subreaper) only holds the orphans that were reparented to it, not an agent's live subtree
(``/proc/PID/task/TID/children`` is a kernel option, absent on this machine, for one), and says nothing
after a daemon restart; a shared snapshot still reads every process on the machine, once per batch.

**Without** (no writable cgroup v2, ``ACTANT_CGROUPS=0``, an attached process, an agent started before
cgroups were in use), from one ``/proc`` snapshot *shared by every stop in flight* (:func:`shared_snapshot`:
a burst of N stops costs a few scans, not N):

1. the agent's process group (the agent is a session leader, see :mod:`.spawn`),
2. all descendants of every target (walked from the snapshot's ppid map),
3. every process of our uid whose environment holds ``ACTANT_INSTANCE_ID=<id>``: the daemon sets it on every
   agent and descendants inherit it, so this finds setsid'd, double-forked escapees wherever they were
   reparented, including after a daemon restart.

Each target is held by a pidfd from the moment it is found, so signals go to exactly that process
(``pidfd_send_signal``) and its death is awaited as an event on the loop; a recycled pid can never be hit.
The whole group is signalled with ``killpg`` (atomic against a fork racing the signal) only while its id is
known to be held by the agent. We never signal pid 0 or 1, negative pids, our own pid, our ancestors, or our
own process group.

Sequence: ``sig`` to the group and to targets outside it; wait for the leader (and the caller's exit future,
if any), then the rest, until ``timeout``; then, in a few rounds, re-collect and SIGKILL whatever is still
alive until nothing is. Zombies we end up parenting (we are a subreaper) are reaped, except the leader,
whose status belongs to whoever watches it (:func:`actantd.supervisor.exits.watch_exit`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from actantd.supervisor import cgroup, exits, procfs

INSTANCE_ENV = "ACTANT_INSTANCE_ID"
"""Set by the daemon on every agent; the mark that identifies an agent's processes wherever they went."""

KILL_ROUNDS = 5
"""SIGKILL rounds; each re-collects first, so a process forked just before the previous round is caught."""

DEFAULT_KILL_TIMEOUT = 5.0
"""Seconds to wait for SIGKILLed processes to vanish (longer only for processes stuck in the kernel)."""


@dataclass(frozen=True, slots=True)
class TreeResult:
    """What :func:`terminate_tree` did. ``survivors`` is empty unless a process was not ours to kill."""

    targets: tuple[int, ...]
    """Every process found and signalled, in the order found (the leader first when it was alive)."""
    killed: tuple[int, ...]
    """The targets that needed SIGKILL."""
    forced: bool
    survivors: tuple[int, ...]
    leader_alive: bool
    """Whether the leader was still running when called (False for an already-dead pid)."""


_protected_cache: tuple[int, frozenset[int]] | None = None


def _protected_pids() -> frozenset[int]:
    """Pids we must never signal: 0, 1, ourselves and our ancestors (the daemon may run inside an agent).

    Cached while our parent stays the same: ancestors change only when one of them dies (we are then
    reparented, which changes ``getppid``), and walking them costs a ``/proc`` read each.
    """
    global _protected_cache
    ppid = os.getppid()
    if _protected_cache is not None and _protected_cache[0] == ppid:
        return _protected_cache[1]
    protected = {0, 1, os.getpid()}
    with contextlib.suppress(psutil.Error):
        protected.update(p.pid for p in psutil.Process().parents())
    _protected_cache = (ppid, frozenset(protected))
    return _protected_cache[1]


def _env_needle(instance_id: str) -> bytes:
    return b"\0" + f"{INSTANCE_ENV}={instance_id}".encode() + b"\0"


def find_instance_processes(instance_id: str) -> list[psutil.Process]:
    """Live processes of ours that belong to ``instance_id``: its cgroup's members where it has one, else the
    carriers of ``ACTANT_INSTANCE_ID=<instance_id>`` (a whole-machine scan)."""
    if not instance_id:
        return []
    protected = _protected_pids()
    path = cgroup.path_of(instance_id)
    in_cgroup = cgroup.members(path) if path is not None else None
    if in_cgroup is not None:
        pids = [p for p in in_cgroup if p not in protected]
    else:
        needle = _env_needle(instance_id)
        pids = [p for p in procfs.all_pids() if p not in protected and procfs.has_env(p, needle)]
    found: list[psutil.Process] = []
    for pid in pids:
        stat = procfs.read_stat(pid)
        if stat is None or stat.dead:
            continue
        with contextlib.suppress(psutil.Error):
            found.append(psutil.Process(pid))
    return found


def _match(
    snapshot: procfs.Snapshot, seeds: set[int], pgid: int | None, instance_id: str | None
) -> dict[int, psutil.Process]:
    """Seeds, members of ``pgid``, carriers of the instance id, and all their descendants (live ones only)."""
    protected = _protected_pids()
    matched = {
        s.pid
        for s in snapshot.stats
        if s.pid not in protected
        and (
            s.pid in seeds
            or (pgid is not None and s.pgid == pgid)
            or (instance_id is not None and snapshot.instance_of.get(s.pid) == instance_id)
        )
    }
    matched |= procfs.descendants(matched | seeds, snapshot.children)
    return _processes(matched - protected)


def _processes(pids: set[int] | list[int]) -> dict[int, psutil.Process]:
    found: dict[int, psutil.Process] = {}
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            found[pid] = psutil.Process(pid)
    return found


@dataclass(eq=False)
class _Target:
    pid: int
    pidfd: int
    pgid: int | None
    gone: asyncio.Future[None]
    denied: bool = False
    killed: bool = False


@dataclass(eq=False)
class _Tree:
    loop: asyncio.AbstractEventLoop
    instance_id: str | None
    cgroup: Path | None = None
    """The agent's cgroup when its processes are all in one (see :mod:`.cgroup`); None: scan ``/proc``."""
    pgid: int | None = None
    targets: dict[int, _Target] = field(default_factory=dict)
    order: list[int] = field(default_factory=list)

    def add(self, proc: psutil.Process) -> _Target | None:
        """Hold ``proc`` by a pidfd, after checking the pid still names the process that was scanned."""
        # is_running compares create_time: the pidfd was not opened on a recycled pid
        return self.hold(proc.pid, proc.is_running)

    def hold(self, pid: int, verify: Callable[[], bool] | None = None) -> _Target | None:
        """Hold ``pid`` by a pidfd; ``verify``, called once the pidfd is open, says it is still the one meant."""
        try:
            pidfd = os.pidfd_open(pid)
        except OSError:
            return None
        try:
            same = verify() if verify is not None else True
            pgid = os.getpgid(pid) if same else None
        except (OSError, psutil.Error):
            same, pgid = False, None
        if not same:
            os.close(pidfd)
            return None
        return self._register(pid, pidfd, pgid)

    def _register(self, pid: int, pidfd: int, pgid: int | None) -> _Target:
        gone: asyncio.Future[None] = self.loop.create_future()

        def on_exit() -> None:
            with contextlib.suppress(ValueError, OSError):
                self.loop.remove_reader(pidfd)
            if not gone.done():
                gone.set_result(None)

        self.loop.add_reader(pidfd, on_exit)
        target = _Target(pid=pid, pidfd=pidfd, pgid=pgid, gone=gone)
        self.targets[pid] = target
        self.order.append(pid)
        return target

    def alive(self) -> list[_Target]:
        return [t for t in self.targets.values() if not t.gone.done()]

    def _forget_if_recycled(self, pid: int) -> bool:
        """Whether ``pid`` still needs holding; drops the holder of a dead process whose pid came back."""
        known = self.targets.get(pid)
        if known is not None and not known.gone.done():
            return False
        if known is not None:  # the pid was recycled after our target died: forget the old holder
            self._release(known)
            del self.targets[pid]
        return True

    def collect_cgroup(self, listed: list[int] | None = None) -> None:
        """Hold every member of the cgroup not held yet: O(the agent's processes), no scan.

        A pid read from ``cgroup.procs`` is held only if a second read, after its pidfd was opened, still
        lists it: then the pidfd names a process of the cgroup, not a stranger that got a recycled pid.
        """
        assert self.cgroup is not None
        if listed is None and not self.alive() and not cgroup.populated(self.cgroup):
            return  # everything exited: nothing to read (the common case after a clean stop)
        protected = _protected_pids()
        members = listed if listed is not None else cgroup.members(self.cgroup) or []
        opened: list[tuple[int, int]] = []
        for pid in members:
            if pid in protected or not self._forget_if_recycled(pid):
                continue
            with contextlib.suppress(OSError):
                opened.append((pid, os.pidfd_open(pid)))
        if not opened:
            return
        still = set(cgroup.members(self.cgroup) or ())
        for pid, pidfd in opened:
            pgid = None
            if pid in still:
                with contextlib.suppress(OSError):
                    pgid = os.getpgid(pid)
            if pgid is None:
                os.close(pidfd)
            else:
                self._register(pid, pidfd, pgid)

    async def collect(self) -> None:
        if self.cgroup is not None:
            self.collect_cgroup()
            return
        seeds = {t.pid for t in self.alive()}
        found = _match(await shared_snapshot(), seeds, self.pgid, self.instance_id)
        for pid, proc in found.items():
            if self._forget_if_recycled(pid):
                self.add(proc)

    def _group_usable(self) -> bool:
        """``killpg`` only while a live target we hold is in the group, so the group id cannot be recycled."""
        return self.pgid is not None and any(t.pgid == self.pgid for t in self.alive())

    def send(self, sig: int, targets: list[_Target], *, skip_group_members: bool) -> None:
        group_sent = False
        if sig == signal.SIGKILL and self.cgroup is not None:
            cgroup.kill_all(self.cgroup)  # atomic: a fork racing the kill is killed too
        if self._group_usable():
            assert self.pgid is not None
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pgid, sig)
                group_sent = True
        for target in targets:
            if skip_group_members and group_sent and target.pgid == self.pgid:
                continue
            try:
                signal.pidfd_send_signal(target.pidfd, sig)
            except ProcessLookupError:
                pass  # exited meanwhile
            except PermissionError:
                target.denied = True

    async def wait(self, futures: Sequence[asyncio.Future[Any]], until: float) -> None:
        pending = [f for f in futures if not f.done()]
        remaining = until - self.loop.time()
        if pending and remaining > 0:
            await asyncio.wait(pending, timeout=remaining)

    def reap(self, leader_pid: int | None) -> None:
        """Collect zombies of ours among the targets (orphans reparented to us), never the leader's status."""
        for target in self.targets.values():
            if target.pid == leader_pid or exits.is_watched_child(target.pid) or not target.gone.done():
                continue
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitid(os.P_PIDFD, target.pidfd, os.WEXITED | os.WNOHANG)

    def _release(self, target: _Target) -> None:
        with contextlib.suppress(ValueError, OSError):
            self.loop.remove_reader(target.pidfd)
        with contextlib.suppress(OSError):
            os.close(target.pidfd)
        if not target.gone.done():
            target.gone.cancel()

    def close(self) -> None:
        for target in self.targets.values():
            self._release(target)


def _usable_cgroup(instance_id: str | None, leader: int | None) -> tuple[Path, list[int]] | None:
    """The instance's cgroup and its members if it holds all its processes: it exists and holds the live
    leader (an attached process, or one started without cgroups, lives outside, and then only a ``/proc`` scan
    finds its tree)."""
    path = cgroup.path_of(instance_id) if instance_id else None
    if path is None:
        return None
    found = cgroup.members(path)
    if found is None or (leader is not None and leader not in found):
        return None
    return path, found


class _SharedScan:
    """Whole-machine ``/proc`` snapshots shared by every stop in flight (the fallback without cgroups).

    A request is served by the first scan that *starts after* it was made, so a snapshot never predates the
    signals its requester sent (a kill round re-collects to catch what forked meanwhile). Requests that arrive
    while a scan runs share the next one: a burst of N stops costs a few scans, not N.
    """

    def __init__(self) -> None:
        self._next: asyncio.Future[procfs.Snapshot] | None = None
        self._running = False
        self._loop: asyncio.AbstractEventLoop | None = None

    async def get(self) -> procfs.Snapshot:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a new event loop (tests): nothing of the old one is usable
            self._loop, self._next, self._running = loop, None, False
        if self._next is None:
            self._next = loop.create_future()
            if not self._running:
                loop.call_soon(self._start)  # one tick later: the stops of one batch join this scan
        return await asyncio.shield(self._next)

    def _start(self) -> None:
        fut, self._next = self._next, None
        if fut is None or self._loop is None:
            return
        self._running = True
        task = self._loop.create_task(asyncio.to_thread(procfs.snapshot, INSTANCE_ENV))

        def done(t: asyncio.Task[procfs.Snapshot]) -> None:
            self._running = False
            if t.cancelled():
                fut.cancel()
            elif t.exception() is not None:
                fut.set_exception(t.exception())  # type: ignore[arg-type]
            else:
                fut.set_result(t.result())
            if self._next is not None:
                self._start()

        task.add_done_callback(done)


_shared = _SharedScan()


async def shared_snapshot() -> procfs.Snapshot:
    """A ``/proc`` snapshot taken after this call began, shared with concurrent callers."""
    return await _shared.get()


def _check_pid(pid: int) -> None:
    if pid <= 1 or pid == os.getpid():
        raise ValueError(f"refusing to terminate pid {pid}")


def _open_leader(tree: _Tree, pid: int, create_time: float | None) -> _Target | None:
    """Hold the leader if it is still the recorded process; adopt its group id if it leads one.

    A leader that already exited but is not reaped yet (a zombie) still pins its pid, and so the group id,
    which its surviving group members keep using: the group is still ours to signal.
    """
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        return None
    stat = procfs.read_stat(pid)  # read after the pidfd is open: if it is the recorded process, so is the pidfd
    same = stat is not None
    if same and create_time is not None:
        try:
            same = abs(psutil.Process(pid).create_time() - create_time) <= exits.CREATE_TIME_TOLERANCE
        except psutil.Error:
            same = False
    if not same or stat is None:
        os.close(pidfd)
        return None
    if stat.pgid == pid and pid != os.getpgrp():
        tree.pgid = pid
    if stat.dead:
        os.close(pidfd)
        return None
    return tree._register(pid, pidfd, stat.pgid)


async def terminate_tree(
    pid: int | None,
    *,
    instance_id: str | None,
    sig: int = signal.SIGTERM,
    timeout: float = 10.0,
    exited: asyncio.Future[exits.ExitInfo] | None = None,
    create_time: float | None = None,
    kill_timeout: float = DEFAULT_KILL_TIMEOUT,
) -> TreeResult:
    """Stop the agent ``pid`` and every process of it; see the module docstring for how and what.

    ``exited`` is the future from :func:`~actantd.supervisor.exits.watch_exit` for the leader, awaited so
    the caller's view (its reaped status) is settled when this returns. ``create_time`` guards a pid
    recorded earlier: if the pid now names another process, only the instance's marked processes are
    targeted. An already-dead pid is fine (its escaped descendants are still found by ``instance_id``), and
    ``pid=None`` targets only the instance's marked processes (clean-up after a crash or a lost process).
    """
    if pid is not None:
        _check_pid(pid)
    loop = asyncio.get_running_loop()
    tree = _Tree(loop=loop, instance_id=instance_id or None)
    try:
        leader = _open_leader(tree, pid, create_time) if pid is not None else None
        leader_alive = leader is not None and not leader.gone.done()
        usable = _usable_cgroup(instance_id, leader.pid if leader_alive and leader is not None else None)
        if usable is not None:
            tree.cgroup = usable[0]
            tree.collect_cgroup(usable[1])
        else:
            await tree.collect()
        tree.send(sig, tree.alive(), skip_group_members=True)

        deadline = loop.time() + timeout
        first: list[asyncio.Future[None]] = [leader.gone] if leader is not None else []
        await tree.wait(first, deadline)
        if exited is not None:
            await tree.wait([exited], deadline)
        await tree.wait([t.gone for t in tree.alive()], deadline)

        forced = False
        for _ in range(KILL_ROUNDS):
            await tree.collect()
            killable = [t for t in tree.alive() if not t.denied]
            if not killable:
                break
            forced = True
            for target in killable:
                target.killed = True
            tree.send(signal.SIGKILL, killable, skip_group_members=False)
            await tree.wait([t.gone for t in killable], loop.time() + kill_timeout)

        if exited is not None:
            await tree.wait([exited], loop.time() + kill_timeout)
        tree.reap(pid)
        if tree.cgroup is not None and not tree.alive():
            cgroup.remove(tree.cgroup)  # recreated by the next start; keeps the hierarchy from growing
        return TreeResult(
            targets=tuple(dict.fromkeys(tree.order)),
            killed=tuple(p for p in dict.fromkeys(tree.order) if p in tree.targets and tree.targets[p].killed),
            forced=forced,
            survivors=tuple(t.pid for t in tree.alive()),
            leader_alive=leader_alive,
        )
    finally:
        tree.close()
