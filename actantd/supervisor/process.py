"""One supervised agent: its process and everything the daemon does to it (in the manner of supervisor's
``Subprocess``).

An :class:`AgentProcess` holds what the daemon knows about an agent's process beyond the persisted record:
the pid and its pidfd exit watch, when it started, the restart tracker and the pending restart, the health
monitor, whether the process was attached, and whether a stop was asked for. Nothing of it is persisted;
after a daemon restart it is rebuilt from the record (re-adoption). Its operations (launch, exit handling,
restart scheduling, terminate, attach, detach) change the record only through its :class:`Owner` — the
instance lifecycle — which persists, journals and publishes each transition in that order. This module runs
and watches the process; :mod:`.restarts` (budget, pending restart) and :mod:`.control` (stop, attach,
detach) are the parts split out of it, still on this one object's state.

Locking: every operation that changes the record runs under the instance's lock. Entry points called by
the lifecycle expect the caller to hold it; the ones that start on their own (an exit, a pending restart,
an unhealthy verdict) take it themselves. See docs/architecture.md, "How a crash is handled".
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Coroutine, Sequence
from subprocess import Popen
from typing import TYPE_CHECKING, Any, Protocol

from actantd.acp import attach
from actantd.acp.attach import speaks_acp
from actantd.config.registry import Resolved
from actantd.config.schema import Template
from actantd.errors import ActantError, AgentLaunch
from actantd.instances import secret_env
from actantd.instances.record import InstanceRecord, LastExit, Step, utc_now
from actantd.instances.state import LIVE, Status
from actantd.launch import LaunchSpec, build_launch_spec
from actantd.paths import Layout
from actantd.supervisor import control, exits, health, health_watch, kill, policy, retry, spawn, start_check
from actantd.supervisor.control import LEFTOVER_TIMEOUT
from actantd.supervisor.restarts import Restarts
from actantd.supervisor.retry import is_transient_spawn_error

if TYPE_CHECKING:  # loaded with the first ACP agent (actantd/acp/attach.py), not at daemon start
    from actantd.acp.session import AcpSession

log = logging.getLogger(__name__)

S = Status


class Owner(Protocol):
    """What an :class:`AgentProcess` needs of the instance lifecycle (:class:`~actantd.instances.lifecycle.
    Lifecycle` implements it): the current record, the instance lock, and the one way to change state."""

    layout: Layout
    python: str

    @property
    def shutting_down(self) -> bool: ...

    @property
    def closing(self) -> bool: ...

    def current(self, name: str) -> InstanceRecord | None: ...

    def lock(self, name: str) -> asyncio.Lock: ...

    def template(self, record: InstanceRecord) -> Template | None: ...

    def resolve(self, template_ref: str) -> Resolved: ...

    async def transition(self, record: InstanceRecord, to: Status, reason: str, **changes: Any) -> InstanceRecord: ...

    async def transitions(self, record: InstanceRecord, steps: Sequence[Step]) -> InstanceRecord: ...

    def event(self, type_: str, agent: str | None, **data: Any) -> None: ...

    async def process_ended(self, name: str) -> None: ...

    def emit(self, type_: str, agent: str | None, data: dict[str, Any], *, journal: bool) -> int: ...

    async def update(self, name: str, instance_id: str, **changes: Any) -> InstanceRecord | None: ...


class AgentProcess:
    def __init__(self, name: str, owner: Owner) -> None:
        self.name = name
        self._owner = owner
        self.pid: int | None = None
        self.exit_future: asyncio.Future[exits.ExitInfo] | None = None
        self.popen: Popen[bytes] | None = None
        self.started_mono = 0.0
        self.restarts = Restarts(name, owner, self.relaunch, self._spawn_task)
        self.health: health.HealthMonitor | None = None
        self.health_failure: str | None = None
        self.attached = False
        self.stop_requested = False
        """Set by a stop, cleared by a launch: an exit it caused is never reported as a failed start."""
        self.caller_env: dict[str, str] = {}
        """The PATH and locale of the last client that created or started this agent (not persisted)."""
        self._tasks: set[asyncio.Task[Any]] = set()
        self.acp: AcpSession | None = None
        """The live ACP session when the backend speaks ACP on stdio (``"protocol": "acp"``)."""

    @property
    def owner(self) -> Owner:
        return self._owner

    @property
    def is_live(self) -> bool:
        """A process is being watched and has not exited yet."""
        return self.exit_future is not None and not self.exit_future.done()

    def _spawn_task(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(_log_task_error)
        return task

    # -- restarts (:mod:`.restarts`) -------------------------------------------------------------------

    @property
    def tracker(self) -> policy.RestartTracker | None:
        return self.restarts.tracker

    @property
    def restart_task(self) -> asyncio.Task[None] | None:
        return self.restarts.task

    @property
    def restart_pending(self) -> bool:
        return self.restarts.pending

    def reset_tracker(self, record: InstanceRecord) -> None:
        self.restarts.reset(record)

    def schedule_restart(self, delay: float, expect: Status) -> None:
        self.restarts.schedule(delay, expect)

    def cancel_restart(self) -> None:
        self.restarts.cancel()

    async def relaunch(
        self, record: InstanceRecord, prelude: Sequence[Step] = (), before_spawn: Awaitable[None] | None = None
    ) -> InstanceRecord:
        """Launch again by policy (``restartCount + 1``); the rest as in :meth:`launch`. Caller holds the lock."""
        return await self.launch(
            record, "restarted by policy", prelude=prelude, before_spawn=before_spawn,
            restart_count=record.restart_count + 1,
        )  # fmt: skip

    # -- launch ---------------------------------------------------------------------------------------

    async def launch(
        self, record: InstanceRecord, reason: str, *, prelude: Sequence[Step] = (),
        before_spawn: Awaitable[None] | None = None, **changes: Any,
    ) -> InstanceRecord:  # fmt: skip
        """Starting → spawn → Running (or Failed with the reason). Caller holds the lock.

        ``prelude``: transitions still to be recorded before Starting (a crash restarted at once: Crashed,
        Restarting); they share Starting's one durable write (``Owner.transitions``). ``before_spawn`` is
        awaited before the process is spawned, while that write is in flight (the previous process's
        leftovers, among which the new one would otherwise be)."""
        owner, name = self._owner, self.name
        try:
            resolved, spec = self._spec(record)
        except ActantError as exc:
            if before_spawn is not None:
                await before_spawn
            if prelude:
                await owner.transitions(record, [*prelude, Step(S.FAILED, exc.message)])
            elif record.status is S.RESTARTING:
                await owner.transition(record, S.FAILED, exc.message)
            raise
        layout = owner.layout
        acp = speaks_acp(resolved, record)
        start = functools.partial(
            spawn.spawn, spec.argv, spec.cwd, spec.env, layout.log_file(name, "stdout"),
            layout.log_file(name, "stderr"), spec.install_hint, stdio_pipes=acp,
        )  # fmt: skip
        steps = [*prelude, Step(S.STARTING, reason, changes)] if record.status is not S.STARTING else []
        writing = asyncio.ensure_future(owner.transitions(record, steps)) if steps else None
        spawning: asyncio.Future[spawn.Spawned] | None = None
        if before_spawn is not None:
            await before_spawn
        if prelude or record.status is S.RESTARTING:
            # perf (#13): a restart by policy forks and execs while Starting is being persisted, so the spawn
            # overlaps the fsyncs instead of following them. Starting is still persisted before it is
            # announced, and Running only after both. Safe to reorder here: a daemon crash in between leaves
            # Running (a dead pid) or Restarting on disk, and recovery kills whatever carries the instance
            # before it decides anything.
            spawning = asyncio.ensure_future(asyncio.to_thread(start))
        if writing is not None:
            try:
                record = await writing
            except BaseException:
                if spawning is not None:
                    await control.discard_spawn(spawning, record.instance_id)
                if prelude:  # the crash itself must still be recorded (kept in memory if the disk refuses)
                    with contextlib.suppress(ActantError):
                        await owner.transitions(record, prelude)
                raise
        try:
            spawned = await (spawning if spawning is not None else asyncio.to_thread(start))
        except Exception as exc:
            launch = exc if isinstance(exc, AgentLaunch) else AgentLaunch(f"{name}: could not start: {exc}", agent=name)
            launch.context.setdefault("agent", name)
            if is_transient_spawn_error(exc) and await self._retry_transient(record, launch.message):
                launch.context["retrying"] = True
            else:
                await owner.transition(record, S.FAILED, launch.message, pid=None, pid_create_time=None)
            if launch is exc:
                raise
            raise launch from exc
        self.started_mono = time.monotonic()
        self.health_failure = None
        self.stop_requested = False
        self.attached = False
        # Watch first: whatever happens next, the child is reaped and its exit seen.
        self.watch(spawned.pid, is_child=True, popen=spawned.popen)
        try:
            record = await owner.transition(
                record, S.RUNNING, reason, pid=spawned.pid, pid_create_time=spawned.create_time,
                launched_at=utc_now(), attached=False,
            )  # fmt: skip
        except ActantError:
            # Running could not be persisted (disk full...): a process nobody would know about must not live.
            await kill.terminate_tree(
                spawned.pid, instance_id=record.instance_id, timeout=LEFTOVER_TIMEOUT, exited=self.exit_future
            )
            with contextlib.suppress(ActantError):
                await owner.transition(record, S.FAILED, "could not record the started process; it was stopped")
            raise
        self._start_health(record)
        if acp:
            await self._start_acp(record, resolved, spawned)
        return record

    def _spec(self, record: InstanceRecord) -> tuple[Resolved, LaunchSpec]:
        owner = self._owner
        resolved = owner.resolve(record.template_ref)
        instance_env = secret_env.launch_env(record, owner.layout)
        spec = build_launch_spec(
            record, resolved, owner.layout, python=owner.python, instance_env=instance_env, caller_env=self.caller_env
        )
        return resolved, spec

    async def _start_acp(self, record: InstanceRecord, resolved: Resolved, spawned: spawn.Spawned) -> None:
        """Talk ACP on the new process's stdio; the handshake runs in the background (actantd/acp/attach.py)."""
        attach.close_session(self.acp)
        session = await attach.open_session(self._owner, self.name, record, resolved, spawned.popen)
        self.acp = session
        self._spawn_task(attach.handshake(self._owner, self.name, session, record.instance_id, record.acp_session_id))

    def start_check_seconds(self, record: InstanceRecord) -> float:
        """How long ``agent start`` watches for an early exit (:func:`start_check.start_check_seconds`)."""
        return start_check.start_check_seconds(self._owner, record)

    async def _retry_transient(self, record: InstanceRecord, message: str) -> bool:
        """A resource shortage: wait out the backoff (:func:`retry.retry_shortage`). Caller holds the lock."""
        if self._owner.shutting_down:
            return False
        return await retry.retry_shortage(
            self._owner, self.restarts.tracker_for(record), record, message, self.schedule_restart
        )

    async def wait_for_early_exit(self, record: InstanceRecord) -> None:
        """Wait briefly for an early exit so ``agent start`` reports it (:mod:`actantd.supervisor.start_check`).
        Called without the lock; raises :class:`AgentLaunch` for a failing early exit."""

        def still_ours(fut: asyncio.Future[exits.ExitInfo]) -> bool:
            return not self.stop_requested and self.exit_future is fut

        await start_check.wait_for_early_exit(self._owner, self.name, record, self.exit_future, still_ours)

    def adopt(self, record: InstanceRecord, *, supervise: bool = True) -> None:
        """Watch a process a previous daemon started (same pid and create time); ``supervise`` also restores
        the restart budget and the health monitor (not for a process that is being stopped)."""
        assert record.pid is not None
        info = exits.describe_pid(record.pid)
        self.started_mono = time.monotonic() - (max(0.0, time.time() - info.create_time) if info else 0.0)
        self.attached = record.attached
        self.watch(record.pid, is_child=False, popen=None)
        if supervise:
            self.reset_tracker(record)
            self._start_health(record)

    # -- exits and restarts ---------------------------------------------------------------------------

    def watch(self, pid: int, *, is_child: bool, popen: Popen[bytes] | None) -> None:
        fut = exits.watch_exit(asyncio.get_running_loop(), pid, is_child=is_child, popen=popen)
        self.pid, self.exit_future, self.popen = pid, fut, popen

        def done(f: asyncio.Future[exits.ExitInfo]) -> None:
            if f.cancelled() or self._owner.closing:
                return
            self._spawn_task(self._exit_then_ended(pid, f.result()))

        fut.add_done_callback(done)

    def unwatch(self) -> None:
        if self.exit_future is not None and not self.exit_future.done():
            exits.unwatch(self.exit_future)

    async def _exit_then_ended(self, pid: int, info: exits.ExitInfo) -> None:
        """Exit handling, then the owner's say on a process that ended by itself (the Ephemeral workspace
        policy). Not after a stop (``agent stop`` is not the end of the agent's work, so ``restart`` keeps
        working), a newer launch, or the exit of an attached process (``agent open``, ``agent attach``: not
        Actant's process, and its CLI detaches it, racing this exit)."""
        if await self._on_exit(pid, info):
            await self._owner.process_ended(self.name)

    async def _on_exit(self, pid: int, info: exits.ExitInfo) -> bool:
        """The process exited: record it, then let the restart policy decide (docs/architecture.md).

        True when this exit ended the instance's own process by itself (not a stop, a newer launch or an
        attached process)."""
        owner, name = self._owner, self.name
        async with owner.lock(name):
            record = owner.current(name)
            if record is None or record.pid != pid or record.status not in LIVE:
                return False  # a stop or a newer launch owns this instance now
            self.stop_health()
            last = LastExit(code=info.code, signal=info.signal, at=utc_now())
            gone: dict[str, Any] = {"pid": None, "pid_create_time": None, "last_exit": last, "stopped_at": utc_now()}
            if record.attached:
                self.attached = False
                await owner.transition(record, S.STOPPED, "attached process exited", attached=False, **gone)
                return False
            uptime = time.monotonic() - self.started_mono
            what = self.health_failure or info.describe()
            if record.launch_mode == "OneShot" and info.code == 0:
                record = await owner.transition(record, S.STOPPED, "completed (exit code 0)", **gone)
                await self.kill_leftovers(record)
                return True
            await self.restarts.on_exit(
                record, info, uptime=uptime, what=what, health_failed=self.health_failure is not None, gone=gone,
                kill_leftovers=self.kill_leftovers,
            )  # fmt: skip
            return True

    async def kill_leftovers(self, record: InstanceRecord) -> None:
        """:func:`.control.kill_leftovers`: what the exited process left behind must not outlive it."""
        await control.kill_leftovers(record)

    # -- stop, attach, detach (:mod:`.control`; caller holds the lock) ---------------------------------

    async def terminate(self, record: InstanceRecord, reason: str, timeout: float | None) -> InstanceRecord:
        return await control.terminate(self, record, reason, timeout)

    async def attach(self, record: InstanceRecord, pid: int, create_time: float) -> InstanceRecord:
        return await control.attach(self, record, pid, create_time)

    async def detach(self, record: InstanceRecord) -> InstanceRecord:
        return await control.detach(self, record)

    # -- health ---------------------------------------------------------------------------------------

    def _start_health(self, record: InstanceRecord) -> None:
        monitor = health_watch.start_monitor(self._owner, record, self._on_unhealthy)
        if monitor is not None:
            self.health = monitor

    def stop_health(self) -> None:
        if self.health is not None:
            self.health.stop()
            self.health = None

    async def _on_unhealthy(self, pid: int | None, reason: str) -> None:
        """Kill the unhealthy process; its exit then goes through the restart policy like any crash."""

        def mark(failure: str) -> None:
            self.health_failure = failure

        await health_watch.kill_unhealthy(
            self._owner, self.name, pid, reason, mark=mark, exited=lambda: self.exit_future
        )

    # -- teardown -------------------------------------------------------------------------------------

    def release(self) -> None:
        """Stop probing and watching (the instance is being destroyed; its process is already stopped)."""
        self.stop_health()
        self.unwatch()

    def close(self) -> None:
        """Drop everything in flight: health monitor, pending restart, exit watch, background tasks."""
        attach.close_session(self.acp)
        self.stop_health()
        if self.restarts.task is not None:
            self.restarts.task.cancel()
        self.unwatch()
        for task in list(self._tasks):
            task.cancel()


def _log_task_error(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("background task failed", exc_info=task.exception())
