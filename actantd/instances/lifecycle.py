"""The one place that changes instances: records, per-instance locks, transitions, and the operations.

Every mutation of an instance runs under that instance's lock, so mutations of one instance are serialized
while different instances proceed in parallel; reads never take a lock and see the last persisted record.
A transition is checked against the table, persisted to ``.actant.json``, journaled, and only then
published: a subscriber never hears of a state that a crash could still undo.

The process side of an instance (pid, exit watch, restarts, health) is its
:class:`~actantd.supervisor.process.AgentProcess`; this module decides *whether* an operation may happen
and hands the *how* to it. Create, destroy and sync (workspaces, the ``--work-dir`` rules) are in
:mod:`.workspaces`, startup recovery in :mod:`.recovery`; :class:`actantd.manager.Manager` puts the three
together. See docs/architecture.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import msgspec

from actantd.config.registry import Registry, Resolved
from actantd.config.schema import Template
from actantd.errors import (
    AgentAlreadyAttached,
    AgentAlreadyRunning,
    AgentLaunch,
    AgentNotAttached,
    AgentNotFound,
    DaemonBusy,
    InvalidParams,
    StateWrite,
)
from actantd.events import EventBus
from actantd.instances.record import InstanceRecord, Step, utc_now, workspace_path
from actantd.instances.state import ACTIVE, LIVE, RESTART_PENDING, START_ACCEPTED, SUPERVISED, Status, check_transition
from actantd.instances.store import InstanceStore
from actantd.journal import Journal
from actantd.paths import LOG_STREAMS, Layout
from actantd.supervisor import exits, kill, metrics
from actantd.supervisor.process import AgentProcess

S = Status
log = logging.getLogger(__name__)

_STRICT_WRITES = frozenset({S.STARTING, S.RUNNING})
"""Transitions that must be on disk before they count (see :meth:`Lifecycle.transition`)."""


class Lifecycle:
    """Owns every instance record and its :class:`AgentProcess`; implements the process's ``Owner``."""

    def __init__(
        self,
        layout: Layout,
        registry: Callable[[], Registry],
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
        """Instances whose file a newer daemon wrote (name → schemaVersion); left untouched."""
        self.sampler = metrics.MetricsSampler()
        self.unwritten: dict[str, str] = {}
        """Instances whose current record is in memory only (name → why the write failed); retried."""
        self._locks: dict[str, asyncio.Lock] = {}
        self._processes: dict[str, AgentProcess] = {}
        self._closing = False
        self._shutting_down = False

    # -- the Owner side: what an AgentProcess and the helpers use --------------------------------------

    @property
    def registry(self) -> Registry:
        return self._registry()

    @property
    def shutting_down(self) -> bool:
        return self._shutting_down

    @property
    def closing(self) -> bool:
        return self._closing

    def lock(self, name: str) -> asyncio.Lock:
        """The instance's lock. Never removed, not even by destroy: a caller may already wait on it, and a
        second lock for the same name would let two creates run at once."""
        lock = self._locks.get(name)
        if lock is None:
            lock = self._locks[name] = asyncio.Lock()
        return lock

    def process(self, name: str) -> AgentProcess:
        proc = self._processes.get(name)
        if proc is None:
            proc = self._processes[name] = AgentProcess(name, self)
        return proc

    def forget(self, name: str) -> None:
        """Drop a destroyed instance's record and process object."""
        self.records.pop(name, None)
        self.unwritten.pop(name, None)
        proc = self._processes.pop(name, None)
        if proc is not None:
            proc.close()

    def current(self, name: str) -> InstanceRecord | None:
        return self.records.get(name)

    def template(self, record: InstanceRecord) -> Template | None:
        return self.registry.templates.get(record.template_ref)

    def resolve(self, template_ref: str) -> Resolved:
        return self.registry.resolve(template_ref)

    def workspace(self, record: InstanceRecord) -> Path:
        return workspace_path(record, self.layout)

    def event(self, type_: str, agent: str | None, **data: Any) -> None:
        """Journal then publish a non-transition event."""
        self.bus.publish(self.journal.record(type_, agent, **data))

    async def process_ended(self, name: str) -> None:
        """Called after an exit was handled (outside the lock); :class:`~actantd.manager.Manager` applies the
        workspace policy here."""

    def announce(self, name: str, src: Status, dst: Status, reason: str) -> None:
        """Journal then publish a transition that is already persisted (create writes its states at once)."""
        self.bus.publish(self.journal.transition(name, src.value, dst.value, reason))

    def emit(self, type_: str, agent: str | None, data: dict[str, Any], *, journal: bool) -> int:
        """Publish an event (journaled first when ``journal``; live-only otherwise, e.g. streamed ACP content);
        returns how many subscribers received it."""
        if journal:
            entry = self.journal.record(type_, agent, **data)
        else:
            entry = {"id": None, "type": type_, "agent": agent, "at": utc_now(), **data}
        return self.bus.publish(entry)

    async def update(self, name: str, instance_id: str, **changes: Any) -> InstanceRecord | None:
        """Persist fields that are not a state change (a backend's session id); caller holds the lock.

        Skipped (None) when the instance is gone or was re-created meanwhile (another ``instance_id``)."""
        current = self.records.get(name)
        if current is None or current.instance_id != instance_id:
            return None
        if all(getattr(current, key) == value for key, value in changes.items()):
            return current
        new = msgspec.structs.replace(current, updated_at=utc_now(), **changes)
        await self.store.commit(new)
        self.records[name] = new
        return new

    async def transition(self, record: InstanceRecord, to: Status, reason: str, **changes: Any) -> InstanceRecord:
        """Check, persist, journal, publish — in that order (:meth:`transitions` with one step)."""
        return await self.transitions(record, (Step(to, reason, changes),))

    async def transitions(self, record: InstanceRecord, steps: Sequence[Step]) -> InstanceRecord:
        """Check every step, persist the last record once, then journal and publish every step in order.

        For moves with no wait between them (a crash restarted at once: Crashed, Restarting, Starting): one
        durable write instead of one per step. Nothing is announced before it is on disk: the file holds the
        newest of the chain, so every announced state is one the record has reached, and the journal still
        has each step. The write goes through the store's group commit (:mod:`.group_commit`): the caller
        holds the instance's lock, so one instance's transitions stay in order, while those of different
        instances share their fsyncs, and reads never wait behind a disk flush.

        When the write fails (full disk, instance directory deleted by hand, immutable file, read-only
        mount), it depends on where the instance is going (hardening #10, class 3):

        - into Starting or Running, nothing changes and :class:`StateWrite` is raised: a process must never
          run that the disk does not know about (a crash of the daemon would leave it unsupervised);
        - anywhere else (stopping, stopped, crashed, restarting, failed) the truth is kept in memory, the
          transitions are journaled and published, the failure is announced (``stateWriteFailed``) and the
          write retried by :meth:`retry_unwritten`. Killing a process, or acting on its crash, must never
          depend on the disk.
        """
        new, src = record, record.status
        for step in steps:
            check_transition(new.status, step.to, name=record.name)
            new = msgspec.structs.replace(new, status=step.to, reason=step.reason, updated_at=utc_now(), **step.changes)
        try:
            await self.store.commit(new)
        except StateWrite as exc:
            if new.status in _STRICT_WRITES:
                raise
            self._remember_unwritten(new, exc)
        else:
            self.unwritten.pop(record.name, None)
        self.records[record.name] = new
        for step in steps:
            self.announce(record.name, src, step.to, step.reason)
            src = step.to
        return new

    def _remember_unwritten(self, record: InstanceRecord, exc: StateWrite) -> None:
        first = record.name not in self.unwritten
        self.unwritten[record.name] = exc.message
        if first:
            log.warning("%s: state kept in memory only: %s (retrying)", record.name, exc.message)
            self.event("instance", record.name, event="stateWriteFailed", reason=exc.message)

    async def retry_unwritten(self) -> list[str]:
        """Try again to persist every record kept in memory only; returns the names written now.

        Called by the daemon's housekeeping every second and at shutdown. Takes each instance's lock only if
        it is free: a busy instance is retried on the next round (its next transition writes anyway).
        """
        done: list[str] = []
        for name in list(self.unwritten):
            lock = self.lock(name)
            if lock.locked():
                continue
            async with lock:
                record = self.records.get(name)
                if record is None:
                    self.unwritten.pop(name, None)
                    continue
                try:
                    await self.store.commit(record)
                except StateWrite as exc:
                    self.unwritten[name] = exc.message
                    continue
                self.unwritten.pop(name, None)
                done.append(name)
                self.event("instance", name, event="stateWritten", status=record.status.value)
        return done

    # -- start, stop, attach, detach -----------------------------------------------------------------------

    async def start(self, name: str, wait: bool = True, caller_env: dict[str, str] | None = None) -> InstanceRecord:
        self._refuse_if_shutting_down(name)
        async with self.lock(name):
            self._refuse_if_shutting_down(name)
            record = self.get(name)
            proc = self.process(name)
            self.remember_caller_env(name, caller_env)
            if record.status is S.RUNNING or (record.status is S.STARTING and proc.is_live):
                return record  # idempotent
            if record.status is S.STOPPING:
                raise AgentAlreadyRunning(f"agent {name!r} is stopping; try again when it has stopped", agent=name)
            if record.status not in START_ACCEPTED:
                raise AgentLaunch(f"agent {name!r} is {record.status.value} and cannot start", agent=name)
            proc.cancel_restart()
            proc.reset_tracker(record)
            record = await proc.launch(record, "start requested")
        if wait:
            await proc.wait_for_early_exit(record)
        return self.records.get(name, record)

    async def stop(self, name: str, timeout: float | None = None) -> InstanceRecord:
        self._cancel_restart(name)
        async with self.lock(name):
            self._cancel_restart(name)
            record = self.get(name)
            if record.status in RESTART_PENDING:
                return await self.transition(record, S.STOPPED, "stop requested (pending restart cancelled)")
            if record.status not in LIVE:
                return record  # idempotent
            return await self.process(name).terminate(record, "stop requested", timeout)

    async def restart(self, name: str, caller_env: dict[str, str] | None = None) -> InstanceRecord:
        self._refuse_if_shutting_down(name)
        await self.stop(name)
        return await self.start(name, caller_env=caller_env)

    def remember_caller_env(self, name: str, env: dict[str, str] | None) -> None:
        """Launches of ``name`` (policy restarts included) use this client's PATH and locale from now on."""
        if env:
            self.process(name).caller_env = {str(k): str(v) for k, v in env.items()}

    def backend_of(self, record: InstanceRecord) -> str | None:
        template = self.template(record)
        return template.backend if template is not None else None

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
        async with self.lock(name):
            record = self.get(name)
            if record.status in ACTIVE:
                if record.attached:
                    raise AgentAlreadyAttached(f"agent {name!r} is already attached to pid {record.pid}", agent=name)
                raise AgentAlreadyRunning(f"agent {name!r} is already running (pid {record.pid})", agent=name)
            return await self.process(name).attach(record, pid, info.create_time)

    async def detach(self, name: str) -> InstanceRecord:
        async with self.lock(name):
            record = self.get(name)
            if not record.attached or record.status not in ACTIVE:
                raise AgentNotAttached(f"agent {name!r} is not attached to an external process", agent=name)
            return await self.process(name).detach(record)

    def _cancel_restart(self, name: str) -> None:
        proc = self._processes.get(name)
        if proc is not None:
            proc.cancel_restart()

    def _refuse_if_shutting_down(self, name: str) -> None:
        if self._shutting_down:
            raise DaemonBusy(f"actantd is shutting down; {name!r} was not started", agent=name)

    # -- reads ------------------------------------------------------------------------------------------

    def get(self, name: str) -> InstanceRecord:
        record = self.records.get(name)
        if record is None:
            raise AgentNotFound(f"no agent named {name!r}", agent=name)
        return record

    def live(self, record: InstanceRecord) -> metrics.Figures | None:
        """CPU, memory, uptime and children of the instance's process, or None when it has none."""
        if record.pid is None or record.status not in ACTIVE:
            return None
        return self.sampler.sample(record.pid, record.pid_create_time)

    def log_path(self, name: str, stream: str) -> Path:
        self.get(name)
        if stream not in LOG_STREAMS:
            raise InvalidParams(f"stream must be 'stdout' or 'stderr', not {stream!r}", stream=stream)
        return self.layout.log_file(name, stream)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for record in self.records.values():
            out[record.status.value] = out.get(record.status.value, 0) + 1
        return out

    # -- housekeeping and shutdown ----------------------------------------------------------------------

    async def shutdown(self, stop_agents: bool = True) -> None:
        """Stop every agent in parallel (so systemd's KillMode=mixed finds nothing left), then stop watching.

        From the first moment no agent may start (a start, restart, attach or policy restart is refused), so
        nothing outlives a clean exit.
        """
        self._shutting_down = True
        if stop_agents:
            names = [r.name for r in self.records.values() if r.status in SUPERVISED]
            results = await asyncio.gather(*(self.stop(n) for n in names), return_exceptions=True)
            for name, res in zip(names, results, strict=True):
                if isinstance(res, BaseException):
                    log.error("%s: stop at shutdown failed: %r", name, res)
            # Whatever a stop reported, no process the user asked to stop may outlive the daemon.
            for name, proc in list(self._processes.items()):
                record = self.records.get(name)
                if proc.is_live and proc.pid is not None and record is not None and not record.attached:
                    log.error("%s: still running after its stop; killing pid %d", name, proc.pid)
                    with contextlib.suppress(Exception):
                        await kill.terminate_tree(
                            proc.pid, instance_id=record.instance_id, timeout=2.0, exited=proc.exit_future
                        )
        await self.retry_unwritten()
        for name, why in self.unwritten.items():
            log.error("%s: its last state could not be written (%s); the next start re-checks it", name, why)
        self._closing = True
        for proc in self._processes.values():
            proc.close()
