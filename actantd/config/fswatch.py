"""Changes under a folder tree, as debounced batches of paths: inotify on the event loop, polling elsewhere.

This replaced the ``watchfiles`` package. The daemon only needs "something under the configs folder changed,
roughly here", and watchfiles brought a Rust extension, ``anyio`` and (through ``watchfiles.run``)
``multiprocessing``, about 1.5 MiB of the daemon's RSS before it watched anything. Here it is one inotify
descriptor read by the loop's own ``add_reader`` (the ``ctypes`` calls are in ``actantd/inotify.py``,
shared with the log guard).

- **Recursive, new folders included.** Every directory of the tree gets a watch, except those the loader
  skips (hidden and editor-temp names, :func:`actantd.config.files.is_ignored_name`). A folder created or moved
  in gets its watches at once, and everything already inside it is reported (a file written into a brand-new
  folder can beat the watch on it). A folder moved away or deleted loses its watches and is reported itself:
  one event hides every config it held, and reloads rescan the whole tree anyway.
- **Editors that save by rename** (write ``x.tmp``, rename over ``x.json``) produce ``IN_MOVED_TO`` for the
  config's name, which is reported like a write.
- **Overflow** of the kernel queue reports the root (a full rescan) and re-walks the watches.
- **Debounced like before:** a batch is yielded once nothing changed for ``step_ms``, or ``debounce_ms``
  after its first change at most.
- **Fallback.** Where inotify cannot be had (no syscall, the per-user instance or watch limit reached), the
  tree's ``(mtime, size, inode)`` snapshot is compared every :data:`POLL_SECONDS`; slower to notice, same
  batches.

The root itself disappearing (deleted, renamed, unmounted) ends the watch with :class:`RootGone` after
reporting it, so the caller can retry until the folder is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import logging
import os
import time
from collections.abc import AsyncGenerator
from pathlib import Path

from actantd import inotify
from actantd.config.files import is_ignored_name
from actantd.inotify import (
    IN_ATTRIB,
    IN_CLOSE_WRITE,
    IN_CREATE,
    IN_DELETE,
    IN_DELETE_SELF,
    IN_IGNORED,
    IN_ISDIR,
    IN_MODIFY,
    IN_MOVE_SELF,
    IN_MOVED_FROM,
    IN_MOVED_TO,
    IN_ONLYDIR,
    IN_Q_OVERFLOW,
    IN_UNMOUNT,
    InotifyUnavailable,
)

log = logging.getLogger(__name__)

POLL_SECONDS = 1.0

WATCH_MASK = (
    IN_MODIFY
    | IN_ATTRIB
    | IN_CLOSE_WRITE
    | IN_MOVED_FROM
    | IN_MOVED_TO
    | IN_CREATE
    | IN_DELETE
    | IN_DELETE_SELF
    | IN_MOVE_SELF
    | IN_ONLYDIR
)


class RootGone(OSError):
    """The watched folder itself was deleted, moved or unmounted."""


def _walk_dirs(top: Path) -> list[Path]:
    """``top`` and every directory below it the loader would read (symlinked folders are not followed)."""
    found = [top]
    for root, dirs, _files in os.walk(top):
        dirs[:] = [d for d in dirs if not is_ignored_name(d)]
        found.extend(Path(root) / d for d in dirs)
    return found


def _walk_all(top: Path) -> set[Path]:
    """Every path under ``top`` that the loader would look at (for a folder that just appeared)."""
    found: set[Path] = set()
    for root, dirs, files in os.walk(top):
        dirs[:] = [d for d in dirs if not is_ignored_name(d)]
        found.update(Path(root) / name for name in (*dirs, *files))
    return found


class Inotify:
    """One inotify descriptor watching every directory of a tree; :meth:`read` turns events into paths."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.fd = inotify.open_descriptor()
        self._dirs: dict[int, Path] = {}
        self._wds: dict[Path, int] = {}
        try:
            self._root_wd = self._watch(root, strict=True)
            for directory in _walk_dirs(root)[1:]:
                self._watch(directory)
        except BaseException:
            self.close()
            raise

    def fileno(self) -> int:
        return self.fd

    @property
    def watched(self) -> int:
        return len(self._wds)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def _watch(self, directory: Path, *, strict: bool = False) -> int:
        wd = inotify.add_watch(self.fd, os.fsencode(directory), WATCH_MASK)
        if wd < 0:
            err = ctypes.get_errno()
            if err == errno.ENOSPC:  # fs.inotify.max_user_watches reached
                raise InotifyUnavailable(err, f"inotify watch limit reached at {directory}")
            if strict:
                raise OSError(err, os.strerror(err), str(directory))
            return -1  # vanished or unreadable meanwhile: its parent's event already reported it
        old = self._dirs.get(wd)
        if old is not None and old != directory:  # the same inode seen under a new name (a moved folder)
            self._wds.pop(old, None)
        self._dirs[wd] = directory
        self._wds[directory] = wd
        return wd

    def _forget_tree(self, directory: Path) -> None:
        """Drop the watches of a folder moved away or deleted, and of everything that was below it."""
        for path in [p for p in self._wds if p == directory or directory in p.parents]:
            wd = self._wds.pop(path)
            if self._dirs.get(wd) == path:
                del self._dirs[wd]
                with contextlib.suppress(OSError):
                    inotify.rm_watch(self.fd, wd)  # already gone for a deleted folder: the kernel dropped it

    def _add_tree(self, directory: Path) -> set[Path]:
        """Watch a folder that appeared (created, or moved in) and everything below it; report its contents."""
        for path in _walk_dirs(directory):
            self._watch(path)
        return _walk_all(directory)

    def read(self) -> set[Path]:
        """Every path the pending events name (nothing if none are pending). Raises :class:`RootGone` after
        the root went away, :class:`InotifyUnavailable` if the watch limit stops a new folder's watch."""
        changed: set[Path] = set()
        gone = False
        for wd, mask, name in inotify.read_events(self.fd):
            gone |= self._event(wd, mask, os.fsdecode(name), changed)
        if gone:
            raise RootGone(errno.ENOENT, "the watched folder went away", str(self.root))
        return changed

    def _event(self, wd: int, mask: int, name: str, changed: set[Path]) -> bool:
        """Record one event's paths in ``changed``; True when it says the root is gone."""
        if mask & IN_Q_OVERFLOW:
            changed.add(self.root)
            for found in _walk_dirs(self.root):
                self._watch(found)
            return False
        directory = self._dirs.get(wd)
        if directory is None:
            return False  # a watch already forgotten (events queued before we dropped it)
        if mask & IN_IGNORED:
            if self._wds.get(directory) == wd:
                del self._wds[directory]
            del self._dirs[wd]
            return wd == self._root_wd
        if mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_UNMOUNT):
            changed.add(directory)
            return wd == self._root_wd
        path = directory / name if name else directory
        changed.add(path)
        if mask & IN_ISDIR and name and not is_ignored_name(name):
            if mask & (IN_CREATE | IN_MOVED_TO):
                changed |= self._add_tree(path)
            elif mask & (IN_MOVED_FROM | IN_DELETE):
                self._forget_tree(path)
        return False


