"""Class 7 of issue #10 (and #13's rotation cost): log disk is bounded for any writer.

Before: rotation was a once-a-second check from the daemon's housekeeping that copied the whole file, so an
agent writing 1 GiB fast left 1.35 GiB of logs with backups of 400-600 MiB (documented: 10 MiB x 3), and a
log directory deleted under a writer grew an invisible file forever. Now each backup is capped by
construction, a :class:`LogGuard` thread reacts to inotify events within milliseconds, and a deleted log
is truncated through the guard's descriptor.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from actantd.supervisor.logs import LogGuard, backup_path, rotate_if_needed

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


def _run_fast_writer(tmp_path: Path, total_mib: int, max_bytes: int) -> tuple[int, int]:
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
    try:
        guard.sync([log])
        assert guard.wait_idle()
        sampler.start()
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
