"""Keeping every active agent's log files within their size bound, at no cost while they are quiet.

Agents write their logs themselves (:mod:`.spawn`), so nothing tells the daemon that a file grew except the
file. :class:`LogGuard` looks at each file from a thread of its own, never from the event loop, and how
often it looks depends on what the file does:

- **quiet** (not written since the last look): an inotify ``IN_MODIFY`` watch on the descriptor the guard
  holds, and nothing else. A thousand idle agents cost no wake-up at all.
- **writing**: the first write fires the watch; the guard looks at once (``fstat``, and a rotation if the
  file passed the cap), removes the watch and from then on *polls* the file's size instead of hearing of
  every write. inotify fires per ``write(2)``: measured here, one agent printing 200-byte lines as fast as
  it can kept the guard thread at 55 % of a CPU, 7,000 lines a second at 5 %, 900 a second at 1 %, so
  a watch is only worth keeping on a file that does not write. The poll interval starts at
  :data:`CHECK_MIN_SECONDS` and doubles while the file grows slowly, up to :data:`CHECK_MAX_SECONDS`; it
  is never longer than the time the file would take, at the rate it grew since the last look, to cover a
  quarter of its remaining headroom to the cap (:data:`HEADROOM_SHARE`). So a fast writer is looked at
  every few milliseconds and a slow one ten times a second, and a file that writes faster than it did
  before is seen within one interval, at most :data:`CHECK_MAX_SECONDS` of its new speed.
- a look that finds the file unchanged puts the watch back (then looks once more, so a write in between is
  not missed) and the file is quiet again.

What a file may reach is then the cap plus what its writer gets in during one interval and one rotation;
each backup stays within the cap by construction (:func:`.logs.rotate_if_needed`), and a writer that
outran rotation loses its oldest excess rather than the disk. Where inotify is missing (or out of
watches) a quiet file is polled once a second (:data:`QUIET_POLL_SECONDS`) instead: that fallback costs
one ``fstat`` per file per second, in the guard's thread.

The set of guarded files changes only when an agent starts or stops: the daemon tells the guard with
:meth:`LogGuard.watch` and :meth:`LogGuard.unwatch` (cost: the files named), and :meth:`LogGuard.sync` once
at start-up. A path that names another file than the one guarded (the agent was restarted into a fresh
log) is noticed on the next :meth:`~LogGuard.watch` of it, which the daemon sends on every start; a file
that does not exist yet is tried again, less and less often (:data:`MISSING_RETRY_MAX_SECONDS`), and at once
on its next ``watch``. A log deleted under its writer is truncated through the guard's descriptor whenever
it grows, so its space comes back.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import os
import select
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from actantd import inotify
from actantd.inotify import IN_IGNORED, IN_MODIFY, IN_Q_OVERFLOW, InotifyUnavailable
from actantd.limits import LOG_BACKUPS as DEFAULT_BACKUPS
from actantd.limits import LOG_MAX_BYTES as DEFAULT_MAX_BYTES
from actantd.supervisor.logs import rotate_if_needed

log = logging.getLogger(__name__)

CHECK_MIN_SECONDS = 0.002
"""The first look after a quiet file was written to, and the shortest interval for a fast writer."""
CHECK_MAX_SECONDS = 0.1
"""The longest interval while a file keeps being written: how long a sudden speed-up can go unseen."""
HEADROOM_SHARE = 0.25
"""Look again before the file, growing as fast as it did, has covered this share of its headroom to the cap."""
QUIET_GROWTH = 4
"""After a look that found the file unchanged, the next interval is this many times longer (2, 8, 32, 100 ms,
then back to the watch): a pause is not taken for the end of the writing after one short look."""
QUIET_POLL_SECONDS = 1.0
"""Without inotify: how often a file that is not being written is looked at."""
MISSING_RETRY_MAX_SECONDS = 30.0
"""A file that does not exist yet is tried after 1 s, then twice as long each time, up to this."""
_SLACK_SECONDS = 0.001
"""Looks due this soon are taken in the same round (fewer wake-ups with many writers)."""


def _as_path(path: Path | str) -> Path:
    """``Path(path)`` parses even a Path again; the loop calls this on every start and stop."""
    return path if isinstance(path, Path) else Path(path)


def _open_inotify() -> int:
    """The guard's inotify descriptor, or -1: without one, every file is polled."""
    try:
        return inotify.open_descriptor()
    except InotifyUnavailable as exc:
        log.warning("log guard: no inotify (%s); polling every log once a second", exc.strerror)
        return -1


