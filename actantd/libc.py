"""The C library, loaded once, for the few calls Python does not wrap (prctl, mallopt, malloc_trim)."""

from __future__ import annotations

import ctypes
import functools


@functools.cache
def libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)
