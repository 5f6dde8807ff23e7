"""Health checks: a command or a TCP port probed periodically.

``failureThreshold`` consecutive failures call ``on_unhealthy`` once; the agent's
:class:`~actantd.supervisor.process.AgentProcess` then kills it and its exit goes through the restart policy
like any crash. A success re-arms the monitor.

Probe commands are started and reaped the way agents are (:mod:`.spawn`, :mod:`.exits`: Popen in a new
session, pidfd exit watch, the daemon reaps), never with asyncio subprocesses whose child watcher would race
the daemon's own reaping. A probe that outlives its timeout is killed with its whole process group, and so is
anything a probe leaves running in its group when it exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from actantd.supervisor import exits

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ProbeSpec:
    """One health probe: a command (``argv`` run in ``cwd`` with ``env``) or, without argv, a TCP connect.

    Built by :func:`actantd.launch.build_probe_spec` (a pure function of the template's ``healthCheck``);
    :func:`make_probe` turns it into the callable :class:`HealthMonitor` runs.
    """

    timeout: float
    argv: tuple[str, ...] | None = None
    cwd: Path | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    host: str = "127.0.0.1"
    port: int | None = None


def make_probe(spec: ProbeSpec) -> Callable[[], Awaitable[bool]]:
    """The probe :class:`HealthMonitor` calls: :func:`probe_command` or :func:`probe_tcp` bound to ``spec``."""
    if spec.argv is not None:
        argv, cwd, env = spec.argv, spec.cwd or Path.cwd(), spec.env

        async def command() -> bool:
            return await probe_command(argv, cwd=cwd, env=env, timeout=spec.timeout)

        return command
    if spec.port is None:
        raise ValueError("a probe needs a command or a port")
    host, port = spec.host, spec.port

    async def tcp() -> bool:
        return await probe_tcp(host, port, timeout=spec.timeout)

    return tcp


async def probe_command(
    argv: Sequence[str],
    cwd: str | os.PathLike[str],
    env: Mapping[str, str] | None,
    timeout: float,
) -> bool:
    """True when ``argv`` exits 0 within ``timeout`` seconds. A command that cannot start is a failure."""
    loop = asyncio.get_running_loop()
    try:
        # Popen only forks and execs (no waiting); its exit is awaited through the pidfd below.
        popen = subprocess.Popen(  # noqa: ASYNC220
            list(argv),
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            close_fds=True,
            start_new_session=True,
        )
    except OSError as exc:
        log.debug("health probe %r cannot start: %s", list(argv), exc)
        return False
    pgid = popen.pid

    def kill_group() -> None:
        # Safe while the leader is unreaped (or any member lives): the group id cannot be recycled.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)

    exited = exits.watch_exit(loop, popen.pid, is_child=True, popen=popen, before_reap=kill_group)
    try:
        info = await asyncio.wait_for(asyncio.shield(exited), timeout)
    except TimeoutError:
        kill_group()
        await exited
        return False
    except asyncio.CancelledError:
        kill_group()  # the watch stays registered and reaps it as it dies
        raise
    return info.code == 0


async def probe_tcp(host: str, port: int, timeout: float) -> bool:
    """True when a TCP connection to ``host:port`` is accepted within ``timeout`` seconds."""
    try:
        async with asyncio.timeout(timeout):
            _reader, writer = await asyncio.open_connection(host, port)
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
    except (OSError, TimeoutError):
        return False
    return True


class HealthMonitor:
    """Runs ``probe`` every ``interval`` seconds; ``failure_threshold`` failures in a row → ``on_unhealthy``.

    ``on_unhealthy`` runs in its own task, so that the agent's process object may :meth:`stop` the monitor from the very
    exit handling that the unhealthy verdict triggered without cancelling that handling half-way.
    """

    def __init__(
        self,
        probe: Callable[[], Awaitable[bool]],
        *,
        interval: float,
        failure_threshold: int,
        on_unhealthy: Callable[[str], Awaitable[None]],
        initial_delay: float | None = None,
    ) -> None:
        self.probe = probe
        self.interval = interval
        self.failure_threshold = max(1, failure_threshold)
        self.on_unhealthy = on_unhealthy
        self.initial_delay = interval if initial_delay is None else initial_delay
        self.failures = 0
        self.healthy: bool | None = None
        self._fired = False
        self._task: asyncio.Task[None] | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if self.running:
            return
        self._task = asyncio.get_running_loop().create_task(self._run(), name="health-monitor")

    def stop(self) -> None:
        """Stop probing (a probe in flight is cancelled and its process killed). Safe from inside a handler."""
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def aclose(self) -> None:
        """Stop and wait until the probe loop has ended (handlers already running are left to finish)."""
        task = self._task
        self.stop()
        if task is not None and task is not asyncio.current_task():
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _probe_once(self) -> bool:
        try:
            return bool(await self.probe())
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("health probe raised; counted as a failure")
            return False

    async def _run(self) -> None:
        await asyncio.sleep(self.initial_delay)  # the schedule itself, not a wait for an event
        while True:
            ok = await self._probe_once()
            self.healthy = ok
            if ok:
                self.failures = 0
                self._fired = False
            else:
                self.failures += 1
                if self.failures >= self.failure_threshold and not self._fired:
                    self._fired = True
                    self._fire(f"{self.failures} consecutive health probes failed")
            await asyncio.sleep(self.interval)

    def _fire(self, reason: str) -> None:
        task = asyncio.get_running_loop().create_task(self._call_handler(reason), name="health-unhealthy")
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)

    async def _call_handler(self, reason: str) -> None:
        try:
            await self.on_unhealthy(reason)
        except Exception:
            log.exception("on_unhealthy handler failed")
