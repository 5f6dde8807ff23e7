"""Which event loop the daemon runs on, and keeping OpenSSL out of a daemon that never speaks TLS.

``ACTANT_EVENT_LOOP`` picks it: ``asyncio`` (the default) is the standard library's loop with the ``ssl``
module never imported; ``uvloop`` is libuv's loop, which imports ``ssl`` unconditionally.

Why the standard loop is the default: the daemon only serves a Unix socket and watches pidfds, so it never
uses TLS, yet importing ``ssl`` maps OpenSSL (``libcrypto``, ``libssl``) and builds its module state, about
4.4 MiB of the daemon's RSS on this platform, and uvloop itself is another 1.2 MiB. That was most of the gap
to supervisord's footprint, while the standard loop still meets every latency and throughput target of the
benchmarks (the README's Benchmarks section has both loops' figures). uvloop stays available for whoever
prefers its throughput to the memory.

How ``ssl`` is kept out: :func:`refuse_ssl` makes ``import ssl`` fail with :class:`ImportError`, the same way
it fails on a Python built without OpenSSL, which asyncio supports (it checks ``ssl is None`` before any TLS
work and raises a clear error if a caller asks for TLS). No stand-in module is installed: code that really
needs TLS gets the ImportError, not a fake. This module imports only the standard library's ``os`` and
``sys`` at the top, so the entry point can call :func:`refuse_ssl` before anything imports asyncio.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Coroutine, Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import Any

LOOP_ENV = "ACTANT_EVENT_LOOP"
LOOPS = ("asyncio", "uvloop")
DEFAULT_LOOP = "asyncio"
REFUSED = ("ssl", "_ssl")


class UnknownLoop(ValueError):
    """``ACTANT_EVENT_LOOP`` names no loop we know."""


def chosen_loop(environ: dict[str, str] | os._Environ[str] = os.environ) -> str:
    name = environ.get(LOOP_ENV, "").strip().lower() or DEFAULT_LOOP
    if name not in LOOPS:
        raise UnknownLoop(f"{LOOP_ENV}={name!r}: choose one of {', '.join(LOOPS)}")
    return name


class _RefuseSsl:
    """Fails ``import ssl`` (and ``_ssl``) with an ImportError that says why, before any other finder looks."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname in REFUSED:
            raise ImportError(
                f"actantd runs without TLS support ({LOOP_ENV}=asyncio keeps OpenSSL out of the daemon); "
                f"set {LOOP_ENV}=uvloop for a daemon with the ssl module",
                name=fullname,
            )
        return None


def refuse_ssl() -> None:
    """From now on ``import ssl`` raises ImportError in this process. Call before asyncio is imported: a
    module that already imported ``ssl`` keeps it (and then the memory is spent anyway)."""
    if not any(isinstance(f, _RefuseSsl) for f in sys.meta_path):
        sys.meta_path.insert(0, _RefuseSsl())


def run(main: Coroutine[Any, Any, int], loop: str) -> int:
    """Run ``main`` to completion on a new event loop of the given kind."""
    if loop == "uvloop":
        import uvloop

        code: int = uvloop.run(main)
        return code
    import asyncio

    return asyncio.run(main)
