"""The one place that changes instances (DESIGN §4 to §6).

Every mutation of an instance runs under that instance's lock, so mutations of one instance are serialized
while different instances proceed in parallel; reads never take a lock and see the last persisted record.
A transition is checked against the table, persisted to ``.actant.json``, journaled, and only then
published: a subscriber never hears of a state that a crash could still undo.

Supervision is event driven: each process has a pidfd watched by the event loop; its readiness runs
:meth:`Manager._on_exit`, which applies the restart policy. Re-adopted processes (alive after a daemon
restart, same pid and create time) are watched the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from subprocess import Popen
from typing import Any

import msgspec

from actantd import materialize
from actantd.config.schema import Template, expand_argv, expand_env
from actantd.errors import (
    ActantError,
    AgentAlreadyAttached,
    AgentAlreadyRunning,
    AgentExists,
    AgentLaunch,
    AgentNotAttached,
    AgentNotFound,
    DaemonBusy,
    InvalidParams,
    NotSupported,
    WorkspaceInit,
)
from actantd.events import EventBus
from actantd.instances.record import InstanceRecord, LastExit, Overrides, new_record, to_dict, utc_now
from actantd.instances.state import ACTIVE, STARTABLE, Status, check_transition
from actantd.instances.store import InstanceStore, validate_name
from actantd.journal import Journal
from actantd.paths import Layout
from actantd.supervisor import exits, health, kill, logs, metrics, policy, procfs, spawn

log = logging.getLogger(__name__)

S = Status
_DAEMON_ONLY_ENV = frozenset({"NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "WATCHDOG_USEC"})
"""systemd hands these to the daemon; an agent that inherited them could answer for the daemon."""
START_GRACE_MAX = 1.0
"""``agent start`` waits at most this long (bounded by ``minUptimeSeconds``) to report an immediate crash."""


@dataclass
class Runtime:
    """What the daemon knows about an instance beyond its record; rebuilt on restart, never persisted."""

    exit_future: asyncio.Future[exits.ExitInfo] | None = None
    popen: Popen[bytes] | None = None
    started_mono: float = 0.0
    restart_task: asyncio.Task[None] | None = None
    health: health.HealthMonitor | None = None
    health_failure: str | None = None
    stop_requested: bool = False
    """Set by a stop, cleared by a launch: an exit it caused is never reported as a failed start."""
    tracker: policy.RestartTracker | None = None
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)


class Manager:
    def __init__(
        self,
        layout: Layout,
        registry: Callable[[], Any],
        journal: Journal,
        bus: EventBus,
        *,
        python: str = sys.executable,
    ) -> None:
        self.layout = layout
        self._registry = registry
        self.journal = journal
        self.bus = bus
        self.python = python
        self.store = InstanceStore(layout)
        self.records: dict[str, InstanceRecord] = {}
        self.too_new: dict[str, int] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._rt: dict[str, Runtime] = {}
        self.sampler = metrics.MetricsSampler()
        self._background: set[asyncio.Task[Any]] = set()
        self._closing = False
        self._shutting_down = False

    # -- plumbing ------------------------------------------------------------------------------------

    @property
    def registry(self) -> Any:
        return self._registry()

    def _lock(self, name: str) -> asyncio.Lock:
        lock = self._locks.get(name)
        if lock is None:
            lock = self._locks[name] = asyncio.Lock()
        return lock

    def _runtime(self, name: str) -> Runtime:
        rt = self._rt.get(name)
        if rt is None:
            rt = self._rt[name] = Runtime()
        return rt

    def _spawn_task(self, coro: Any, owner: Runtime | None = None) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        holder = owner.tasks if owner is not None else self._background
        holder.add(task)
        task.add_done_callback(holder.discard)
        task.add_done_callback(_log_task_error)
        return task

    def get(self, name: str) -> InstanceRecord:
        record = self.records.get(name)
        if record is None:
            raise AgentNotFound(f"no agent named {name!r}", agent=name)
        return record

    def workspace(self, record: InstanceRecord) -> Path:
        return Path(record.work_dir) if record.work_dir else self.layout.instance_dir(record.name)

    def _publish(self, entry: dict[str, Any]) -> None:
        self.bus.publish(entry)

    def _event(self, type_: str, agent: str | None, **data: Any) -> None:
        """Journal then publish a non-transition event."""
        entry = self.journal.record(type_, agent, **data)
        self._publish(entry)

    async def _transition(self, record: InstanceRecord, to: Status, reason: str, **changes: Any) -> InstanceRecord:
        """Check, persist, journal, publish — in that order. A failed write changes nothing.

        The write (two fsyncs) runs in a worker thread: the caller holds the instance's lock, so the order of
        one instance's transitions is kept, while fsyncs of different instances overlap (the filesystem
        commits them together) and reads never wait behind a disk flush.
        """
        check_transition(record.status, to, name=record.name)
        new = msgspec.structs.replace(record, status=to, reason=reason, updated_at=utc_now(), **changes)
        await asyncio.to_thread(self.store.write, new)
        self.records[record.name] = new
        entry = self.journal.transition(record.name, record.status.value, to.value, reason)
        self._publish(entry)
        return new

    def _template(self, record: InstanceRecord) -> Template | None:
        return self.registry.templates.get(record.template_ref)  # type: ignore[no-any-return]

    # -- startup recovery ----------------------------------------------------------------------------

    async def initialize(self) -> None:
        """Scan, quarantine, migrate, then recover instances whose process the last daemon left behind."""
        result = self.store.scan()
        for name, reason, dest in result.quarantined:
            log.warning("quarantined instances/%s: %s", name, reason)
            self._event("instance", name, event="quarantined", reason=reason, path=dest)
        for name, version in result.too_new:
            log.warning("instances/%s: schemaVersion %s is newer than this daemon; left untouched", name, version)
            self.too_new[name] = version
            self._event("instance", name, event="schemaTooNew", schemaVersion=version)
        for name in result.migrated:
            self._event("instance", name, event="migrated")
        self.records = dict(result.records)
        for record in list(self.records.values()):
            if record.status in ACTIVE or record.status in (S.RESTARTING, S.CRASHED):
                async with self._lock(record.name):
                    try:
                        await self._recover(record)
                    except Exception as exc:  # one bad instance must never keep the daemon from starting
                        message = exc.message if isinstance(exc, ActantError) else repr(exc)
                        log.error("instances/%s: recovery failed: %s", record.name, message)
                        self._event("instance", record.name, event="recoveryFailed", reason=message)

    def _is_our_process(self, record: InstanceRecord) -> bool:
        """The recorded process is still the one this instance ran: same pid *and* create time, and (for a
        process we spawned) our instance id in its environment. Anything less is someone else's process."""
        pid, created = record.pid, record.pid_create_time
        if pid is None or created is None or pid <= 1 or not exits.is_same_process(pid, created):
            return False
        return record.attached or procfs.has_env(pid, f"\0ACTANT_INSTANCE_ID={record.instance_id}\0".encode())

    async def _recover(self, record: InstanceRecord) -> None:
        name = record.name
        pid = record.pid
        alive = self._is_our_process(record)
        if alive and pid is not None and record.status in (S.RUNNING, S.STARTING):
            if record.status is S.STARTING:
                record = await self._transition(record, S.RUNNING, "re-adopted after daemon restart")
            else:
                self._event("instance", name, event="adopted", pid=record.pid)
            rt = self._runtime(name)
            rt.started_mono = time.monotonic() - _uptime_of(pid)
            rt.tracker = self._tracker(record)
            self._watch(name, pid, is_child=False, popen=None)
            self._start_health(record)
            return
        if alive and pid is not None and record.status is S.STOPPING:
            self._watch(name, pid, is_child=False, popen=None)
            await self._terminate(record, "stop resumed after daemon restart", None)
            return
        # The process is gone (or its pid now belongs to someone else): make sure nothing of it lingers.
        await self._kill_leftovers(record)
        if record.status is S.STOPPING:  # the user was stopping it: it stays stopped
            await self._transition(record, S.STOPPED, "stopped (finished after daemon restart)", pid=None,
                             pid_create_time=None, stopped_at=utc_now())  # fmt: skip
            return
        if record.status in ACTIVE:
            record = await self._transition(record, S.STOPPED, "process lost", pid=None, pid_create_time=None,
                                      stopped_at=utc_now())  # fmt: skip
        elif record.status is S.RESTARTING:
            record = await self._transition(record, S.STOPPED, "daemon restarted during restart backoff")
        else:  # Crashed: a restart that was never scheduled
            record = await self._transition(record, S.STOPPED, "daemon restarted before the crash was handled")
        template = self._template(record)
        if template is not None and not record.attached and template.restart.policy != "Never":
            rt = self._runtime(name)
            rt.tracker = self._tracker(record)
            self._schedule_restart(name, 0.0, record.status)

    # -- create / destroy ----------------------------------------------------------------------------

    async def create(
        self, name: str, template: str, work_dir: str | None = None, overrides: dict[str, Any] | None = None
    ) -> InstanceRecord:
        validate_name(name)
        try:
            ov = msgspec.convert(overrides or {}, Overrides)
        except msgspec.ValidationError as exc:
            raise InvalidParams(f"overrides: {exc}", agent=name) from exc
        if work_dir is not None:
            work_dir = str(Path(work_dir).expanduser().resolve())
        async with self._lock(name):
            existing = self.records.get(name)
            if existing is not None:
                if (existing.template_ref, existing.work_dir, existing.overrides) == (template, work_dir, ov):
                    return existing  # idempotent: same arguments, nothing to change
                raise AgentExists(
                    f"agent {name!r} already exists (template {existing.template_ref!r})",
                    agent=name,
                    template=existing.template_ref,
                )
            if self.store.exists(name):
                raise AgentExists(f"instances/{name} exists but is not loaded (see daemon status)", agent=name)
            resolved = self.registry.resolve(template)
            planned = materialize.plan(resolved)
            if work_dir is not None:
                self._check_work_dir(name, Path(work_dir), planned)
            tpl: Template = resolved.template
            base = new_record(
                name=name,
                template_ref=template,
                launch_mode=tpl.launch_mode,
                workspace_policy=tpl.workspace_policy,
                work_dir=work_dir,
                overrides=ov,
            )
            # The Initializing record lists the files before they are written (see materialize.plan).
            initializing = msgspec.structs.replace(
                base, status=S.INITIALIZING, updated_at=utc_now(), materialized=sorted(planned)
            )

            def populate(workspace: Path) -> InstanceRecord:
                self.store.write_at(workspace, initializing)
                try:
                    files = materialize.write(workspace, planned)
                except ActantError:
                    raise
                except OSError as exc:
                    raise WorkspaceInit(f"{name}: could not write the workspace: {exc}", agent=name) from exc
                return msgspec.structs.replace(
                    initializing, status=S.READY, materialized=files, updated_at=utc_now(), reason="created"
                )

            final = await asyncio.to_thread(self.store.create, base, populate)
            self.records[name] = final
            self._event("instance", name, event="created", template=template, workDir=work_dir)
            for src, dst in ((S.CREATED, S.INITIALIZING), (S.INITIALIZING, S.READY)):
                self._publish(self.journal.transition(name, src.value, dst.value, "created"))
            return final

    async def destroy(self, name: str, force: bool = False) -> bool:
        record = self.records.get(name)
        if record is None:
            if force:
                return False  # idempotent: destroying what is not there succeeds
            raise AgentNotFound(f"no agent named {name!r}", agent=name)
        self._cancel_restart(name)
        async with self._lock(name):
            record = self.records.get(name)
            if record is None:
                return False  # destroyed by a call queued ahead of this one
            self._cancel_restart(name)
            if record.status in ACTIVE or record.status in (S.RESTARTING, S.CRASHED):
                if not force and record.status is not S.CRASHED:
                    raise AgentAlreadyRunning(
                        f"agent {name!r} is {record.status.value}; stop it first or pass --force",
                        agent=name,
                        status=record.status.value,
                    )
                if record.status in (S.STARTING, S.RUNNING):
                    record = await self._terminate(record, "destroy requested", None)
            rt = self._rt.get(name)
            if rt is not None:
                self._stop_health(rt)
                if rt.exit_future is not None and not rt.exit_future.done():
                    exits.unwatch(rt.exit_future)
            await asyncio.to_thread(self.store.destroy, name)
            shutil.rmtree(self.layout.log_dir(name), ignore_errors=True)
            self.records.pop(name, None)
            rt = self._rt.pop(name, None)
            if rt is not None:
                for task in list(rt.tasks):
                    task.cancel()
            self._event("instance", name, event="destroyed")
        # The lock stays: a caller may already be waiting on it, and a second lock for the same name would let
        # two creates run at once.
        return True

    async def sync(self, name: str) -> InstanceRecord:
        """Re-materialize the workspace from the current configs (also run on hot reload)."""
        async with self._lock(name):
            record = self.get(name)
            resolved = self.registry.resolve(record.template_ref)
            files = await asyncio.to_thread(materialize.materialize, self.workspace(record), resolved)
            if files != record.materialized:
                record = msgspec.structs.replace(record, materialized=files, updated_at=utc_now())
                self.store.write(record)
                self.records[name] = record
            self._event("instance", name, event="synced", files=files)
            return record

    def _check_work_dir(self, name: str, work_dir: Path, planned: dict[str, str]) -> None:
        """A --work-dir is the user's: Actant takes over nothing in it and never shares it between instances."""
        if not work_dir.is_dir():
            raise WorkspaceInit(f"--work-dir {work_dir}: not an existing directory", agent=name, workDir=str(work_dir))
        home = self.layout.home.resolve()
        if work_dir == home or home in work_dir.parents or work_dir in home.parents:
            raise WorkspaceInit(f"--work-dir {work_dir} overlaps Actant's home {home}", agent=name)
        for other in self.records.values():
            ws = self.workspace(other).resolve()
            if work_dir == ws or ws in work_dir.parents or work_dir in ws.parents:
                raise WorkspaceInit(
                    f"--work-dir {work_dir} overlaps the workspace of agent {other.name!r}",
                    agent=name,
                    other=other.name,
                )
        if (work_dir / ".actant.json").exists():
            raise WorkspaceInit(f"--work-dir {work_dir} already holds an instance (.actant.json)", agent=name)
        taken = sorted(rel for rel in planned if os.path.lexists(work_dir / rel))
        if taken:
            raise WorkspaceInit(
                f"--work-dir {work_dir} already has {', '.join(taken)}; Actant never overwrites files it did not "
                "write (move them aside, or use a workspace under Actant's home)",
                agent=name,
                files=taken,
            )

    # -- start ---------------------------------------------------------------------------------------

    def _command(self, record: InstanceRecord) -> tuple[list[str], dict[str, str], str | None]:
        resolved = self.registry.resolve(record.template_ref)
        template: Template = resolved.template
        backend = resolved.backend
        argv = template.command or (backend.service if backend is not None else None)
        if not argv:
            raise AgentLaunch(
                f"template {template.name!r} has no command and backend {template.backend!r} no service argv",
                agent=record.name,
            )
        workspace = str(self.workspace(record))
        values = {"python": self.python, "workspace": workspace, "name": record.name,
                  "configs": str(self.layout.configs)}  # fmt: skip
        env = {k: v for k, v in os.environ.items() if k not in _DAEMON_ONLY_ENV}
        if backend is not None:
            env.update(expand_env(backend.env, **values))
        env.update(expand_env(template.env, **values))
        env.update(record.overrides.env)
        env.update(
            ACTANT_INSTANCE=record.name,
            ACTANT_INSTANCE_ID=record.instance_id,
            ACTANT_WORKSPACE=workspace,
            ACTANT_TEMPLATE=record.template_ref,
        )
        hint = backend.install if backend is not None else None
        return expand_argv(argv, **values), env, hint

    def _tracker(self, record: InstanceRecord) -> policy.RestartTracker:
        template = self._template(record)
        return policy.RestartTracker(template.restart if template is not None else policy.DEFAULT_POLICY)

    async def start(self, name: str, wait: bool = True) -> InstanceRecord:
        self._refuse_if_shutting_down(name)
        async with self._lock(name):
            self._refuse_if_shutting_down(name)
            record = self.get(name)
            rt = self._runtime(name)
            live = rt.exit_future is not None and not rt.exit_future.done()
            if record.status is S.RUNNING or (record.status is S.STARTING and live):
                return record  # idempotent
            if record.status is S.STOPPING:
                raise AgentAlreadyRunning(f"agent {name!r} is stopping; try again when it has stopped", agent=name)
            # A Starting with no process behind it is left over from a launch whose failure could not be
            # recorded (disk full): starting again is how the user recovers it.
            if record.status not in STARTABLE and record.status not in (S.RESTARTING, S.STARTING):
                raise AgentLaunch(f"agent {name!r} is {record.status.value} and cannot start", agent=name)
            self._cancel_restart(name)
            rt.tracker = self._tracker(record)
            record = await self._launch(record, "start requested")
        if wait:
            await self._start_grace(name, record)
        return self.records.get(name, record)

    async def _launch(self, record: InstanceRecord, reason: str, **changes: Any) -> InstanceRecord:
        """Starting → spawn → Running (or Failed with the reason). Caller holds the lock."""
        name = record.name
        try:
            argv, env, hint = self._command(record)
        except ActantError as exc:
            if record.status is S.RESTARTING:
                await self._transition(record, S.FAILED, exc.message)
            raise
        if record.status is not S.STARTING:
            record = await self._transition(record, S.STARTING, reason, **changes)
        logdir = self.layout.log_dir(name)
        try:
            spawned = await asyncio.to_thread(
                spawn.spawn, argv, self.workspace(record), env, logdir / "stdout.log", logdir / "stderr.log", hint
            )
        except Exception as exc:
            launch = exc if isinstance(exc, AgentLaunch) else AgentLaunch(f"{name}: could not start: {exc}", agent=name)
            launch.context.setdefault("agent", name)
            await self._transition(record, S.FAILED, launch.message, pid=None, pid_create_time=None)
            if launch is exc:
                raise
            raise launch from exc
        rt = self._runtime(name)
        rt.started_mono = time.monotonic()
        rt.health_failure = None
        rt.stop_requested = False
        # Watch first: whatever happens next, the child is reaped and its exit seen.
        self._watch(name, spawned.pid, is_child=True, popen=spawned.popen)
        try:
            record = await self._transition(
                record,
                S.RUNNING,
                reason,
                pid=spawned.pid,
                pid_create_time=spawned.create_time,
                launched_at=utc_now(),
                attached=False,
            )
        except ActantError:
            # Running could not be persisted (disk full...): a process nobody would know about must not live.
            await kill.terminate_tree(spawned.pid, instance_id=record.instance_id, timeout=2.0, exited=rt.exit_future)
            with contextlib.suppress(ActantError):
                await self._transition(record, S.FAILED, "could not record the started process; it was stopped")
            raise
        self._start_health(record)
        return record

    async def _start_grace(self, name: str, record: InstanceRecord) -> None:
        """Wait briefly for an immediate crash so ``agent start`` can report it with the stderr tail."""
        rt = self._runtime(name)
        fut = rt.exit_future
        template = self._template(record)
        if fut is None or template is None:
            return
        grace = min(template.restart.min_uptime_seconds, START_GRACE_MAX)
        try:
            info = await asyncio.wait_for(asyncio.shield(fut), grace)
        except TimeoutError:
            return
        if info.code == 0:
            return
        # Let the exit handler record the crash first, so the error reflects the persisted state.
        await asyncio.sleep(0)
        async with self._lock(name):
            current = self.records.get(name)
        if rt.stop_requested or rt.exit_future is not fut:
            return  # stopped (or restarted) on purpose meanwhile: not a failed start
        tail = logs.tail_lines(self.layout.log_dir(name) / "stderr.log", 10)
        raise AgentLaunch(
            f"agent {name!r} exited right after start ({info.describe()})",
            agent=name,
            reason=info.describe(),
            status=current.status.value if current else None,
            stderrTail=tail,
        )

    # -- exits and restarts --------------------------------------------------------------------------

    def _watch(self, name: str, pid: int, *, is_child: bool, popen: Popen[bytes] | None) -> None:
        rt = self._runtime(name)
        fut = exits.watch_exit(asyncio.get_running_loop(), pid, is_child=is_child, popen=popen)
        rt.exit_future = fut
        rt.popen = popen

        def done(f: asyncio.Future[exits.ExitInfo]) -> None:
            if f.cancelled() or self._closing:
                return
            self._spawn_task(self._on_exit(name, pid, f.result()))

        fut.add_done_callback(done)

    async def _on_exit(self, name: str, pid: int, info: exits.ExitInfo) -> None:
        async with self._lock(name):
            record = self.records.get(name)
            if record is None or record.pid != pid or record.status not in (S.RUNNING, S.STARTING):
                return  # a stop or a newer launch owns this instance now
            rt = self._runtime(name)
            self._stop_health(rt)
            last = LastExit(code=info.code, signal=info.signal, at=utc_now())
            gone = {"pid": None, "pid_create_time": None, "last_exit": last, "stopped_at": utc_now()}
            if record.attached:
                await self._transition(record, S.STOPPED, "attached process exited", attached=False, **gone)
                return
            template = self._template(record)
            uptime = time.monotonic() - rt.started_mono
            what = rt.health_failure or info.describe()
            if record.launch_mode == "OneShot" and info.code == 0:
                record = await self._transition(record, S.STOPPED, "completed (exit code 0)", **gone)
                await self._kill_leftovers(record)
                return
            tracker = rt.tracker or self._tracker(record)
            rt.tracker = tracker
            decision = tracker.on_exit(code=info.code, signal=info.signal, uptime=uptime, requested=False)
            if info.code == 0 and rt.health_failure is None:
                record = await self._transition(record, S.STOPPED, "exited cleanly (code 0)", **gone)
                await self._kill_leftovers(record)
                if decision.restart:
                    self._schedule_restart(name, decision.delay_seconds, S.STOPPED)
                return
            record = await self._transition(record, S.CRASHED, what, **gone)
            await self._kill_leftovers(record)
            if decision.restart:
                record = await self._transition(
                    record, S.RESTARTING, f"{what}; restarting in {decision.delay_seconds:.2f}s"
                )
                self._schedule_restart(name, decision.delay_seconds, S.RESTARTING)
            elif decision.give_up:
                await self._transition(record, S.FAILED, f"{decision.reason} (last: {what})")
            del template

    async def _kill_leftovers(self, record: InstanceRecord) -> None:
        """Descendants an exited agent left behind (daemonized helpers) must not outlive it.

        Awaited under the instance lock, after the exit is persisted and announced, and before any restart is
        scheduled: the scan matches ``ACTANT_INSTANCE_ID``, which the next process of this instance carries too.
        """
        await kill.terminate_tree(None, instance_id=record.instance_id, timeout=2.0)

    def _schedule_restart(self, name: str, delay: float, expect: Status) -> None:
        rt = self._runtime(name)
        self._cancel_restart(name)
        rt.restart_task = self._spawn_task(self._restart_after(name, delay, expect), rt)

    async def _restart_after(self, name: str, delay: float, expect: Status) -> None:
        await asyncio.sleep(delay)  # the backoff itself, not a wait for an event
        async with self._lock(name):
            record = self.records.get(name)
            if record is None or record.status is not expect or self._shutting_down:
                return
            self._runtime(name).restart_task = None
            try:
                await self._launch(record, "restarted by policy", restart_count=record.restart_count + 1)
            except ActantError as exc:  # the launch recorded Failed where it could; say why in any case
                self._event("instance", name, event="restartFailed", reason=exc.message)

    def _cancel_restart(self, name: str) -> None:
        rt = self._rt.get(name)
        if rt is not None and rt.restart_task is not None:
            if rt.restart_task is not asyncio.current_task():
                rt.restart_task.cancel()
            rt.restart_task = None

    # -- stop ----------------------------------------------------------------------------------------

    async def stop(self, name: str, timeout: float | None = None) -> InstanceRecord:
        self._cancel_restart(name)
        async with self._lock(name):
            self._cancel_restart(name)
            record = self.get(name)
            if record.status in (S.RESTARTING, S.CRASHED):
                return await self._transition(record, S.STOPPED, "stop requested (pending restart cancelled)")
            if record.status not in (S.STARTING, S.RUNNING):
                return record  # idempotent
            return await self._terminate(record, "stop requested", timeout)

    async def _terminate(self, record: InstanceRecord, reason: str, timeout: float | None) -> InstanceRecord:
        name = record.name
        if record.status is not S.STOPPING:
            record = await self._transition(record, S.STOPPING, reason)
        rt = self._runtime(name)
        rt.stop_requested = True
        self._stop_health(rt)
        template = self._template(record)
        sig = template.stop_signal_number if template is not None else signal.SIGTERM
        wait = timeout if timeout is not None else (template.stop_timeout_seconds if template else 10.0)
        problem = None
        try:
            await kill.terminate_tree(
                record.pid, instance_id=record.instance_id, sig=sig, timeout=wait, exited=rt.exit_future
            )
        except Exception as exc:  # never leave an instance in Stopping: record what went wrong instead
            log.error("%s: stop failed: %r", name, exc)
            problem = f"stopped, but terminating the process failed: {exc}"
        info = rt.exit_future.result() if rt.exit_future is not None and rt.exit_future.done() else None
        last = LastExit(code=info.code, signal=info.signal, at=utc_now()) if info else record.last_exit
        return await self._transition(
            record, S.STOPPED, problem or "stopped", pid=None, pid_create_time=None, stopped_at=utc_now(),
            last_exit=last, attached=False,
        )  # fmt: skip

    async def restart(self, name: str) -> InstanceRecord:
        self._refuse_if_shutting_down(name)
        await self.stop(name)
        return await self.start(name)

    # -- attach / detach -----------------------------------------------------------------------------

    async def attach(self, name: str, pid: int) -> InstanceRecord:
        info = exits.describe_pid(pid)
        if info is None:
            raise InvalidParams(f"no process with pid {pid}", agent=name, pid=pid)
        # A non-root daemon can only signal its own user's processes; root may supervise anyone's.
        if pid in (os.getpid(), 1) or (os.getuid() != 0 and info.uid != os.getuid()):
            raise InvalidParams(f"pid {pid} cannot be supervised by this daemon", agent=name, pid=pid)
        self._refuse_if_shutting_down(name)
        owner = next((r.name for r in self.records.values() if r.pid == pid and r.status in ACTIVE), None)
        if owner is not None and owner != name:
            raise InvalidParams(f"pid {pid} is already supervised as agent {owner!r}", agent=name, pid=pid)
        async with self._lock(name):
            record = self.get(name)
            if record.status in ACTIVE:
                if record.attached:
                    raise AgentAlreadyAttached(f"agent {name!r} is already attached to pid {record.pid}", agent=name)
                raise AgentAlreadyRunning(f"agent {name!r} is already running (pid {record.pid})", agent=name)
            self._cancel_restart(name)
            record = await self._transition(record, S.STARTING, f"attach to pid {pid}")
            rt = self._runtime(name)
            rt.started_mono = time.monotonic() - max(0.0, time.time() - info.create_time)
            record = await self._transition(
                record, S.RUNNING, f"attached to pid {pid}", pid=pid, pid_create_time=info.create_time,
                attached=True, launched_at=utc_now(),
            )  # fmt: skip
            self._watch(name, pid, is_child=False, popen=None)
            return record

    async def detach(self, name: str) -> InstanceRecord:
        async with self._lock(name):
            record = self.get(name)
            if not record.attached or record.status not in ACTIVE:
                raise AgentNotAttached(f"agent {name!r} is not attached to an external process", agent=name)
            rt = self._runtime(name)
            self._stop_health(rt)
            if rt.exit_future is not None and not rt.exit_future.done():
                exits.unwatch(rt.exit_future)
            rt.exit_future = None
            return await self._transition(
                record, S.STOPPED, f"detached from pid {record.pid}", pid=None, pid_create_time=None,
                attached=False, stopped_at=utc_now(),
            )  # fmt: skip

    # -- health --------------------------------------------------------------------------------------

    def _start_health(self, record: InstanceRecord) -> None:
        template = self._template(record)
        if template is None or template.health_check is None:
            return
        check = template.health_check
        rt = self._runtime(record.name)
        workspace = self.workspace(record)
        env = dict(os.environ, ACTANT_INSTANCE=record.name, ACTANT_WORKSPACE=str(workspace))
        if check.command is not None:
            argv = list(check.command)

            async def probe() -> bool:
                ok: bool = await health.probe_command(argv, cwd=workspace, env=env, timeout=check.timeout_seconds)
                return ok
        else:
            assert check.port is not None
            host, port = check.host, check.port

            async def probe() -> bool:
                ok: bool = await health.probe_tcp(host, port, timeout=check.timeout_seconds)
                return ok

        async def unhealthy(reason: str) -> None:
            await self._on_unhealthy(record.name, record.pid, reason)

        monitor = health.HealthMonitor(
            probe, interval=check.interval_seconds, failure_threshold=check.failure_threshold,
            on_unhealthy=unhealthy,
        )  # fmt: skip
        monitor.start()
        rt.health = monitor

    def _stop_health(self, rt: Runtime) -> None:
        if rt.health is not None:
            rt.health.stop()
            rt.health = None

    async def _on_unhealthy(self, name: str, pid: int | None, reason: str) -> None:
        """Kill the unhealthy process; its exit then goes through the restart policy like any crash."""
        async with self._lock(name):  # no start or stop can interleave, so only this process is killed
            record = self.records.get(name)
            if record is None or record.pid != pid or record.status is not S.RUNNING:
                return
            rt = self._runtime(name)
            rt.health_failure = f"health check failed: {reason}"
            self._event("health", name, ok=False, reason=reason)
            template = self._template(record)
            await kill.terminate_tree(
                record.pid, instance_id=record.instance_id,
                sig=template.stop_signal_number if template else signal.SIGTERM,
                timeout=template.stop_timeout_seconds if template else 10.0, exited=rt.exit_future,
            )  # fmt: skip

    # -- reads ---------------------------------------------------------------------------------------

    def list_records(self, status: str | None = None, template: str | None = None) -> list[dict[str, Any]]:
        out = []
        for record in sorted(self.records.values(), key=lambda r: r.name):
            if status is not None and record.status.value != status:
                continue
            if template is not None and record.template_ref != template:
                continue
            out.append(to_dict(record))
        return out

    def status(self, name: str) -> dict[str, Any]:
        record = self.get(name)
        out = to_dict(record)
        live = None
        if record.pid is not None and record.status in ACTIVE:
            figures = self.sampler.sample(record.pid, record.pid_create_time)
            if figures is not None:
                live = {
                    "cpuPercent": figures.cpu_percent,
                    "rssBytes": figures.rss_bytes,
                    "uptimeSeconds": figures.uptime_seconds,
                    "children": figures.children,
                }
        out["live"] = live
        out["logDir"] = str(self.layout.log_dir(name))
        out["workspace"] = str(self.workspace(record))
        return out

    def log_path(self, name: str, stream: str) -> Path:
        self.get(name)
        if stream not in ("stdout", "stderr"):
            raise InvalidParams(f"stream must be 'stdout' or 'stderr', not {stream!r}", stream=stream)
        return self.layout.log_dir(name) / f"{stream}.log"

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for record in self.records.values():
            out[record.status.value] = out.get(record.status.value, 0) + 1
        return out

    # -- housekeeping --------------------------------------------------------------------------------

    def rotate_logs(self, max_bytes: int, backups: int) -> None:
        for record in list(self.records.values()):
            if record.status not in ACTIVE:
                continue
            for stream in ("stdout", "stderr"):
                with contextlib.suppress(OSError):
                    logs.rotate_if_needed(self.layout.log_dir(record.name) / f"{stream}.log", max_bytes, backups)

    def reap_orphans(self) -> list[int]:
        return exits.reap_orphans()

    async def run_once(self, name: str, prompt: str, timeout: float | None) -> dict[str, Any]:
        raise NotSupported("agent run comes with the materialization work; not supported yet", agent=name)

    def _refuse_if_shutting_down(self, name: str) -> None:
        if self._shutting_down:
            raise DaemonBusy(f"actantd is shutting down; {name!r} was not started", agent=name)

    async def shutdown(self, stop_agents: bool = True) -> None:
        """Stop every agent in parallel (so systemd's KillMode=mixed finds nothing left), then stop watching.

        From the first moment no agent may start (a start, restart, attach or policy restart is refused), so
        nothing outlives a clean exit.
        """
        self._shutting_down = True
        if stop_agents:
            names = [r.name for r in self.records.values() if r.status in ACTIVE or r.status is S.RESTARTING]
            await asyncio.gather(*(self.stop(n) for n in names), return_exceptions=True)
        self._closing = True
        for rt in self._rt.values():
            self._stop_health(rt)
            if rt.restart_task is not None:
                rt.restart_task.cancel()
            if rt.exit_future is not None and not rt.exit_future.done():
                exits.unwatch(rt.exit_future)
            for task in list(rt.tasks):
                task.cancel()
        for task in list(self._background):
            task.cancel()


def _uptime_of(pid: int) -> float:
    info = exits.describe_pid(pid)
    return max(0.0, time.time() - info.create_time) if info is not None else 0.0


def _log_task_error(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("background task failed", exc_info=task.exception())
