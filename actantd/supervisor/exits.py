"""Event-driven exit detection with pidfds, for children and for processes we did not start.

Design decision: one mechanism for every supervised process. ``os.pidfd_open`` gives a file descriptor that
becomes readable when the process exits; it is registered with ``loop.add_reader``, so a crash is noticed in
the same loop iteration, with no polling and no SIGCHLD handler. The same works for a process re-adopted
after a daemon restart (it is no longer our child) and for one attached with ``agent attach``.

For our own children the daemon reaps itself, with ``waitid(P_PIDFD, ...)`` on that same pidfd: the fd names
exactly one process, so a reused pid can never make us reap (or report) the wrong one. We do not use asyncio's
child watchers: they would race us for the status, and since the daemon is a child subreaper it also has to
reap orphaned grandchildren that no library knows about (:class:`OrphanReaper`, on SIGCHLD; the older
:func:`reap_orphans` scans every process and stays for tests and one-off use). Children being watched here
(and children just spawned, see :func:`claim_child`) are remembered so that neither steals their status.

For a process that is not our child the exit status is not ours to read: ``code`` and ``signal`` are None.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

import psutil

log = logging.getLogger(__name__)

CREATE_TIME_TOLERANCE = 1.0
"""Seconds. psutil's create_time is boot time (whole seconds from /proc/stat, which moves when the clock is
stepped) plus start ticks, so the same process can read back up to ~1 s apart across daemon runs. A reused
pid would need the pid space to wrap within that second, which does not happen in practice."""

_RETRY_REAP_SECONDS = 0.005

_owned_children: set[int] = set()
"""Pids of our children whose status someone will collect (:func:`watch_exit`, after :func:`claim_child`
from :func:`actantd.supervisor.spawn.spawn`): :func:`reap_orphans` must leave them alone."""


@dataclass(frozen=True, slots=True)
class ExitInfo:
    """How a process ended. Both None means unknown (not our child, or reaped by someone else).

    ``at`` is wall-clock time (``time.time()``), the form persisted as ``lastExit.at``.
    """

    code: int | None
    signal: int | None
    at: float

    @property
    def known(self) -> bool:
        return self.code is not None or self.signal is not None

    @property
    def clean(self) -> bool:
        """Exit code 0: the one outcome ``OnFailure`` does not restart."""
        return self.code == 0

    def describe(self) -> str:
        return describe_exit(self.code, self.signal)


def describe_exit(code: int | None, sig: int | None) -> str:
    """Words for an exit, as used in reasons and journal entries."""
    if sig is not None:
        return f"killed by {signal_name(sig)}"
    if code is not None:
        return f"exited with code {code}"
    return "exited (status unknown)"


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def decode_waitid(result: os.waitid_result) -> tuple[int | None, int | None]:
    """(code, signal) from a ``waitid`` result; a core dump counts as the signal that caused it."""
    if result.si_code == os.CLD_EXITED:
        return result.si_status, None
    return None, result.si_status


def decode_status(status: int) -> tuple[int | None, int | None]:
    """(code, signal) from a ``waitpid`` status."""
    value = os.waitstatus_to_exitcode(status)
    return (value, None) if value >= 0 else (None, -value)


def claim_child(pid: int) -> None:
    """Mark a child we just started as owned, so :func:`reap_orphans` cannot steal its status before
    :func:`watch_exit` is called (``spawn`` may run in a thread while the loop goes on)."""
    _owned_children.add(pid)


def release_child(pid: int) -> None:
    """Undo :func:`claim_child` for a child whose status nobody will collect after all."""
    _owned_children.discard(pid)


def is_watched_child(pid: int) -> bool:
    """Whether the status of ``pid`` belongs to someone (other reapers must leave it alone)."""
    return pid in _owned_children


@dataclass(frozen=True, slots=True)
class ProcessInfo:
    """Who a pid is, to validate ``agent attach`` and to compute a re-adopted process's uptime."""

    pid: int
    uid: int
    create_time: float
    name: str
    cmdline: tuple[str, ...]


def describe_pid(pid: int) -> ProcessInfo | None:
    """The live process ``pid`` (None when it does not exist or is a zombie)."""
    if pid <= 0:
        return None
    try:
        proc = psutil.Process(pid)
        with proc.oneshot():
            if proc.status() == psutil.STATUS_ZOMBIE:
                return None
            uid = proc.uids().real
            create_time = proc.create_time()
            name = proc.name()
        try:
            cmdline = tuple(proc.cmdline())
        except psutil.AccessDenied:
            cmdline = ()
    except psutil.Error:
        return None
    return ProcessInfo(pid=pid, uid=uid, create_time=create_time, name=name, cmdline=cmdline)