class Poller:
    """The fallback: compare ``(mtime, size, inode)`` of everything in the tree with the previous look."""

    def __init__(self, root: Path) -> None:
        self.root = root
        os.stat(root)  # raises for a missing folder, as inotify would
        self._seen = self._snapshot()

    def _snapshot(self) -> dict[Path, tuple[int, int, int]]:
        seen: dict[Path, tuple[int, int, int]] = {}
        for path in (self.root, *_walk_all(self.root)):
            with contextlib.suppress(OSError):
                st = os.stat(path)
                seen[path] = (st.st_mtime_ns, st.st_size, st.st_ino)
        return seen

    def read(self) -> set[Path]:
        if not os.path.isdir(self.root):
            raise RootGone(errno.ENOENT, "the watched folder went away", str(self.root))
        now = self._snapshot()
        before, self._seen = self._seen, now
        return {p for p in before.keys() | now.keys() if before.get(p) != now.get(p)}


async def watch_tree(
    root: Path,
    stop: asyncio.Event,
    *,
    debounce_ms: int = 1600,
    step_ms: int = 50,
    poll_seconds: float = POLL_SECONDS,
    force_polling: bool = False,
) -> AsyncGenerator[set[Path], None]:
    """Yield batches of changed paths under ``root`` until ``stop`` is set.

    Raises OSError when ``root`` cannot be watched (missing, not a folder) and :class:`RootGone` once it
    disappears (after yielding that batch).
    """
    loop = asyncio.get_running_loop()
    pending: set[Path] = set()
    wake = asyncio.Event()
    failure: list[BaseException] = []
    source: Inotify | Poller
    inotify: Inotify | None = None
    if not force_polling:
        try:
            inotify = Inotify(root)
        except InotifyUnavailable as exc:
            log.warning("inotify unavailable for %s (%s); polling every %.1f s", root, exc, poll_seconds)
    source = inotify if inotify is not None else Poller(root)

    def on_readable() -> None:
        assert inotify is not None
        try:
            pending.update(inotify.read())
        except OSError as exc:  # RootGone, or the watch limit reached on a new folder
            failure.append(exc)
            loop.remove_reader(inotify.fd)
        wake.set()

    async def poll() -> None:
        while True:
            await asyncio.sleep(poll_seconds)
            try:
                found = source.read()
            except OSError as exc:
                failure.append(exc)
                wake.set()
                return
            if found:
                pending.update(found)
                wake.set()

    poller = None
    if inotify is not None:
        loop.add_reader(inotify.fd, on_readable)
    else:
        poller = loop.create_task(poll())
    stopping = loop.create_task(stop.wait())
    try:
        while not stop.is_set():
            waiter = loop.create_task(wake.wait())
            await asyncio.wait({waiter, stopping}, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            if stop.is_set():
                return
            # Debounce: gather until quiet for step_ms, or debounce_ms after the first change.
            deadline = time.monotonic() + debounce_ms / 1000
            while not failure and not stop.is_set():
                wake.clear()
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), min(step_ms / 1000, left))
                    continue
                break
            wake.clear()
            batch, pending = set(pending), set()
            if batch:
                yield batch
            if failure:
                if isinstance(failure[0], InotifyUnavailable) and inotify is not None:
                    # A new folder could not get its watch: carry on by polling rather than miss changes.
                    log.warning("%s; polling %s every %.1f s from now on", failure[0], root, poll_seconds)
                    loop.remove_reader(inotify.fd)
                    inotify.close()
                    inotify = None
                    failure.clear()
                    source = Poller(root)
                    poller = loop.create_task(poll())
                    continue
                raise failure[0]
    finally:
        stopping.cancel()
        if poller is not None:
            poller.cancel()
        if inotify is not None:
            with contextlib.suppress(Exception):
                loop.remove_reader(inotify.fd)
            inotify.close()
