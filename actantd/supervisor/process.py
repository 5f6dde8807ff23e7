"""One supervised agent: its process and everything the daemon does to it (in the manner of supervisor's
``Subprocess``).

An :class:`AgentProcess` holds what the daemon knows about an agent's process beyond the persisted record:
the pid and its pidfd exit watch, when it started, the restart tracker and the pending restart, the health
monitor, whether the process was attached, and whether a stop was asked for. Nothing of it is persisted;
after a daemon restart it is rebuilt from the record (re-adoption). Its operations (launch, exit handling,
restart scheduling, terminate, attach, detach) change the record only through its :class:`Owner` — the
instance lifecycle — which persists, journals and publishes each transition in that order.

Locking: every operation that changes the record runs under the instance's lock. Entry points called by
the lifecycle expect the caller to hold it; the ones that start on their own (an exit, a pending restart,
an unhealthy verdict) take it themselves. See docs/architecture.md, "How a crash is handled".
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import signal
import time
from collections.abc import Coroutine
from subprocess import Popen
from typing import TYPE_CHECKING, Any, Protocol

from actantd.acp import attach
from actantd.acp.attach import speaks_acp
from actantd.config.registry import Resolved
from actantd.config.schema import Template
from actantd.errors import ActantError, AgentLaunch
from actantd.instances import secret_env
from actantd.instances.record import InstanceRecord, LastExit, utc_now
from actantd.instances.state import LIVE, Status
from actantd.launch import build_launch_spec
from actantd.paths import Layout
from actantd.supervisor import exits, health, health_watch, kill, policy, retry, spawn, start_check
from actantd.supervisor.retry import is_transient_spawn_error

if TYPE_CHECKING:  # loaded with the first ACP agent (actantd/acp/attach.py), not at daemon start
    from actantd.acp.session import AcpSession

log = logging.getLogger(__name__)

S = Status

LEFTOVER_TIMEOUT = 2.0
"""Seconds descendants an exited agent left behind get between SIGTERM and SIGKILL."""


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
        self.tracker: policy.RestartTracker | None = None
        self.restart_task: asyncio.Task[None] | None = None
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
    def is_live(self) -> bool:
        """A process is being watched and has not exited yet."""
        return self.exit_future is not None and not self.exit_future.done()

    def _spawn_task(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(_log_task_error)
        return task

    def reset_tracker(self, record: InstanceRecord) -> None:
        """A fresh restart budget: a start by the user forgives the crashes before it."""
        template = self._owner.template(record)
        self.tracker = policy.RestartTracker(template.restart if template is not None else policy.DEFAULT_POLICY)

    # -- launch ---------------------------------------------------------------------------------------

    async def launch(self, record: InstanceRecord, reason: str, **changes: Any) -> InstanceRecord:
        """Starting → spawn → Running (or Failed with the reason). Caller holds the lock."""
        owner, name = self._owner, self.name
        try:
            resolved = owner.resolve(record.template_ref)
            instance_env = secret_env.launch_env(record, owner.layout)
            spec = build_launch_spec(
                record, resolved, owner.layout, python=owner.python, instance_env=instance_env,
                caller_env=self.caller_env,
            )  # fmt: skip
        except ActantError as exc:
            if record.status is S.RESTARTING:
                await owner.transition(record, S.FAILED, exc.message)
            raise
        layout = owner.layout
        acp = speaks_acp(resolved, record)
        start = functools.partial(
            spawn.spawn, spec.argv, spec.cwd, spec.env, layout.log_file(name, "stdout"),
            layout.log_file(name, "stderr"), spec.install_hint, stdio_pipes=acp,
        )  # fmt: skip
        spawning: asyncio.Future[spawn.Spawned] | None = None
        if record.status is S.RESTARTING:
            # perf (#13): a restart by policy forks and execs while Starting is being persisted, so the spawn
            # overlaps the two fsyncs instead of following them. Starting is still persisted before it is
            # announced, and Running only after both. Safe to reorder here: a daemon crash in between leaves
            # Restarting on disk, and recovery kills whatever carries the instance before it decides anything.
            spawning = asyncio.ensure_future(asyncio.to_thread(start))
        if record.status is not S.STARTING:
            try:
                record = await owner.transition(record, S.STARTING, reason, **changes)
            except BaseException:
                if spawning is not None:
                    await _discard_spawn(spawning, record.instance_id)
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
        self._watch(spawned.pid, is_child=True, popen=spawned.popen)
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
            self._owner, self._tracker_for(record), record, message, self.schedule_restart
        )

    async def wait_for_early_exit(self, record: InstanceRecord) -> None:
        """Wait briefly for an early exit so ``agent start`` reports it (:mod:`actantd.supervisor.start_check`).
        Called without the lock; raises :class:`AgentLaunch` for a failing early exit."""

        def still_ours(fut: asyncio.Future[exits.ExitInfo]) -> bool:
            return not self.stop_requested and self.exit_future is fut

        await start_check.wait_for_early_exit(self._owner, self.name, record, self.exit_future, still_ours)

    @property
    def restart_pending(self) -> bool:
        return self.restart_task is not None and not self.restart_task.done()

    def adopt(self, record: InstanceRecord, *, supervise: bool = True) -> None:
        """Watch a process a previous daemon started (same pid and create time); ``supervise`` also restores
        the restart budget and the health monitor (not for a process that is being stopped)."""
        assert record.pid is not None
        info = exits.describe_pid(record.pid)
        self.started_mono = time.monotonic() - (max(0.0, time.time() - info.create_time) if info else 0.0)
        self.attached = record.attached
        self._watch(record.pid, is_child=False, popen=None)
        if supervise:
            self.reset_tracker(record)
            self._start_health(record)

    # -- exits and restarts ---------------------------------------------------------------------------

    def _watch(self, pid: int, *, is_child: bool, popen: Popen[bytes] | None) -> None:
        fut = exits.watch_exit(asyncio.get_running_loop(), pid, is_child=is_child, popen=popen)
        self.pid, self.exit_future, self.popen = pid, fut, popen

        def done(f: asyncio.Future[exits.ExitInfo]) -> None:
            if f.cancelled() or self._owner.closing:
                return
            self._spawn_task(self._exit_then_ended(pid, f.result()))

        fut.add_done_callback(done)

    def _unwatch(self) -> None:
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
            if self.tracker is None:
                self.reset_tracker(record)
            assert self.tracker is not None
            decision = self.tracker.on_exit(code=info.code, signal=info.signal, uptime=uptime, requested=False)
            if info.code == 0 and self.health_failure is None:
                record = await owner.transition(record, S.STOPPED, "exited cleanly (code 0)", **gone)
                await self.kill_leftovers(record)
                if decision.restart:
                    self.schedule_restart(decision.delay_seconds, S.STOPPED)
                return True
            record = await owner.transition(record, S.CRASHED, what, **gone)
            await self.kill_leftovers(record)
            if decision.restart:
                record = await owner.transition(
                    record, S.RESTARTING, f"{what}; restarting in {decision.delay_seconds:.2f}s"
                )
                self.schedule_restart(decision.delay_seconds, S.RESTARTING)
            elif decision.give_up:
                # The decision already names the last exit; only a health verdict adds what it saw.
                reason = decision.reason if self.health_failure is None else f"{decision.reason}; {what}"
                await owner.transition(record, S.FAILED, reason)
            return True

    async def kill_leftovers(self, record: InstanceRecord) -> None:
        """Descendants an exited agent left behind (daemonized helpers) must not outlive it.

        Awaited under the instance lock, after the exit is persisted and announced, and before any restart is
        scheduled: the scan matches ``ACTANT_INSTANCE_ID``, which the next process of this instance carries too.
        """
        await kill.terminate_tree(None, instance_id=record.instance_id, timeout=LEFTOVER_TIMEOUT)

    def schedule_restart(self, delay: float, expect: Status) -> None:
        """Launch again after ``delay`` seconds if the instance is then still in ``expect``."""
        self.cancel_restart()
        self.restart_task = self._spawn_task(self._restart_after(delay, expect))

    async def _restart_after(self, delay: float, expect: Status) -> None:
        await asyncio.sleep(delay)  # the backoff itself, not a wait for an event
        owner, name = self._owner, self.name
        async with owner.lock(name):
            record = owner.current(name)
            if record is None or record.status is not expect or owner.shutting_down:
                return
            self.restart_task = None
            try:
                await self.launch(record, "restarted by policy", restart_count=record.restart_count + 1)
            except ActantError as exc:  # the launch recorded Failed where it could; say why in any case
                owner.event("instance", name, event="restartFailed", reason=exc.message)
                current = owner.current(name)
                if current is not None and current.status is S.RESTARTING and self.restart_task is None:
                    # Nothing could be recorded (the Starting write failed: full disk, deleted directory):
                    # still pending, so try again after the backoff rather than never (class 3 / 4).
                    await self._retry_pending(current, exc.message)

    async def _retry_pending(self, record: InstanceRecord, message: str) -> None:
        """Schedule another attempt for a Restarting instance whose launch failed before it began."""
        await retry.retry_pending(self._owner, self._tracker_for(record), record, message, self.schedule_restart)

    def _tracker_for(self, record: InstanceRecord) -> policy.RestartTracker:
        if self.tracker is None:
            self.reset_tracker(record)
        assert self.tracker is not None
        return self.tracker

    def cancel_restart(self) -> None:
        if self.restart_task is not None:
            if self.restart_task is not asyncio.current_task():
                self.restart_task.cancel()
            self.restart_task = None

    # -- stop, attach, detach -------------------------------------------------------------------------

    async def terminate(self, record: InstanceRecord, reason: str, timeout: float | None) -> InstanceRecord:
        """Stopping → signal the whole tree, wait, SIGKILL what is left → Stopped. Caller holds the lock.

        Never leaves the instance in Stopping: a failure to terminate is recorded in the Stopped reason."""
        owner = self._owner
        if record.status is not S.STOPPING:
            record = await owner.transition(record, S.STOPPING, reason)
        self.stop_requested = True
        self.stop_health()
        template = owner.template(record)
        sig = template.stop_signal_number if template is not None else signal.SIGTERM
        wait = timeout if timeout is not None else (template.stop_timeout_seconds if template else 10.0)
        problem = None
        try:
            await kill.terminate_tree(
                record.pid, instance_id=record.instance_id, sig=sig, timeout=wait, exited=self.exit_future
            )
        except Exception as exc:  # never leave an instance in Stopping: record what went wrong instead
            log.error("%s: stop failed: %r", self.name, exc)
            problem = f"stopped, but terminating the process failed: {exc}"
        fut = self.exit_future
        info = fut.result() if fut is not None and fut.done() and not fut.cancelled() else None
        last = LastExit(code=info.code, signal=info.signal, at=utc_now()) if info else record.last_exit
        self.attached = False
        return await owner.transition(
            record, S.STOPPED, problem or "stopped", pid=None, pid_create_time=None, stopped_at=utc_now(),
            last_exit=last, attached=False,
        )  # fmt: skip

    async def attach(self, record: InstanceRecord, pid: int, create_time: float) -> InstanceRecord:
        """Supervise a process Actant did not start: watched and stopped, never restarted. Caller holds the lock."""
        owner = self._owner
        self.cancel_restart()
        record = await owner.transition(record, S.STARTING, f"attach to pid {pid}")
        self.started_mono = time.monotonic() - max(0.0, time.time() - create_time)
        record = await owner.transition(
            record, S.RUNNING, f"attached to pid {pid}", pid=pid, pid_create_time=create_time,
            attached=True, launched_at=utc_now(),
        )  # fmt: skip
        self.attached = True
        self._watch(pid, is_child=False, popen=None)
        return record

    async def detach(self, record: InstanceRecord) -> InstanceRecord:
        """Stop supervising an attached process, leaving it running. Caller holds the lock."""
        self.stop_health()
        self._unwatch()
        self.exit_future = None
        self.attached = False
        return await self._owner.transition(
            record, S.STOPPED, f"detached from pid {record.pid}", pid=None, pid_create_time=None,
            attached=False, stopped_at=utc_now(),
        )  # fmt: skip

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
        self._unwatch()

    def close(self) -> None:
        """Drop everything in flight: health monitor, pending restart, exit watch, background tasks."""
        attach.close_session(self.acp)
        self.stop_health()
        if self.restart_task is not None:
            self.restart_task.cancel()
        self._unwatch()
        for task in list(self._tasks):
            task.cancel()


async def _discard_spawn(spawning: asyncio.Future[spawn.Spawned], instance_id: str) -> None:
    """A process spawned ahead of a Starting write that then failed: it must not live (nor stay a zombie)."""
    try:
        spawned = await spawning
    except Exception:  # the spawn failed too: nothing to discard
        return
    loop = asyncio.get_running_loop()
    exited = exits.watch_exit(loop, spawned.pid, is_child=True, popen=spawned.popen)
    await kill.terminate_tree(spawned.pid, instance_id=instance_id, timeout=LEFTOVER_TIMEOUT, exited=exited)


def _log_task_error(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("background task failed", exc_info=task.exception())
