"""Run one process tree to completion (or a timeout), streaming its output and keeping a bounded tail.

Why not ``asyncio.create_subprocess_exec``: the daemon reaps its own children (see
:mod:`actantd.supervisor.spawn`), so a run is started with :class:`subprocess.Popen`, claimed, and its exit
watched with a pidfd like every other child; only its two pipes go through the event loop.

The run is a session leader (its own process group) and every process of it carries ``marker`` in
``ACTANT_INSTANCE_ID`` (``<instance id>.run``: distinct from the instance's own id, so a run never dies with
the instance's service process, and the service's clean-up never touches a run). When the leader exits, or
the timeout fires, :func:`actantd.supervisor.kill.terminate_tree` ends the whole tree, escaped grandchildren
included, so a helper that kept the pipes open cannot keep the run alive either.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import os
import signal
import subprocess
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from actantd.errors import AgentLaunch
from actantd.supervisor import exits, kill, spawn

CHUNK: Final = 64 * 1024
MAX_LINE: Final = 64 * 1024
"""A line longer than this is streamed in pieces (a progress bar without newlines must not stall the stream)."""
DEFAULT_KEEP_STDOUT: Final = 4 * 1024 * 1024
DEFAULT_KEEP_STDERR: Final = 256 * 1024
TERM_GRACE: Final = 2.0
"""Seconds between SIGTERM and SIGKILL when a run times out."""
DRAIN_TIMEOUT: Final = 2.0
"""After the tree is gone, how long to wait for the last bytes in the pipes."""

OnLine = Callable[[str, str], None]
"""``on_line(stream, line)``: ``stream`` is "stdout" or "stderr"; ``line`` has no trailing newline."""


@dataclass(frozen=True, slots=True)
class RunSpec:
    """What to execute: the complete argv, the complete environment and the working directory."""

    argv: Sequence[str]
    env: Mapping[str, str]
    cwd: str


@dataclass(frozen=True, slots=True)
class Execution:
    exit_code: int | None
    signal: int | None
    timed_out: bool
    duration_seconds: float
    started_at: float
    """Wall-clock start (``time.time()``)."""
    stdout: str
    """The last ``keep`` bytes of stdout (all of it unless ``stdout_truncated``)."""
    stderr: str
    stdout_bytes: int
    stderr_bytes: int
    stdout_truncated: bool
    stderr_truncated: bool
    pid: int


class _Tail:
    """The last ``limit`` bytes of a stream, plus line splitting for the live feed."""

    def __init__(self, name: str, limit: int, on_line: OnLine | None) -> None:
        self.name = name
        self.limit = limit
        self.on_line = on_line
        self.chunks: deque[bytes] = deque()
        self.kept = 0
        self.total = 0
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._partial = ""

    def feed(self, data: bytes) -> None:
        self.total += len(data)
        self.chunks.append(data)
        self.kept += len(data)
        while self.kept - len(self.chunks[0]) >= self.limit:
            self.kept -= len(self.chunks.popleft())
        if self.on_line is not None:
            text = self._partial + self._decoder.decode(data)
            lines = text.split("\n")
            self._partial = lines.pop()
            while len(self._partial) > MAX_LINE:
                lines.append(self._partial[:MAX_LINE])
                self._partial = self._partial[MAX_LINE:]
            for line in lines:
                self.on_line(self.name, line)

    def finish(self) -> None:
        if self.on_line is not None:
            rest = self._partial + self._decoder.decode(b"", final=True)
            self._partial = ""
            if rest:
                self.on_line(self.name, rest)

    @property
    def truncated(self) -> bool:
        return self.total > self.limit

    def text(self) -> str:
        data = b"".join(self.chunks)
        if len(data) > self.limit:
            data = data[-self.limit :]
        return data.decode("utf-8", errors="replace")


async def _pump(fd: int, tail: _Tail) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=CHUNK * 2)
    pipe = os.fdopen(fd, "rb", buffering=0)
    transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), pipe)
    try:
        while True:
            data = await reader.read(CHUNK)
            if not data:
                break
            tail.feed(data)
    finally:
        transport.close()
        tail.finish()


def _start(spec: RunSpec, install_hint: str | None) -> subprocess.Popen[bytes]:
    argv = list(spec.argv)
    if not argv:
        raise AgentLaunch("empty command: nothing to execute", executable="")
    if not os.path.isdir(spec.cwd):
        raise AgentLaunch(f"cannot enter working directory '{spec.cwd}': no such directory", cwd=spec.cwd)
    executable = spawn.resolve_executable(argv[0], spec.cwd, spec.env)
    if executable is None:
        where = "on PATH" if "/" not in argv[0] else "(no such file)"
        hint = f"; install it with: {install_hint}" if install_hint else ""
        raise AgentLaunch(f"'{argv[0]}' not found {where}{hint}", executable=argv[0], hint=install_hint)
    try:
        popen = subprocess.Popen(
            argv, executable=executable, cwd=spec.cwd, env=dict(spec.env), stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, close_fds=True, start_new_session=True,
        )  # fmt: skip
    except OSError as exc:
        raise AgentLaunch(f"cannot start '{executable}': {exc.strerror or exc}", executable=argv[0]) from exc
    exits.claim_child(popen.pid)
    return popen


async def execute(
    spec: RunSpec,
    *,
    marker: str,
    timeout: float | None,
    on_line: OnLine | None = None,
    keep_stdout: int = DEFAULT_KEEP_STDOUT,
    keep_stderr: int = DEFAULT_KEEP_STDERR,
    install_hint: str | None = None,
) -> Execution:
    """Run ``spec`` to its end; ``marker`` must be in ``spec.env["ACTANT_INSTANCE_ID"]`` (see module docstring).

    Cancelling the call kills the tree before the cancellation propagates, so a dropped caller or a daemon
    shutdown leaves nothing running.
    """
    if spec.env.get(kill.INSTANCE_ENV) != marker:
        raise ValueError(f"the run's environment must carry {kill.INSTANCE_ENV}={marker}")
    loop = asyncio.get_running_loop()
    started_wall, started = time.time(), time.monotonic()
    popen = await asyncio.to_thread(_start, spec, install_hint)
    exited = exits.watch_exit(loop, popen.pid, is_child=True, popen=popen)
    out, err = _Tail("stdout", keep_stdout, on_line), _Tail("stderr", keep_stderr, on_line)
    assert popen.stdout is not None and popen.stderr is not None
    out_fd, err_fd = os.dup(popen.stdout.fileno()), os.dup(popen.stderr.fileno())
    popen.stdout.close()
    popen.stderr.close()
    pumps = asyncio.gather(_pump(out_fd, out), _pump(err_fd, err))
    timed_out = False
    try:
        try:
            await asyncio.wait_for(asyncio.shield(exited), timeout)
        except TimeoutError:
            timed_out = True
            await kill.terminate_tree(popen.pid, instance_id=marker, sig=signal.SIGTERM, timeout=TERM_GRACE,
                                      exited=exited)  # fmt: skip
        # Whatever the leader left behind (it may hold the pipes open) goes with it.
        await kill.terminate_tree(None, instance_id=marker, timeout=0.5)
        try:
            await asyncio.wait_for(asyncio.shield(pumps), DRAIN_TIMEOUT)
        except TimeoutError:
            pumps.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pumps
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            await asyncio.shield(kill.terminate_tree(popen.pid, instance_id=marker, timeout=TERM_GRACE, exited=exited))
        pumps.cancel()
        raise
    info = exited.result()
    return Execution(
        exit_code=info.code, signal=info.signal, timed_out=timed_out,
        duration_seconds=time.monotonic() - started, started_at=started_wall,
        stdout=out.text(), stderr=err.text(), stdout_bytes=out.total, stderr_bytes=err.total,
        stdout_truncated=out.truncated, stderr_truncated=err.truncated, pid=popen.pid,
    )  # fmt: skip
