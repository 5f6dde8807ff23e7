"""Crash-safe file writes, shared by the instance store, the materializers and config migrations.

Stdlib only and at the bottom of the layering, so every writer of durable files uses the same sequence:
a hidden temp file in the same directory (same filesystem, so the rename is atomic; hidden, so the config
watcher and the instance scan ignore it), fsync, ``os.replace``, fsync of the directory. A reader sees the
old file or the new one, never half of one, whatever moment the process is killed.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path

TEMP_MARK = ".tmp-"


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
    tmp = temp_name(path)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


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
