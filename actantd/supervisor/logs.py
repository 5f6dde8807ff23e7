"""Agent log files: size rotation, cheap tails, and following across rotation.

Agents write their stdout/stderr straight into ``{home}/logs/<name>/{stdout,stderr}.log``, opened
``O_APPEND`` (:mod:`.spawn`), so an agent keeps logging while the daemon is down. The daemon cannot make the
agent reopen its files, so rotation is **copy-truncate**: copy the file to ``.1``, then remove what was
copied from the live file; the writer's next ``O_APPEND`` write lands at the new end.

Classic copy-truncate (logrotate's) loses whatever is written between the end of the copy and the
truncation. Where the filesystem allows (ext4, XFS), we avoid that: copy a block-aligned prefix and remove
exactly that prefix with ``fallocate(FALLOC_FL_COLLAPSE_RANGE)``, which the kernel serializes with the
writer's appends, so nothing is lost and nothing is duplicated (the live file keeps the unaligned tail, under
one block). Elsewhere (tmpfs, btrfs...) we fall back to copy-to-EOF-then-truncate, with its tiny loss window.

**What bounds the disk, for any writer.** Two rules, the first by construction, the second by looking:

- a backup never holds more than ``max_bytes`` (``2 * max_bytes`` on filesystems without
  ``FALLOC_FL_COLLAPSE_RANGE``, such as tmpfs): a collapse moves at most ``max_bytes`` per rotation and
  leaves the rest for the next; a writer that outran rotation by twice the limit loses its *oldest* excess
  (logged) rather than a backup growing with it;
- the live file is looked at as soon as it is written and then as often as its growth requires:
  :class:`~actantd.supervisor.log_guard.LogGuard` keeps a descriptor on every active agent's log files, an
  inotify watch on each quiet one, and polls a file that is being written at an interval bounded by its
  headroom to ``max_bytes`` (at most 0.1 s). The live file's overshoot is then what the writer manages to
  write during one such interval and one rotation (copying ``max_bytes``).

Why not the alternatives: a pipe through the daemon would bound the file exactly, but an agent must keep
logging while the daemon is down or restarting (its output would block or die with the pipe);
``RLIMIT_FSIZE`` would also cap every file the agent writes in its workspace. Measured figures are in
``tests/supervisor/test_log_bounds.py``.

**A log deleted under a writer** (``rm -r logs/<agent>`` while it runs) would grow an invisible unlinked
inode forever. The guard's descriptor still reaches that inode: once its link count is zero the guard
truncates it to zero whenever it grows, so the space is returned, and warns once.

Rotation order, which :func:`follow` relies on: copy to a hidden temp file, cut the live file, shift
``.1``→``.2``…, rename the temp file to ``.1``. So once a follower sees a new ``.1``, the cut has happened,
and the bytes it had not read yet are at its old offset in ``.1`` (then, after a collapse, in the live file
at that offset minus the length of ``.1``).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import logging
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from actantd.limits import LOG_BACKUPS as DEFAULT_BACKUPS
from actantd.limits import LOG_MAX_BYTES as DEFAULT_MAX_BYTES

log = logging.getLogger(__name__)

MiB = 1024 * 1024
MAX_LINE = 64 * 1024
"""Longest line kept whole; longer runs without a newline are cut into pieces of this size (bounded memory)."""

MAX_TAIL_LINES = 10_000
MAX_TAIL_BYTES = 3 * MiB
"""A tail is a screenful or a few thousand lines; past these bounds it is cut (oldest lines first), so
``agent logs --lines 999999999`` costs a bounded read and a bounded reply."""

FOLLOW_INTERVAL = 0.1
"""Seconds between polls in :func:`follow`: copy-truncate gives no event to wait for, and inotify would need
a watch per follower for a gain people reading logs cannot see."""

_BLOCK = 64 * 1024
_READ_CHUNK = 256 * 1024
_FINGERPRINT = 64
_MAX_BACKUPS_SCANNED = 100
_ROTATION_SETTLE = 0.05
"""How long a follower that saw its file truncated waits for the rotator's new ``.1`` (normally µs away)."""