def unwatch(fut: asyncio.Future[ExitInfo]) -> None:
    """Stop watching (``agent detach``, daemon shutdown): the process lives on, its pidfd is closed.

    For a child, its status is then nobody's: :func:`reap_orphans` will collect it when it exits.
    """
    fut.cancel()


def watch_exit(
    loop: asyncio.AbstractEventLoop,
    pid: int,
    *,
    is_child: bool,
    popen: subprocess.Popen[bytes] | None = None,
    before_reap: Callable[[], None] | None = None,
) -> asyncio.Future[ExitInfo]:
    """A future resolved with the exit of ``pid``; resolved at once when the pid is already gone.

    ``is_child``: reap it and report its status (set ``popen.returncode`` too, so Popen neither warns nor
    waits again). Otherwise only notice the exit. ``before_reap`` runs once the process has exited but
    before it is reaped, while its pid (and so its process-group id) cannot be reused: the moment to signal
    what is left of its group. Cancelling the future stops watching (``agent detach``) and closes the pidfd.
    """
    fut: asyncio.Future[ExitInfo] = loop.create_future()
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        # Fully gone: never existed, or a child already reaped elsewhere. Either way the status is lost.
        _owned_children.discard(pid)
        _settle(fut, popen, None, None)
        return fut

    if is_child:
        _owned_children.add(pid)
    state = {"open": True, "before_done": False}

    def close() -> None:
        if not state["open"]:
            return
        state["open"] = False
        with contextlib.suppress(ValueError, OSError, RuntimeError):
            loop.remove_reader(pidfd)
        os.close(pidfd)
        if is_child:
            _owned_children.discard(pid)

    def call_before_reap() -> None:
        if before_reap is None or state["before_done"]:
            return
        state["before_done"] = True
        try:
            before_reap()
        except Exception:  # a hook's bug must not leave the exit unreported
            log.exception("before_reap hook failed for pid %d", pid)

    def on_readable() -> None:
        if not state["open"] or fut.done():
            close()
            return
        call_before_reap()
        code: int | None = None
        sig: int | None = None
        if is_child:
            try:
                result = os.waitid(os.P_PIDFD, pidfd, os.WEXITED | os.WNOHANG)
            except ChildProcessError:
                result = None  # reaped by someone else (e.g. a dropped Popen's cleanup): status lost
            else:
                if result is None:
                    # Readable but not yet waitable (a thread-group corner case): look again shortly rather
                    # than spin on a level-triggered fd.
                    loop.remove_reader(pidfd)
                    loop.call_later(_RETRY_REAP_SECONDS, _rearm)
                    return
            if result is not None:
                code, sig = decode_waitid(result)
        close()
        _settle(fut, popen, code, sig)

    def _rearm() -> None:
        if state["open"] and not fut.done():
            loop.add_reader(pidfd, on_readable)

    fut.add_done_callback(lambda _f: close())
    loop.add_reader(pidfd, on_readable)
    return fut


def _settle(
    fut: asyncio.Future[ExitInfo], popen: subprocess.Popen[bytes] | None, code: int | None, sig: int | None
) -> None:
    if popen is not None and popen.returncode is None:
        # Popen's convention: -N for a signal. 255 stands for "unknown", as asyncio uses for a lost status.
        popen.returncode = code if code is not None else (-sig if sig is not None else 255)
    if not fut.done():
        fut.set_result(ExitInfo(code=code, signal=sig, at=time.time()))


def reap_orphans(known: Collection[int] = ()) -> list[int]:
    """Reap zombie children of this process that nobody else will: orphans reparented to us as subreaper.

    Skips ``known`` and every child :func:`watch_exit` is watching. Call it on SIGCHLD or periodically;
    anything else in the daemon that starts a child must either watch it with :func:`watch_exit` or pass
    its pid in ``known``. Returns the pids reaped.
    """
    reaped: list[int] = []
    try:
        children = psutil.Process().children()
    except psutil.Error:  # pragma: no cover - our own /proc entry
        return reaped
    for child in children:
        pid = child.pid
        if pid in known or pid in _owned_children:
            continue
        try:
            if child.status() != psutil.STATUS_ZOMBIE:
                continue
            done, _status = os.waitpid(pid, os.WNOHANG)
        except (psutil.Error, ChildProcessError):
            continue
        if done == pid:
            reaped.append(pid)
    return reaped