@dataclass(slots=True, eq=False)
class _Watched:
    path: Path
    fd: int
    wd: int = -1
    """The armed inotify watch, or -1 while the file is polled (or inotify is unavailable)."""
    size: int = 0
    mtime_ns: int = 0
    seen: float = 0.0
    """When ``size`` and ``mtime_ns`` were read (monotonic)."""
    interval: float = CHECK_MIN_SECONDS
    due: float | None = None
    """When the next look is scheduled; None while quiet under a watch."""
    deleted_warned: bool = False


class LogGuard:
    """Keeps every guarded log file within bounds, from a thread of its own (see the module docstring).

    The event loop only calls :meth:`watch`, :meth:`unwatch` or :meth:`sync`, which queue the change and
    wake the thread; every ``fstat``, rotation and truncation happens in the thread.
    """

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES, backups: int = DEFAULT_BACKUPS) -> None:
        self.max_bytes = max_bytes
        self.backups = backups
        self.rotations = 0
        self.truncated_deleted = 0
        self.checks = 0
        """How many times a file was looked at (``fstat``): what the guard costs, for tests and diagnostics."""
        self._lock = threading.Lock()  # the guard thread's state; held through a rotation
        self._queue_lock = threading.Lock()  # the wanted set and the queued changes: never held for long
        self._wanted: set[Path] = set()
        self._changes: list[tuple[Path, bool]] = []
        self._generation = 0
        self._applied = threading.Condition(threading.Lock())
        self._applied_generation = 0
        self._by_path: dict[Path, _Watched] = {}
        self._by_wd: dict[int, _Watched] = {}
        self._timers: list[tuple[float, int, _Watched]] = []
        self._order = itertools.count()
        self._missing: dict[Path, tuple[float, float]] = {}
        """Wanted paths that could not be opened: (when to try again, the current backoff)."""
        self._inotify = _open_inotify()
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="log-guard", daemon=True)
        self._thread.start()

    # -- the caller's side (the event loop): queue and wake, nothing else

    def watch(self, paths: Iterable[Path]) -> None:
        """Guard ``paths`` too; for a path already guarded, check that it still names the guarded file."""
        self._enqueue([(_as_path(p), True) for p in paths])

    def unwatch(self, paths: Iterable[Path]) -> None:
        """Stop guarding ``paths`` (and close the guard's descriptors on them)."""
        self._enqueue([(_as_path(p), False) for p in paths])

    def sync(self, paths: Iterable[Path]) -> None:
        """Guard exactly ``paths`` from now on (files that do not exist yet are tried again later)."""
        wanted = {Path(p) for p in paths}
        with self._queue_lock:
            changes = [(p, True) for p in wanted - self._wanted] + [(p, False) for p in self._wanted - wanted]
        self._enqueue(changes)

    def _enqueue(self, changes: list[tuple[Path, bool]]) -> None:
        if not changes:
            return
        with self._queue_lock:
            for path, add in changes:
                if add:
                    self._wanted.add(path)
                else:
                    self._wanted.discard(path)
            self._changes.extend(changes)
            self._generation += 1
        self._wake()

    @property
    def guarded(self) -> frozenset[Path]:
        with self._lock:
            return frozenset(self._by_path)

    @property
    def quiet(self) -> frozenset[Path]:
        """The guarded files under an armed watch, looked at only when written (tests, diagnostics)."""
        with self._lock:
            return frozenset(w.path for w in self._by_path.values() if w.due is None)

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until the guard thread has applied every change queued so far (tests)."""
        with self._queue_lock:
            target = self._generation
        deadline = time.monotonic() + timeout
        with self._applied:
            while self._applied_generation < target:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._applied.wait(remaining)
        return True

    def close(self) -> None:
        self._stop = True
        self._wake()
        self._thread.join()
        with self._lock:
            for watched in list(self._by_path.values()):
                self._drop(watched)
        for fd in (self._inotify, self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")

    # -- the guard thread

    def _run(self) -> None:
        poller = select.poll()
        if self._inotify >= 0:
            poller.register(self._inotify, select.POLLIN)
        poller.register(self._wake_r, select.POLLIN)
        while not self._stop:
            ready = poller.poll(self._timeout_ms())
            try:
                with self._lock:
                    for fd, _events in ready:
                        if fd == self._wake_r:
                            with contextlib.suppress(OSError):
                                os.read(self._wake_r, 4096)
                            self._apply_changes()
                        elif fd == self._inotify:
                            self._on_events()
                    self._run_due(time.monotonic())
            except Exception:  # the guard must outlive any one bad file
                log.exception("log guard round failed")

    def _timeout_ms(self) -> int:
        """Until the next scheduled look or retry; -1 (wait for an event) when there is none."""
        with self._lock:
            due = [self._timers[0][0]] if self._timers else []
            due.extend(at for at, _backoff in self._missing.values())
        if not due:
            return -1
        return max(0, int((min(due) - time.monotonic()) * 1000) + 1)

    def _apply_changes(self) -> None:
        with self._queue_lock:
            changes, self._changes = self._changes, []
            generation = self._generation
        for path, add in changes:
            watched = self._by_path.get(path)
            if not add:
                self._missing.pop(path, None)
                if watched is not None:
                    self._drop(watched)
            elif watched is None:
                self._missing.pop(path, None)
                self._add(path)
            else:
                self._reopen_if_replaced(watched)
        with self._applied:
            self._applied_generation = generation
            self._applied.notify_all()

    def _on_events(self) -> None:
        """Each file written since its watch was armed is looked at now and polled from then on."""
        hits: dict[int, int] = {}
        overflow = False
        for wd, mask, _name in inotify.read_events(self._inotify):
            if mask & IN_Q_OVERFLOW:
                overflow = True
            else:
                hits[wd] = hits.get(wd, 0) | mask
        if overflow:  # events were lost: look at every quiet file
            for wd in self._by_wd:
                hits[wd] = hits.get(wd, 0) | IN_MODIFY
        for wd, mask in hits.items():
            watched = self._by_wd.get(wd)
            if watched is None:
                continue  # a watch we removed ourselves (its IN_IGNORED), or a file no longer guarded
            if mask & IN_IGNORED:  # the kernel dropped the watch: poll the file instead of losing it
                self._by_wd.pop(wd, None)
                watched.wd = -1
            self._written(watched)

    def _run_due(self, now: float) -> None:
        """Take every look due by now (what they schedule waits for the next round, after new events)."""
        due_now: list[_Watched] = []
        while self._timers and self._timers[0][0] <= now + _SLACK_SECONDS:
            due, _order, watched = heapq.heappop(self._timers)
            if watched.due == due and self._by_path.get(watched.path) is watched:  # else rescheduled or dropped
                watched.due = None
                due_now.append(watched)
        for watched in due_now:
            self._look(watched)
        for path, (at, backoff) in list(self._missing.items()):
            if at <= now:
                del self._missing[path]
                self._add(path, backoff)

    # -- one file (called with _lock held)

    def _add(self, path: Path, backoff: float = 0.0) -> None:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            backoff = min(max(1.0, 2 * backoff), MISSING_RETRY_MAX_SECONDS)
            self._missing[path] = (time.monotonic() + backoff, backoff)
            return
        watched = _Watched(path, fd)
        self._by_path[path] = watched
        self._check(watched)
        self._settle(watched, time.monotonic())

    def _drop(self, watched: _Watched) -> None:
        self._by_path.pop(watched.path, None)
        self._disarm(watched)
        watched.due = None
        with contextlib.suppress(OSError):
            os.close(watched.fd)

    def _arm(self, watched: _Watched) -> bool:
        if watched.wd >= 0:
            return True
        if self._inotify < 0:
            return False
        wd = inotify.add_watch(self._inotify, f"/proc/self/fd/{watched.fd}".encode(), IN_MODIFY)
        if wd < 0 or wd in self._by_wd:  # out of watches, or the same inode under two paths: poll this one
            return False
        watched.wd = wd
        self._by_wd[wd] = watched
        return True

    def _disarm(self, watched: _Watched) -> None:
        if watched.wd >= 0:
            self._by_wd.pop(watched.wd, None)
            inotify.rm_watch(self._inotify, watched.wd)
            watched.wd = -1

    def _schedule(self, watched: _Watched, at: float) -> None:
        watched.due = at
        heapq.heappush(self._timers, (at, next(self._order), watched))

    def _written(self, watched: _Watched) -> None:
        """Its watch fired: look now, then poll it from the shortest interval up (counted from the end of this
        look: a rotation may take a while, and a look right after it would see no change yet)."""
        self._disarm(watched)
        self._check(watched)
        watched.interval = CHECK_MIN_SECONDS
        self._schedule(watched, time.monotonic() + CHECK_MIN_SECONDS)

    def _look(self, watched: _Watched) -> None:
        """A scheduled look at a polled file: go on polling while it grows; once it has not changed for a
        whole :data:`CHECK_MAX_SECONDS` (a writer that pauses between bursts stays polled), back to quiet."""
        seen, rotations = watched.seen, self.rotations
        grew = self._check(watched)
        now = time.monotonic()
        if watched.size >= self.max_bytes:
            # Rotated and still over: the writer outran the rotation, go again at once. Not rotated (the path
            # names another file now): look now and then, without spinning.
            watched.interval = CHECK_MIN_SECONDS if self.rotations != rotations else CHECK_MAX_SECONDS
            self._schedule(watched, now if self.rotations != rotations else now + CHECK_MAX_SECONDS)
        elif grew is None:
            # Unchanged over one interval: look again after a longer one (a writer may only have paused), and
            # go back to the watch only once the file stayed unchanged for a whole CHECK_MAX_SECONDS.
            if watched.interval >= CHECK_MAX_SECONDS:
                self._settle(watched, now)
            else:
                watched.interval = min(QUIET_GROWTH * watched.interval, CHECK_MAX_SECONDS)
                self._schedule(watched, now + watched.interval)
        else:
            rate = grew / max(watched.seen - seen, 1e-6)
            interval = min(2 * watched.interval, CHECK_MAX_SECONDS)
            if rate > 0:
                interval = min(interval, HEADROOM_SHARE * (self.max_bytes - watched.size) / rate)
            watched.interval = max(interval, CHECK_MIN_SECONDS)
            self._schedule(watched, now + watched.interval)

    def _settle(self, watched: _Watched, now: float) -> None:
        """The file did not change since its last look: arm its watch, then look once more, so a write that
        came in between is not missed. Without a watch it is polled at the quiet interval."""
        if not self._arm(watched):
            watched.interval = QUIET_POLL_SECONDS
            self._schedule(watched, now + QUIET_POLL_SECONDS)
        else:
            rotations = self.rotations
            if self._check(watched) is not None or self.rotations != rotations:
                self._written(watched)

    def _check(self, watched: _Watched) -> int | None:
        """One ``fstat``; rotate or, for a deleted file, truncate. Returns None when the file did not change
        since the previous look (size and modification time), else how many bytes it grew."""
        self.checks += 1
        try:
            st = os.fstat(watched.fd)
        except OSError as exc:
            log.debug("log guard: %s: %s", watched.path, exc)
            return None
        grew: int | None = None
        if (st.st_size, st.st_mtime_ns) != (watched.size, watched.mtime_ns):
            grew = st.st_size - watched.size if st.st_size >= watched.size else st.st_size
        try:
            if st.st_nlink == 0:
                if st.st_size > 0:
                    os.ftruncate(watched.fd, 0)
                    self.truncated_deleted += 1
                    if not watched.deleted_warned:
                        watched.deleted_warned = True
                        log.warning(
                            "%s was deleted while its agent writes to it; discarding that output (restart the "
                            "agent to log again)",
                            watched.path,
                        )
                    st = os.fstat(watched.fd)
            elif st.st_size >= self.max_bytes:
                current = os.stat(watched.path)
                # A path that names another file now is moved to on the next watch() of it.
                if (current.st_dev, current.st_ino) == (st.st_dev, st.st_ino) and rotate_if_needed(
                    watched.path, self.max_bytes, self.backups
                ):
                    self.rotations += 1
                    st = os.fstat(watched.fd)
        except OSError as exc:
            log.debug("log guard: %s: %s", watched.path, exc)
        watched.size, watched.mtime_ns, watched.seen = st.st_size, st.st_mtime_ns, time.monotonic()
        return grew

    def _reopen_if_replaced(self, watched: _Watched) -> None:
        """The path names a new file (the agent was restarted into a fresh log): guard that one instead.

        A path that names nothing is left alone: the agent may still write to the deleted file, which the
        guard keeps truncating through its descriptor."""
        try:
            current = os.stat(watched.path)
            st = os.fstat(watched.fd)
        except OSError:
            return
        if (current.st_dev, current.st_ino) != (st.st_dev, st.st_ino):
            path = watched.path
            self._drop(watched)
            self._add(path)