@dataclass(frozen=True, slots=True)
class LogFiles:
    """The two log files of one agent, in its own directory outside the workspace."""

    dir: Path

    @property
    def stdout(self) -> Path:
        return self.dir / "stdout.log"

    @property
    def stderr(self) -> Path:
        return self.dir / "stderr.log"

    def path(self, stream: str) -> Path:
        if stream not in ("stdout", "stderr"):
            raise ValueError(f"unknown stream {stream!r}")
        return self.dir / f"{stream}.log"

    def rotate_if_needed(self, max_bytes: int = DEFAULT_MAX_BYTES, backups: int = DEFAULT_BACKUPS) -> list[Path]:
        """Rotate whichever stream is over ``max_bytes``; returns the paths rotated."""
        return [p for p in (self.stdout, self.stderr) if rotate_if_needed(p, max_bytes, backups)]


def backup_path(path: str | os.PathLike[str], n: int) -> Path:
    path = Path(path)
    return path.with_name(f"{path.name}.{n}")


def _copy_range(src: int, dst: int, start: int, limit: int, dst_start: int | None = None) -> int:
    """Copy ``src[start:start + limit]`` (less at EOF) to ``dst`` at ``dst_start`` (default: the same offset);
    returns bytes copied.

    In the kernel (``copy_file_range``) where the filesystem allows, else with pread/pwrite.
    """
    to = start if dst_start is None else dst_start
    copied = 0
    try:
        while copied < limit:
            n = os.copy_file_range(src, dst, min(limit - copied, 1 << 30), start + copied, to + copied)
            if n == 0:
                return copied
            copied += n
        return copied
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EPERM):
            raise
    while copied < limit:
        chunk = os.pread(src, min(limit - copied, 1 << 20), start + copied)
        if not chunk:
            break
        view = memoryview(chunk)
        while view:
            written = os.pwrite(dst, view, to + copied)
            view = view[written:]
            copied += written
    return copied


FALLOC_FL_COLLAPSE_RANGE = 0x08
_libc = ctypes.CDLL(None, use_errno=True)
_fallocate = _libc.fallocate
_fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
_fallocate.restype = ctypes.c_int


def _collapse_prefix(fd: int, length: int) -> bool:
    """Remove ``fd[0:length]`` in place, shifting the rest down; False where the filesystem cannot."""
    if _fallocate(fd, FALLOC_FL_COLLAPSE_RANGE, 0, length) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS, errno.EPERM):
        return False
    raise OSError(err, f"fallocate(COLLAPSE_RANGE): {os.strerror(err)}")


