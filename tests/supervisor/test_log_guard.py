"""What the log guard costs and how it follows its files (issue #13: nothing periodic per agent).

A quiet file costs nothing (an inotify watch, no look); a file being written is polled, not looked at per
write; the guarded set changes by the files named (``watch``/``unwatch``), and a replaced or late file is
picked up on its next ``watch``. The size bounds themselves are in ``test_log_bounds.py``.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from actantd import inotify
from actantd.supervisor import log_guard
from actantd.supervisor.log_guard import LogGuard

MIB = 1024 * 1024


def _wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll with a deadline, for a state of the guard thread that nothing announces."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def _append(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def test_quiet_files_are_never_looked_at(tmp_path: Path) -> None:
    logs = [tmp_path / f"agent-{i}.log" for i in range(200)]
    for path in logs:
        path.write_bytes(b"started\n")
    guard = LogGuard(1 * MIB, 3)
    try:
        guard.sync(logs)
        assert guard.wait_idle()
        _wait_until(lambda: guard.quiet == frozenset(logs))
        before = guard.checks
        time.sleep(0.5)  # asserting that nothing happens: there is no event to wait for
        assert guard.checks == before, "the guard looked at quiet files on a timer"
        _append(logs[7], b"x" * (2 * MIB))  # the first write is heard at once and rotated
        _wait_until(lambda: guard.rotations == 1, timeout=5)
        assert logs[7].stat().st_size < MIB
        _wait_until(lambda: guard.quiet == frozenset(logs))  # and it goes quiet again
    finally:
        guard.close()


def test_a_steady_writer_is_polled_not_looked_at_per_write(tmp_path: Path) -> None:
    """inotify fires per write(2): following each one cost the guard thread a large share of a CPU for an agent
    that prints fast. Polled at an interval bounded by the headroom, it costs a few looks per second."""
    log = tmp_path / "stdout.log"
    log.touch()
    writes = 20_000
    code = (
        "import os,time\n"
        f"fd = os.open({str(log)!r}, os.O_WRONLY | os.O_APPEND)\n"
        f"for i in range({writes}):\n"
        "    os.write(fd, b'%0199d\\n' % i)\n"
        "    if i % 100 == 99: time.sleep(0.005)\n"
    )
    guard = LogGuard(64 * MIB, 3)
    try:
        guard.sync([log])
        assert guard.wait_idle()
        _wait_until(lambda: log in guard.quiet)
        before = guard.checks
        subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
        looks = guard.checks - before
        print(f"{writes} writes, {looks} looks")
        assert looks < writes // 20, f"{looks} looks for {writes} writes"
        assert log.stat().st_size == writes * 200
    finally:
        guard.close()


def test_without_inotify_files_are_polled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def unavailable() -> int:
        raise inotify.InotifyUnavailable(errno.ENOSYS, "no inotify in this test")

    monkeypatch.setattr(inotify, "open_descriptor", unavailable)
    log = tmp_path / "stdout.log"
    log.touch()
    guard = LogGuard(1 * MIB, 3)
    try:
        guard.sync([log])
        assert guard.wait_idle()
        assert guard.quiet == frozenset()  # nothing can tell it of a write: it keeps polling
        _append(log, b"y" * (2 * MIB))
        _wait_until(lambda: guard.rotations == 1, timeout=5 * log_guard.QUIET_POLL_SECONDS)
        assert log.stat().st_size < MIB
    finally:
        guard.close()


def test_watch_picks_up_a_replaced_or_late_log(tmp_path: Path) -> None:
    a, b = tmp_path / "a.log", tmp_path / "b.log"
    a.write_bytes(b"old\n")
    guard = LogGuard(1 * MIB, 3)
    try:
        guard.watch([a, b])  # b does not exist yet
        assert guard.wait_idle()
        assert guard.guarded == {a}
        a.unlink()
        a.write_bytes(b"z" * (2 * MIB))  # a new file under the old name (an agent restarted into a fresh log)
        b.write_bytes(b"w" * (2 * MIB))
        guard.watch([a, b])  # what the daemon sends on every start
        assert guard.wait_idle()
        assert guard.guarded == {a, b}
        assert a.stat().st_size < MIB and b.stat().st_size < MIB  # both looked at as soon as guarded
        guard.unwatch([a])
        assert guard.wait_idle()
        assert guard.guarded == {b}
    finally:
        guard.close()
