"""Group commit of instance records: transitions that arrive while a write is in flight share the next one.

Each record is still written the crash-safe way (temp file, durable, rename, rename durable; see
:func:`actantd.fsutil.atomic_write_many`), and each caller still waits until *its* record is durable before
it goes on to journal and announce the transition. What is shared is the cost: a burst of N transitions (a
pipelined stop of every agent, a shutdown, a crash storm) costs a few batches, each with one ``syncfs`` per
durability step, instead of N writes with two fsyncs each queued on a handful of worker threads.

How batches form: the first write waits one loop tick (so the transitions of one burst join it), then runs
in a worker thread with everything queued; whatever arrives meanwhile forms the next batch, started at once
while fewer than :data:`MAX_IN_FLIGHT` batches are being written, else as soon as one of them is done.
A failure is per record (its caller gets :class:`~actantd.errors.StateWrite`, its old file intact); the
others of the batch are written and go on.
"""

from __future__ import annotations

import asyncio
import errno
from pathlib import Path

from actantd import fsutil
from actantd.errors import StateWrite

MAX_BATCH = 256
"""Records per batch at most: bounds the file descriptors one batch holds open (one per record)."""

MAX_IN_FLIGHT = 3
"""Batches written at once. More than one because a batch is a loop of short system calls in one worker
thread, each giving the GIL back: while the event loop is busy (a burst of stops is), every call waits for
it again, so one thread alone falls behind; a few overlap those waits (their syncs then share a journal
commit, too)."""


def state_write_error(path: Path, exc: OSError) -> StateWrite:
    """The typed error for a record that could not be written (ENOSPC, EIO, EROFS...); the old one is kept."""
    name = errno.errorcode.get(exc.errno or 0, "EIO")
    return StateWrite(
        f"{path}: could not write state ({name}: {exc.strerror}); previous state kept", file=str(path), errno=name
    )


_Item = tuple[Path, bytes, int, "asyncio.Future[None]"]


class GroupCommit:
    """The one writer of ``.actant.json`` files for a running daemon (see the module docstring)."""

    def __init__(self, max_batch: int = MAX_BATCH, max_in_flight: int = MAX_IN_FLIGHT) -> None:
        self.max_batch = max_batch
        self.max_in_flight = max_in_flight
        self._queue: list[_Item] = []
        self._in_flight = 0
        self._scheduled = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self.batches = 0
        """Batches written so far (tests and figures read it)."""

    async def write(self, path: Path, data: bytes, mode: int) -> None:
        """Replace ``path`` with ``data`` atomically; returns once it is durable, else raises StateWrite."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a new event loop (tests): nothing of the old one is usable
            self._loop, self._queue, self._in_flight, self._scheduled = loop, [], 0, False
        fut: asyncio.Future[None] = loop.create_future()
        self._queue.append((path, data, mode, fut))
        if not self._scheduled and self._in_flight < self.max_in_flight:
            self._scheduled = True
            loop.call_soon(self._start)  # one tick later: the transitions of one burst join this batch
        await fut

    def _start(self) -> None:
        self._scheduled = False
        loop = self._loop
        if not self._queue or loop is None or self._in_flight >= self.max_in_flight:
            return
        batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
        self._in_flight += 1
        self.batches += 1
        work = [(path, data, mode) for path, data, mode, _ in batch]
        running = loop.run_in_executor(None, fsutil.atomic_write_many, work)

        def done(f: asyncio.Future[list[OSError | None]]) -> None:
            try:
                results: list[OSError | None] = f.result()
            except BaseException as exc:  # the thread itself failed (cancelled at shutdown): fail every record
                failed = exc if isinstance(exc, OSError) else OSError(errno.EIO, repr(exc))
                results = [failed] * len(batch)
            for (path, _, _, waiter), error in zip(batch, results, strict=True):
                if waiter.done():  # its caller was cancelled; the file is written (or not) all the same
                    continue
                if error is None:
                    waiter.set_result(None)
                else:
                    waiter.set_exception(state_write_error(path, error))
            self._in_flight -= 1
            self._start()  # what arrived meanwhile

        running.add_done_callback(done)