def _aligned_prefix(size: int, block: int) -> int:
    """The longest block-aligned prefix strictly shorter than ``size`` (a collapse may not reach EOF)."""
    if block <= 0:
        return 0
    return ((size - 1) // block) * block if size > 0 else 0


def _cut(fd: int, dst: int | None, size: int, block: int, lossless: bool, cap: int | None = None) -> tuple[int, bool]:
    """Move the start of the live file into ``dst`` (if any); returns how many bytes were dropped, and
    whether the cap left more than a rotation's worth in the live file (rotate again).

    At most ``cap`` bytes go into ``dst``, so a backup is never larger than ``cap`` by construction:

    - with a collapse, exactly the first ``P`` bytes move (``P`` the largest block multiple within both the
      file and ``cap``); whatever lies beyond stays in the live file for the next rotation, so nothing is
      lost even when a fast writer took the file far past the cap;
    - with the plain truncate (filesystems without collapse), the whole file is copied while it is within
      ``2 * cap`` (so the backup may hold up to twice the cap there), else only its newest ``cap`` bytes
      (from a line start): the older excess is dropped and counted.
    """
    if cap is not None and size > 2 * cap:
        # The writer is outrunning rotation and its oldest bytes are lost either way; a collapse would first
        # write back every dirty page of the file (slow, while the file keeps growing), a truncate is instant.
        lossless = False
    whole = _aligned_prefix(size, block) if lossless else 0
    prefix = min(whole, (cap // block) * block) if cap is not None and block > 0 else whole
    if prefix > 0:
        copied = _copy_range(fd, dst, 0, prefix) if dst is not None else prefix
        if copied == prefix and _collapse_prefix(fd, prefix):
            return 0, prefix < whole
        if dst is not None:
            os.ftruncate(dst, 0)
    dropped = 0
    if dst is not None:
        if cap is not None and size > 2 * cap:
            skip = _line_start(fd, size - cap, size)
            dropped = skip
            _copy_range(fd, dst, skip, min(cap, size - skip), dst_start=0)
        else:
            # Copy to EOF as it is *now* (the writer keeps going); the limit only stops a runaway writer from
            # keeping us copying forever. Truncate at once: what lands in between is the classic loss.
            # Without a collapse the overshoot cannot stay behind, so this backup may hold up to 2 * cap.
            bound = size + max(size, _READ_CHUNK)
            _copy_range(fd, dst, 0, bound if cap is None else min(bound, 2 * cap))
    os.ftruncate(fd, 0)
    return dropped, False


def _line_start(fd: int, offset: int, size: int) -> int:
    """The first line start at or after ``offset`` (within one ``MAX_LINE``), else ``offset`` itself."""
    if offset <= 0:
        return 0
    window = os.pread(fd, min(MAX_LINE, size - offset + 1), offset - 1)
    idx = window.find(b"\n")
    return offset + idx if idx >= 0 else offset


def rotate_if_needed(
    path: str | os.PathLike[str],
    max_bytes: int = DEFAULT_MAX_BYTES,
    backups: int = DEFAULT_BACKUPS,
    *,
    lossless: bool = True,
    backup_max: int | None = -1,
) -> bool:
    """Copy-truncate ``path`` once it holds ``max_bytes`` or more; keep ``backups`` old copies (.1 newest).

    Returns whether it rotated. A missing file is not an error (the agent has not written yet).
    ``lossless=False`` forces the plain truncate even where a collapse would work (tests of the fallback).
    Each backup holds at most ``backup_max`` bytes (default ``max_bytes``; None: no cap, "rotate whatever is
    there now"), see :func:`_cut`; when the cap leaves a full rotation's worth in the live file, it rotates
    again, at most once per backup (older output then rolls off the end, as it would have anyway).
    """
    path = Path(path)
    cap = max_bytes if backup_max == -1 else backup_max
    rotated = False
    for _ in range(max(1, backups + 1)):
        result = _rotate_once(path, max_bytes, backups, lossless, cap)
        rotated = rotated or result is not None
        if not result:
            break
    return rotated


def _rotate_once(path: Path, max_bytes: int, backups: int, lossless: bool, cap: int | None) -> bool | None:
    """None: nothing to rotate; else whether the live file still holds more than a rotation's worth."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    tmp = path.with_name(f".{path.name}.rotating")
    again = False
    try:
        st = os.fstat(fd)
        if st.st_size < max_bytes:
            return None
        if backups <= 0:
            _cut(fd, None, st.st_size, st.st_blksize, lossless)
            return False
        dst = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, st.st_mode & 0o777)
        try:
            dropped, again = _cut(fd, dst, st.st_size, st.st_blksize, lossless, cap=cap)
        finally:
            os.close(dst)
        if dropped:
            log.warning(
                "%s: the writer outran rotation; dropped its oldest %d bytes to keep each backup within %d",
                path,
                dropped,
                cap,
            )
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    finally:
        os.close(fd)
    for n in range(backups - 1, 0, -1):
        with contextlib.suppress(FileNotFoundError):
            os.replace(backup_path(path, n), backup_path(path, n + 1))
    os.replace(tmp, backup_path(path, 1))
    return again


def lossless_rotation_supported(directory: str | os.PathLike[str]) -> bool:
    """Whether rotation in ``directory`` can collapse instead of truncate (for diagnostics and tests)."""
    probe = Path(directory) / f".collapse-probe-{os.getpid()}"
    fd = os.open(probe, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        block = os.fstat(fd).st_blksize
        os.write(fd, b"\0" * (2 * block))
        return _collapse_prefix(fd, block)
    finally:
        os.close(fd)
        os.unlink(probe)


def _tail_fd(fd: int, end: int, n: int, max_line: int) -> list[bytes]:
    """The last ``n`` lines of ``fd[:end]``, reading backwards in blocks (a final unterminated line counts).

    Reads at most about ``(n + 1) * max_line`` bytes, whatever the file's size or line lengths.
    """
    if n <= 0 or end <= 0:
        return []
    n = min(n, MAX_TAIL_LINES)
    budget = min((n + 1) * max_line, MAX_TAIL_BYTES)
    pos = end
    blocks: list[bytes] = []
    newlines = 0
    while pos > 0 and newlines <= n and end - pos < budget:
        size = min(_BLOCK, pos)
        pos -= size
        block = os.pread(fd, size, pos)
        blocks.append(block)
        newlines += block.count(b"\n")
    data = b"".join(reversed(blocks))
    if not data:
        return []
    if data.endswith(b"\n"):
        data = data[:-1]
    # With more than n parts the first one (maybe begun mid-line) is never among the last n; with fewer we
    # stopped at the budget inside an overlong line, whose fragment is the best there is.
    parts = data.split(b"\n")
    return [part[:max_line] for part in parts[-n:]]


def _tail_path(path: Path, n: int, max_line: int) -> list[bytes]:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return []
    try:
        return _tail_fd(fd, os.fstat(fd).st_size, n, max_line)
    finally:
        os.close(fd)


def _decode(lines: list[bytes]) -> list[str]:
    return [line.decode("utf-8", errors="replace") for line in lines]


def tail_lines(path: str | os.PathLike[str], n: int, *, max_line: int = MAX_LINE) -> list[str]:
    """The last ``n`` lines of a log, reaching into ``.1`` when the current file (just rotated) has fewer."""
    path = Path(path)
    n = min(n, MAX_TAIL_LINES)
    lines = _tail_path(path, n, max_line)
    if len(lines) < n and sum(map(len, lines)) < MAX_TAIL_BYTES:
        lines = _tail_path(backup_path(path, 1), n - len(lines), max_line) + lines
    return _decode(lines)


def _ident(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


class _Follower:
    """Reads what is appended to one log file, noticing replacement and copy-truncate rotation.

    Rotation is detected by any of: the path names another inode (rename-style rotation or recreation);
    the file is shorter than our offset; the bytes just before our offset changed (the file was truncated
    and refilled past our offset between two polls); ``.1`` is a new file (our rotator, see module doc).
    """

    def __init__(self, path: Path, max_line: int) -> None:
        self.path = path
        self.backup = backup_path(path, 1)
        self.max_line = max_line
        self.fd: int | None = None
        self.ident: tuple[int, int] | None = None
        self.offset = 0
        self.fingerprint = b""
        self.backup_ident: tuple[int, int] | None = None
        self.pending = bytearray()
        self.more = False

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def _open(self) -> bool:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        self.close()
        st = os.fstat(fd)
        self.fd, self.ident = fd, (st.st_dev, st.st_ino)
        self.offset, self.fingerprint = 0, b""
        self.backup_ident = _ident(self.backup)
        return True

    def start(self, start_lines: int) -> list[bytes]:
        """Open at the end of the last complete line; return up to ``start_lines`` lines before it."""
        self.backup_ident = _ident(self.backup)
        if not self._open():
            return _tail_path(self.backup, start_lines, self.max_line) if start_lines > 0 else []
        assert self.fd is not None
        size = os.fstat(self.fd).st_size
        look = min(size, self.max_line)
        block = os.pread(self.fd, look, size - look)
        idx = block.rfind(b"\n")
        # No newline: a short file is one partial line (read it whole), an overlong line is skipped.
        end = size - look + idx + 1 if idx >= 0 else 0 if look == size else size
        lines = _tail_fd(self.fd, end, start_lines, self.max_line)
        if start_lines > 0 and len(lines) < start_lines:
            lines = _tail_path(self.backup, start_lines - len(lines), self.max_line) + lines
        self._seek(end)
        return lines

    def _seek(self, offset: int) -> None:
        assert self.fd is not None
        self.offset = offset
        keep = min(offset, _FINGERPRINT)
        self.fingerprint = os.pread(self.fd, keep, offset - keep) if keep else b""

    def _feed(self, data: bytes, out: list[bytes]) -> None:
        self.pending += data
        if b"\n" in data:
            *complete, rest = bytes(self.pending).split(b"\n")
            for line in complete:
                out.extend(_split_long(line, self.max_line))
            self.pending = bytearray(rest)
        while len(self.pending) > self.max_line:
            out.append(bytes(self.pending[: self.max_line]))
            del self.pending[: self.max_line]

    def _flush_pending(self, out: list[bytes]) -> None:
        if self.pending:
            out.append(bytes(self.pending))
            self.pending.clear()

    def _read(self, out: list[bytes]) -> None:
        assert self.fd is not None
        data = os.pread(self.fd, _READ_CHUNK, self.offset)
        self.more = len(data) == _READ_CHUNK
        if data:
            self._seek(self.offset + len(data))
            self._feed(data, out)

    def _truncated(self, size: int) -> bool:
        assert self.fd is not None
        if size < self.offset:
            return True
        keep = len(self.fingerprint)
        return bool(keep) and os.pread(self.fd, keep, self.offset - keep) != self.fingerprint

    async def poll(self) -> list[bytes]:
        out: list[bytes] = []
        if self.fd is None and not self._open():
            return out
        assert self.fd is not None
        current = _ident(self.path)
        if current is not None and current != self.ident:
            self._read(out)  # drain what the old file still holds, then move to the new one
            while self.more:
                self._read(out)
            self._flush_pending(out)
            self._open()
        else:
            backup = _ident(self.backup)
            rotated = backup is not None and backup != self.backup_ident
            if rotated or self._truncated(os.fstat(self.fd).st_size):
                if not rotated:
                    backup = await self._await_backup()
                    rotated = backup is not None and backup != self.backup_ident
                # A partial line stays pending: the rotation cut the file, not the writer's line.
                residual = self._read_missed(out) if rotated else 0
                self.backup_ident = backup
                self._seek(residual if residual > 0 and self._continues_at(residual) else 0)
        self._read(out)
        return out

    async def _await_backup(self) -> tuple[int, int] | None:
        """After a truncation, give the rotator its last step (renaming ``.1`` into place) a moment."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _ROTATION_SETTLE
        backup = _ident(self.backup)
        while backup == self.backup_ident and loop.time() < deadline:
            await asyncio.sleep(0.005)  # no event exists for a rename; bounded by _ROTATION_SETTLE
            backup = _ident(self.backup)
        return backup

    def _read_missed(self, out: list[bytes]) -> int:
        """Read what we had not read before the rotation back from the backups; return the offset left.

        The first rotation since our last poll copied our file, so our unread bytes are at our offset in
        that copy; rotations after it (a fast writer, a slow poll) are newer backups, read whole. The first
        one is the oldest backup newer than the ``.1`` we knew (or the oldest left, if that one is gone).
        After a collapse the live file still holds what followed the copied prefix: our offset minus what the
        backups held is where we continue in it (checked by :meth:`_continues_at`).
        """
        newer: list[Path] = []
        n = 1
        while n <= _MAX_BACKUPS_SCANNED:
            candidate = backup_path(self.path, n)
            ident = _ident(candidate)
            if ident is None or ident == self.backup_ident:
                break
            newer.append(candidate)
            n += 1
        offset = self.offset
        for path in reversed(newer):
            length = self._read_file(path, offset, out)
            offset = max(0, offset - length)
        return offset

    def _read_file(self, path: Path, offset: int, out: list[bytes]) -> int:
        """Feed ``path`` from ``offset`` to its end; return its length."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return 0
        try:
            while data := os.pread(fd, _READ_CHUNK, offset):
                offset += len(data)
                self._feed(data, out)
            return os.fstat(fd).st_size
        finally:
            os.close(fd)

    def _continues_at(self, offset: int) -> bool:
        """Whether the live file, at ``offset``, is preceded by the bytes we last read (a collapse kept them)."""
        assert self.fd is not None
        keep = min(offset, len(self.fingerprint))
        return keep > 0 and os.pread(self.fd, keep, offset - keep) == self.fingerprint[-keep:]


def _split_long(line: bytes, max_line: int) -> list[bytes]:
    if len(line) <= max_line:
        return [line]
    return [line[i : i + max_line] for i in range(0, len(line), max_line)]


async def follow(
    path: str | os.PathLike[str],
    *,
    start_lines: int = 0,
    stop: asyncio.Event,
    interval: float = FOLLOW_INTERVAL,
    max_line: int = MAX_LINE,
) -> AsyncIterator[list[str]]:
    """Yield the last ``start_lines`` lines (always, possibly empty), then batches of new complete lines until
    ``stop`` is set.

    Survives rotation and recreation of the file (see :class:`_Follower`); a file that does not exist yet is
    waited for. The tail and the start of following are taken from the same open file at the same offset,
    so no line falls between them: prefer ``start_lines=n`` to a separate :func:`tail_lines` call. The first
    batch is yielded even when empty so a caller can answer with the tail before streaming the rest.
    """
    follower = _Follower(Path(path), max_line)
    try:
        yield _decode(follower.start(start_lines))
        while not stop.is_set():
            lines = await follower.poll()
            if lines:
                yield _decode(lines)
            if follower.more:
                continue  # a backlog: keep reading without waiting
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
    finally:
        follower.close()