ORPHAN_GRACE_SECONDS = 0.5
"""An unclaimed zombie child is reaped only after it stayed one this long: a child someone just started may
exit before its owner has claimed it (``Popen`` returns in a worker thread, then it calls :func:`claim_child`),
and its status is the owner's. Orphans lose nothing by waiting half a second."""

_BUSY_RETRY_SECONDS = (0.01, 0.05, 0.25, 1.0)
"""When the first zombie is one whose owner is about to reap it, look again after these delays."""


class OrphanReaper:
    """Reap orphaned zombie children (we are their subreaper) when SIGCHLD says one died: no periodic scan.

    ``waitid(P_ALL, WEXITED | WNOHANG | WNOWAIT)`` peeks at one zombie child without reaping it; a child
    someone owns (:func:`watch_exit`, :func:`claim_child`) is left to its owner, which reaps it as its pidfd
    turns readable, and we look again shortly after; an unowned one is reaped once it is
    :data:`ORPHAN_GRACE_SECONDS` old. Each sweep costs a syscall per orphan, nothing per agent, and no timer
    runs while there is no zombie. The agents' own exits keep going through their pidfds untouched.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._scheduled = False
        self._timer: asyncio.TimerHandle | None = None
        self._head: tuple[int, float] | None = None
        """The first zombie seen by the last sweep and since when: the grace runs from there."""
        self._busy_rounds = 0
        self._via_loop = False
        self._previous: Any = None
        self.reaped = 0

    def start(self) -> None:
        """Listen for SIGCHLD (main thread only). uvloop refuses a loop handler for SIGCHLD (libuv would use it
        for loop subprocesses, which the daemon never starts), so there a plain ``signal`` handler hands the
        wake-up to the loop; the interpreter runs it when the signal interrupts the loop's wait."""
        try:
            self._loop.add_signal_handler(signal.SIGCHLD, self.poke)
            self._via_loop = True
        except RuntimeError:
            self._previous = signal.signal(signal.SIGCHLD, self._on_signal)
            self._via_loop = False
        self.poke()  # whatever died before we listened

    def _on_signal(self, signum: int, frame: object) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nothing left to reap for
            self._loop.call_soon_threadsafe(self.poke)
        previous = self._previous
        if callable(previous):
            previous(signum, frame)

    def close(self) -> None:
        if self._via_loop:
            with contextlib.suppress(RuntimeError, ValueError):
                self._loop.remove_signal_handler(signal.SIGCHLD)
        elif self._previous is not None or signal.getsignal(signal.SIGCHLD) == self._on_signal:
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(signal.SIGCHLD, self._previous if self._previous is not None else signal.SIG_DFL)
        self._via_loop, self._previous = False, None
        self._cancel_timer()

    def poke(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self.sweep)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _later(self, delay: float) -> None:
        self._cancel_timer()
        self._timer = self._loop.call_later(delay, self.poke)

    def sweep(self) -> list[int]:
        """Reap every unowned zombie that is old enough; returns their pids."""
        self._scheduled = False
        self._cancel_timer()
        reaped: list[int] = []
        while True:
            try:
                peek = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                peek = None  # no children at all
            if peek is None or peek.si_pid == 0:
                self._head, self._busy_rounds = None, 0
                return reaped
            pid = peek.si_pid
            if pid in _owned_children:  # its watcher reaps it; what is behind it waits for the next look
                delay = _BUSY_RETRY_SECONDS[min(self._busy_rounds, len(_BUSY_RETRY_SECONDS) - 1)]
                self._busy_rounds += 1
                self._later(delay)
                return reaped
            self._busy_rounds = 0
            now = time.monotonic()
            if self._head is None or self._head[0] != pid:
                self._head = (pid, now)
            wait = self._head[1] + ORPHAN_GRACE_SECONDS - now
            if wait > 0:
                self._later(wait)
                return reaped
            with contextlib.suppress(ChildProcessError):
                if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG) is not None:
                    reaped.append(pid)
                    self.reaped += 1
            self._head = None


def is_same_process(pid: int, create_time: float | None, tolerance: float = CREATE_TIME_TOLERANCE) -> bool:
    """Whether ``pid`` is still the live process that had ``create_time`` (PID-reuse guard).

    A zombie counts as dead: it has exited, only its status is waiting to be collected. With no recorded
    ``create_time`` (an old record) the pid's liveness is all we can check.
    """
    if pid <= 0:
        return False
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return create_time is None or abs(proc.create_time() - create_time) <= tolerance
    except psutil.Error:
        return False
