"""Shared fixtures. The autouse ``no_leftover_processes`` fails any test that leaves a descendant alive.

Layout: one folder per package of the code (``config/``, ``instances/``, ``supervisor/``, ``rpc/``, ``cli/``,
``daemon/`` for the daemon's top-level modules), plus ``e2e/`` (the CLI against a daemon) and ``soak/``; test
files are named by subject. Shared helpers are in ``helpers.py``, the two kinds of daemon in ``harness.py``:
``daemon`` is the real daemon in-process (a thread of pytest, real socket), ``daemon_process`` a real
``actantd`` subprocess for tests that kill, signal or restart it.

pytest marks itself a child subreaper, so even a double-forked, setsid'd grandchild of something a test
started is reparented here and shows up in ``children(recursive=True)``.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

PR_SET_CHILD_SUBREAPER = 36


def _become_subreaper() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


_become_subreaper()


def _reap_zombies() -> None:
    for child in psutil.Process().children():
        with contextlib.suppress(psutil.Error, ChildProcessError, OSError):
            if child.status() == psutil.STATUS_ZOMBIE:
                os.waitpid(child.pid, os.WNOHANG)


def _alive_descendants(before: set[int]) -> list[psutil.Process]:
    out = []
    for proc in psutil.Process().children(recursive=True):
        try:
            if proc.pid in before or proc.status() == psutil.STATUS_ZOMBIE:
                continue
            out.append(proc)
        except psutil.Error:
            continue
    return out


@pytest.fixture(autouse=True)
def no_leftover_processes() -> Iterator[None]:
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    yield
    deadline = time.monotonic() + 5.0
    left = _alive_descendants(before)
    while left and time.monotonic() < deadline:
        # Give processes that are already exiting a moment; psutil.wait_procs blocks on their exit, not a timer.
        psutil.wait_procs(left, timeout=0.2)
        _reap_zombies()
        left = _alive_descendants(before)
    _reap_zombies()
    if left:
        desc = []
        for proc in left:
            with contextlib.suppress(psutil.Error):
                desc.append(f"{proc.pid} {' '.join(proc.cmdline())[:120]}")
            with contextlib.suppress(psutil.Error):
                proc.kill()
        psutil.wait_procs(left, timeout=2)
        _reap_zombies()
        pytest.fail("test left processes behind:\n  " + "\n  ".join(desc))


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A temp dir with a short path: AF_UNIX socket paths are limited to 107 bytes."""
    path = Path(tempfile.mkdtemp(prefix="act-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def daemon(short_tmp: Path) -> Iterator[object]:
    """The real daemon in-process (a thread of pytest) on a real socket, with the bundled configs plus the test
    templates of ``tests/harness.py``: for every test that does not need the daemon to be a process of its own."""
    from tests.harness import in_process_daemon

    with in_process_daemon(short_tmp) as d:
        yield d


@pytest.fixture
def daemon_process(short_tmp: Path) -> Iterator[object]:
    """A real ``actantd`` subprocess, same configs: for tests that kill, signal or restart the daemon, check
    its exit, or need its agents to be another process's children (crash, signal, re-adoption)."""
    from tests.harness import running_daemon

    with running_daemon(short_tmp) as d:
        yield d
