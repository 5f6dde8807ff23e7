"""Crash-safe file writes, shared by the instance store, the materializers and config migrations.

Stdlib only and at the bottom of the layering, so every writer of durable files uses the same sequence:
a hidden temp file in the same directory (same filesystem, so the rename is atomic; hidden, so the config
watcher and the instance scan ignore it), fsync, ``os.replace``, fsync of the directory. A reader sees the
old file or the new one, never half of one, whatever moment the process is killed.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import os
import uuid
from collections.abc import Sequence
from pathlib import Path

TEMP_MARK = ".tmp-"

SYNCFS_MIN = 4
"""From this many files in one :func:`atomic_write_many` batch, each durability step is one ``syncfs`` per
filesystem instead of one fsync per file (and one per directory). Below it, plain fsyncs: ``syncfs`` also
flushes whatever else is dirty on that filesystem (agents' logs live there), a price worth paying only when
it replaces several fsyncs."""


def fsync_dir(path: str | os.PathLike[str]) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temp_name(path: Path) -> Path:
    """``.<name>.tmp-<random>`` beside ``path``; :func:`is_temp_of` recognizes leftovers after a crash."""
    return path.with_name(f".{path.name}{TEMP_MARK}{uuid.uuid4().hex[:8]}")


def is_temp_of(candidate: str, name: str) -> bool:
    return candidate.startswith(f".{name}{TEMP_MARK}")


def atomic_write(path: str | os.PathLike[str], data: bytes, *, mode: int | None = None) -> None:
    """Replace ``path`` with ``data`` atomically and durably; raises OSError with the old file intact.

    ``mode`` defaults to the existing file's permissions, else 0644.
    """
    path = Path(path)
    if mode is None:
        try:
            mode = os.stat(path).st_mode & 0o7777
        except FileNotFoundError:
            mode = 0o644
    error = atomic_write_many([(path, data, mode)])[0]  # one item: fsync the file, rename, fsync the dir
    if error is not None:
        raise error


@functools.cache
def _libc_syncfs() -> ctypes._NamedFuncPointer | None:
    try:
        return ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None


def syncfs(fd: int) -> None:
    """Make everything written on ``fd``'s filesystem durable (``syncfs(2)``, which Python 3.11 does not wrap)."""
    call = _libc_syncfs()
    if call is None:
        raise OSError(errno.ENOSYS, "syncfs is not available")
    if call(fd) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"syncfs: {os.strerror(err)}")


def atomic_write_many(items: Sequence[tuple[Path, bytes, int]]) -> list[OSError | None]:
    """:func:`atomic_write` for a batch of ``(path, data, mode)``, with the durability steps shared.

    The same guarantee per file (the old content or the new, never half; the new only once durable), in the
    same order, but batched: every temp file is written, then all are made durable together, then all are
    renamed, then all renames are made durable together. With :data:`SYNCFS_MIN` files or more (and
    ``syncfs`` available) each "together" is one ``syncfs`` per filesystem the batch touches; otherwise one
    fsync per temp file and per directory. Returns one entry per item: None when it is written, else the
    error, with that file's old content intact (a failure of one file never fails the others, except a
    failed shared sync, which fails every file it covered).
    """
    results: list[OSError | None] = [None] * len(items)
    shared = len(items) >= SYNCFS_MIN and _libc_syncfs() is not None
    temps: dict[int, tuple[Path, int]] = {}
    """item index → (temp path, open fd while the first sync is pending, else -1)."""
    try:
        for i, (path, data, mode) in enumerate(items):
            tmp = temp_name(path)
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
            except OSError as exc:
                results[i] = exc
                continue
            temps[i] = (tmp, fd)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                if not shared:
                    os.fsync(fd)
            except OSError as exc:
                results[i] = exc
        if shared:
            _sync_each_device({i: fd for i, (_, fd) in temps.items() if results[i] is None}, results)
        for i, (tmp, fd) in list(temps.items()):
            os.close(fd)
            temps[i] = (tmp, -1)
        renamed: list[int] = []
        for i, (tmp, _) in temps.items():
            if results[i] is None:
                try:
                    os.replace(tmp, items[i][0])
                except OSError as exc:
                    results[i] = exc
                else:
                    renamed.append(i)
        for i in renamed:
            temps.pop(i)
        _sync_renames(items, renamed, results, shared)
    finally:
        for tmp, fd in temps.values():  # failed or interrupted before its rename: the old file stays
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    return results


def _sync_each_device(fds: dict[int, int], results: list[OSError | None]) -> None:
    """One ``syncfs`` per filesystem among ``fds`` (item index → open fd); a failure fails its items."""
    by_dev: dict[int, list[int]] = {}
    for i, fd in fds.items():
        try:
            by_dev.setdefault(os.fstat(fd).st_dev, []).append(i)
        except OSError as exc:
            results[i] = exc
    for indices in by_dev.values():
        try:
            syncfs(fds[indices[0]])
        except OSError as exc:
            for i in indices:
                results[i] = exc


def _sync_renames(
    items: Sequence[tuple[Path, bytes, int]], renamed: list[int], results: list[OSError | None], shared: bool
) -> None:
    """Make the renames durable: one ``syncfs`` per filesystem, or an fsync of each directory."""
    if not shared:
        for i in renamed:
            try:
                fsync_dir(items[i][0].parent)
            except OSError as exc:
                results[i] = exc
        return
    by_dev: dict[int, list[int]] = {}
    dirs: dict[int, Path] = {}
    for i in renamed:
        parent = items[i][0].parent
        try:
            dev = os.stat(parent).st_dev
        except OSError as exc:
            results[i] = exc
            continue
        by_dev.setdefault(dev, []).append(i)
        dirs.setdefault(dev, parent)
    for dev, indices in by_dev.items():
        try:
            fd = os.open(dirs[dev], os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                syncfs(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            for i in indices:
                results[i] = exc


def remove_inside(root: Path, rel: str) -> bool:
    """Remove one file Actant wrote under ``root`` (the entry itself: a symlink is unlinked, never followed)
    and the directories it leaves empty (``.claude/skills/x/``), never anything outside ``root``. The one
    removal of materialized files, for sync (a file that left the plan) and destroy alike. True when a file
    was removed."""
    real_root = root.resolve()
    candidate = root / rel
    parent = candidate.parent.resolve()
    if parent != real_root and real_root not in parent.parents:
        return False
    try:
        os.unlink(parent / candidate.name)
    except (FileNotFoundError, IsADirectoryError, PermissionError, NotADirectoryError):
        return False
    while parent != real_root and real_root in parent.parents:
        try:
            parent.rmdir()
        except OSError:
            break
        parent = parent.parent
    return True
