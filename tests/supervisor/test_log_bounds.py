"""Class 7 of issue #10 (and #13's rotation cost): log disk is bounded for any writer.

Before: rotation was a once-a-second check from the daemon's housekeeping that copied the whole file, so an
agent writing 1 GiB fast left 1.35 GiB of logs with backups of 400-600 MiB (documented: 10 MiB x 3), and a
log directory deleted under a writer grew an invisible file forever. Now each backup is capped by
construction, a :class:`LogGuard` thread hears of a quiet file's first write from inotify and then polls it
as often as its headroom to the cap requires, and a deleted log is truncated through the guard's descriptor.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from actantd.supervisor.log_guard import LogGuard
from actantd.supervisor.logs import backup_path, rotate_if_needed

MIB = 1024 * 1024
BACKUPS = 3


def _writer(path: Path, total_mib: int, *, wait: bool = False) -> subprocess.Popen[bytes]:
    """A child writing ``total_mib`` MiB as fast as it can to ``path`` (O_APPEND, like an agent)."""
    code = (
        "import os,sys\n"
        f"fd = os.open({str(path)!r}, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)\n"
        "line = (b'x' * 1023 + b'\\n') * 64\n"
        f"for _ in range({total_mib} * 16):\n"
        "    os.write(fd, line)\n"
        "sys.stdout.write('done\\n'); sys.stdout.flush()\n" + ("sys.stdin.read()\n" if wait else "")
    )
    return subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True
    )


def _disk(path: Path) -> tuple[int, int]:
    """(apparent bytes, allocated bytes) of the live file and its backups."""
    apparent = allocated = 0
    for p in [path, *(backup_path(path, n) for n in range(1, BACKUPS + 2))]:
        try:
            st = os.stat(p)
        except FileNotFoundError:
            continue
        apparent += st.st_size
        allocated += st.st_blocks * 512
    return apparent, allocated


def _slow_then_fast_writer(path: Path, slow_lines: int, fast_mib: int) -> subprocess.Popen[bytes]:
    """A child writing ``slow_lines`` lines 20 ms apart, then ``slow`` on stdout; after a line on its stdin,
    ``fast_mib`` MiB as fast as it can, then ``done``."""
    code = (
        "import os,sys,time\n"
        f"fd = os.open({str(path)!r}, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)\n"
        f"for i in range({slow_lines}):\n"
        "    os.write(fd, b'slow %d\\n' % i)\n"
        "    time.sleep(0.02)\n"
        "sys.stdout.write('slow\\n'); sys.stdout.flush()\n"
        "sys.stdin.readline()\n"
        "line = (b'x' * 1023 + b'\\n') * 64\n"
        f"for _ in range({fast_mib} * 16):\n"
        "    os.write(fd, line)\n"
        "sys.stdout.write('done\\n'); sys.stdout.flush()\n"
    )
    return subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True
    )


def _wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll with a deadline, for a state of the guard thread that nothing announces."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def _run_fast_writer(tmp_path: Path, total_mib: int, max_bytes: int, *, slow_first: int = 0) -> tuple[int, int]:
    """Guard one log while a child writes ``total_mib`` MiB to it as fast as it can; with ``slow_first``, that
    many slow lines come first and the burst starts only once the guard has gone back to waiting for a write
    (the file is quiet). Returns the peak and final bytes of the log and its backups."""
    log = tmp_path / "stdout.log"
    log.touch()
    guard = LogGuard(max_bytes, BACKUPS)
    peak = [0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], _disk(log)[0])
            stop.wait(0.002)

    sampler = threading.Thread(target=sample)
    proc: subprocess.Popen[bytes] | None = None
    try:
        guard.sync([log])
        assert guard.wait_idle()
        sampler.start()
        if slow_first:
            proc = _slow_then_fast_writer(log, slow_first, total_mib)
            assert proc.stdout is not None and proc.stdin is not None
            assert proc.stdout.readline() == b"slow\n"
            _wait_until(lambda: log in guard.quiet)
            assert guard.rotations == 0
            proc.stdin.write(b"go\n")
            proc.stdin.flush()
        else:
            proc = _writer(log, total_mib)
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"done\n"
        proc.stdin.close()  # type: ignore[union-attr]
        assert proc.wait(30) == 0
        # The last write's event is handled (or the sweep runs) within a second.
        deadline = time.monotonic() + 5
        while log.stat().st_size >= max_bytes and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        stop.set()
        if sampler.is_alive():
            sampler.join()
        guard.close()
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(10)
    for n in range(1, BACKUPS + 1):
        b = backup_path(log, n)
        assert b.exists() and b.stat().st_size <= max_bytes, (n, b.stat().st_size)
    assert not backup_path(log, BACKUPS + 1).exists()
    assert log.stat().st_size < max_bytes
    assert guard.rotations > 0
    return peak[0], _disk(log)[0]


def test_a_fast_writer_cannot_take_logs_past_their_bound(tmp_path: Path) -> None:
    max_bytes = 1 * MIB
    peak, final = _run_fast_writer(tmp_path, 96, max_bytes)
    bound = (BACKUPS + 1) * max_bytes
    print(f"96 MiB written fast: peak {peak / MIB:.1f} MiB, final {final / MIB:.1f} MiB, bound {bound / MIB} MiB")
    assert final <= bound
    # Backups are capped by construction (checked above). The live file's overshoot is what the writer lands
    # before the guard thread gets a CPU, which depends on the machine's load: assert only that rotation ran
    # while the writer wrote (the old once-a-second copy left 95 MiB backups of this burst).
    assert peak < 64 * MIB, f"peak {peak / MIB:.1f} MiB"


def test_a_quiet_log_that_starts_writing_fast_is_rotated_within_the_bound(tmp_path: Path) -> None:
    """The guard looks at a quiet file only when it is written: the first write of a burst after a quiet spell
    (here after slow writes, which the guard polled and then stopped polling) must still start rotation at
    once, not after some long interval chosen while the file was quiet."""
    max_bytes = 1 * MIB
    peak, final = _run_fast_writer(tmp_path, 96, max_bytes, slow_first=25)
    bound = (BACKUPS + 1) * max_bytes
    print(f"quiet, then 96 MiB fast: peak {peak / MIB:.1f} MiB, final {final / MIB:.1f} MiB")
    assert final <= bound
    assert peak < 64 * MIB, f"peak {peak / MIB:.1f} MiB"  # rotation ran during the burst (see above)


@pytest.mark.soak
def test_soak_one_gib_writer(tmp_path: Path) -> None:
    max_bytes = 10 * MIB
    peak, final = _run_fast_writer(tmp_path, 1024, max_bytes)
    print(f"1 GiB written fast: peak {peak / MIB:.1f} MiB, final {final / MIB:.1f} MiB")
    assert final <= (BACKUPS + 1) * max_bytes
    # Backups are bounded by construction (checked in _run_fast_writer); the live file's overshoot is what
    # the writer gets in while the guard thread waits for a CPU, so on a loaded machine it is a measured
    # figure with a ceiling, not a constant (before: 1.35 GiB kept of 1 GiB written).
    assert peak <= 256 * MIB, f"peak {peak / MIB:.1f} MiB"


def test_a_log_deleted_under_its_writer_does_not_grow_forever(tmp_path: Path) -> None:
    logs = tmp_path / "logs" / "agent"
    logs.mkdir(parents=True)
    log = logs / "stdout.log"
    log.touch()
    guard = LogGuard(1 * MIB, BACKUPS)
    proc = _writer(log, 0, wait=True)  # opens the file, then waits
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"done\n"
        guard.sync([log])
        assert guard.wait_idle()
        shutil.rmtree(tmp_path / "logs")
        # The writer keeps writing into the unlinked inode: 48 MiB more.
        code = (
            "import os\n"
            f"fd = os.open('/proc/{proc.pid}/fd/3', os.O_WRONLY | os.O_APPEND)\n"
            "line = (b'y' * 1023 + b'\\n') * 64\n"
            "for _ in range(48 * 16):\n"
            "    os.write(fd, line)\n"
        )
        subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
        deadline = time.monotonic() + 5
        size = os.stat(f"/proc/{proc.pid}/fd/3").st_size
        while size > MIB and time.monotonic() < deadline:
            time.sleep(0.01)
            size = os.stat(f"/proc/{proc.pid}/fd/3").st_size
        assert size <= MIB, f"the deleted log holds {size / MIB:.1f} MiB"
        assert guard.truncated_deleted > 0
    finally:
        guard.close()
        proc.stdin.close()  # type: ignore[union-attr]
        proc.wait(10)


def test_guard_follows_the_set_of_active_logs(tmp_path: Path) -> None:
    a, b = tmp_path / "a.log", tmp_path / "b.log"
    a.write_bytes(b"x" * (2 * MIB))
    guard = LogGuard(1 * MIB, BACKUPS)
    try:
        guard.sync([a, b])  # b does not exist yet: retried later
        assert guard.wait_idle()
        assert guard.guarded == {a}
        assert a.stat().st_size < MIB  # checked as soon as it is guarded
        guard.sync([])
        assert guard.wait_idle()
        assert guard.guarded == frozenset()
    finally:
        guard.close()


def test_rotation_moves_at_most_max_bytes_per_backup(tmp_path: Path) -> None:
    log = tmp_path / "stdout.log"
    log.write_bytes((b"z" * 99 + b"\n") * 200_000)  # 20 MB at once, far past the limit
    assert rotate_if_needed(log, 1 * MIB, BACKUPS)
    backups = [backup_path(log, n) for n in range(1, BACKUPS + 2) if backup_path(log, n).exists()]
    assert backups and all(b.stat().st_size <= MIB for b in backups)
    assert len(backups) <= BACKUPS
    assert log.stat().st_size < MIB
    assert backup_path(log, 1).read_bytes().startswith(b"z" * 99 + b"\n")  # cut at a line start
