"""The kernel's inotify through ``ctypes``: the three calls, the flag bits and the event records.

Python's standard library has no inotify binding, and both users want only a descriptor they can poll: the
config watcher (``config/fswatch.py``, on the event loop) and the log guard (``supervisor/log_guard.py``, in
its own thread). This module is the one place that knows the C signatures and the record layout.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import struct
from collections.abc import Callable, Iterator
from typing import Any

from actantd.libc import libc

IN_MODIFY = 0x2
IN_ATTRIB = 0x4
IN_CLOSE_WRITE = 0x8
IN_MOVED_FROM = 0x40
IN_MOVED_TO = 0x80
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_DELETE_SELF = 0x400
IN_MOVE_SELF = 0x800
IN_UNMOUNT = 0x2000
IN_Q_OVERFLOW = 0x4000
IN_IGNORED = 0x8000
IN_ONLYDIR = 0x01000000
IN_ISDIR = 0x40000000

EVENT = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len (then len bytes of name)
READ_SIZE = 64 * 1024


class InotifyUnavailable(OSError):
    """No inotify here (no such call, or a kernel limit reached): the caller polls instead."""


_ARGTYPES: dict[str, list[Any]] = {
    "inotify_init1": [ctypes.c_int],
    "inotify_add_watch": [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32],
    "inotify_rm_watch": [ctypes.c_int, ctypes.c_int],
}


@functools.cache
def _function(name: str) -> Callable[..., int]:
    try:
        function = getattr(libc(), name)
    except AttributeError as exc:  # a C library without inotify (not Linux)
        raise InotifyUnavailable(errno.ENOSYS, f"no {name} in this C library") from exc
    function.argtypes, function.restype = _ARGTYPES[name], ctypes.c_int
    return function  # type: ignore[no-any-return]


def open_descriptor() -> int:
    """A new non-blocking, close-on-exec inotify descriptor."""
    fd: int = _function("inotify_init1")(os.O_NONBLOCK | os.O_CLOEXEC)
    if fd < 0:
        err = ctypes.get_errno()
        raise InotifyUnavailable(err, f"inotify_init1: {os.strerror(err)}")
    return fd


def add_watch(fd: int, path: bytes, mask: int) -> int:
    """The watch descriptor for ``path``, or -1 with ``ctypes.get_errno()`` telling why."""
    wd: int = _function("inotify_add_watch")(fd, path, mask)
    return wd


def rm_watch(fd: int, wd: int) -> None:
    _function("inotify_rm_watch")(fd, wd)


def read_events(fd: int) -> Iterator[tuple[int, int, bytes]]:
    """``(wd, mask, name)`` of every pending event, until the non-blocking descriptor is drained."""
    while True:
        try:
            data = os.read(fd, READ_SIZE)
        except BlockingIOError:
            return
        offset = 0
        while offset + EVENT.size <= len(data):
            wd, mask, _cookie, size = EVENT.unpack_from(data, offset)
            name = data[offset + EVENT.size : offset + EVENT.size + size].split(b"\0", 1)[0]
            offset += EVENT.size + size
            yield wd, mask, name
