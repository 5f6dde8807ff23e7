"""Restart scheduling for one agent: its restart budget and its pending restart.

Part of :class:`~actantd.supervisor.process.AgentProcess` (which owns one :class:`Restarts`), split out so
that the process module says how a process is run and watched, and this one when it is run again. The
budget is a :class:`~actantd.supervisor.policy.RestartTracker` (pure); a pending restart is a task that
sleeps the backoff, then takes the instance's lock and launches again if the instance is still where it was
left. A crash restarted without delay never becomes a task: the exit handler launches at once, under the
lock it already holds (see ``AgentProcess._on_exit``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, Protocol

from actantd.config.schema import Template
from actantd.errors import ActantError
from actantd.instances.record import InstanceRecord, Step
from actantd.instances.state import Status
from actantd.supervisor import exits, policy, retry

S = Status


class RestartOwner(Protocol):
    """What restart scheduling needs of the instance lifecycle (a part of the process's ``Owner``)."""

    @property
    def shutting_down(self) -> bool: ...

    def current(self, name: str) -> InstanceRecord | None: ...

    def lock(self, name: str) -> asyncio.Lock: ...

    def template(self, record: InstanceRecord) -> Template | None: ...

    def event(self, type_: str, agent: str | None, **data: Any) -> None: ...

    async def transition(self, record: InstanceRecord, to: Status, reason: str, **changes: Any) -> InstanceRecord: ...

    async def transitions(self, record: InstanceRecord, steps: Sequence[Step]) -> InstanceRecord: ...


class Relaunch(Protocol):
    """Launch the instance again by policy (``AgentProcess.relaunch``); the caller holds the lock."""

    def __call__(
        self, record: InstanceRecord, prelude: Sequence[Step] = (), before_spawn: Awaitable[None] | None = None
    ) -> Coroutine[Any, Any, InstanceRecord]: ...


class Restarts:
    """The restart budget and the pending restart of one agent."""

    def __init__(
        self,
        name: str,
        owner: RestartOwner,
        relaunch: Relaunch,
        spawn_task: Callable[[Coroutine[Any, Any, Any]], asyncio.Task[Any]],
    ) -> None:
        self.name = name
        self._owner = owner
        self._relaunch = relaunch
        self._spawn_task = spawn_task
        self.tracker: policy.RestartTracker | None = None
        self.task: asyncio.Task[None] | None = None

    def reset(self, record: InstanceRecord) -> None:
        """A fresh restart budget: a start by the user forgives the crashes before it."""
        template = self._owner.template(record)
        self.tracker = policy.RestartTracker(template.restart if template is not None else policy.DEFAULT_POLICY)

    def tracker_for(self, record: InstanceRecord) -> policy.RestartTracker:
        if self.tracker is None:
            self.reset(record)
        assert self.tracker is not None
        return self.tracker

    @property
    def pending(self) -> bool:
        return self.task is not None and not self.task.done()

    def schedule(self, delay: float, expect: Status) -> None:
        """Launch again after ``delay`` seconds if the instance is then still in ``expect``."""
        self.cancel()
        self.task = self._spawn_task(self._after(delay, expect))

    def cancel(self) -> None:
        if self.task is not None:
            if self.task is not asyncio.current_task():
                self.task.cancel()
            self.task = None

    async def on_exit(
        self, record: InstanceRecord, info: exits.ExitInfo, *, uptime: float, what: str, health_failed: bool,
        gone: dict[str, Any], kill_leftovers: Callable[[InstanceRecord], Coroutine[Any, Any, None]],
    ) -> None:  # fmt: skip
        """The agent's own process ended by itself (not a stop, not attached, not a finished OneShot): record
        it and act on the policy's decision (docs/architecture.md, "How a crash is detected and acted on").
        ``what`` describes the exit, ``gone`` the record fields it clears. Caller holds the lock."""
        owner = self._owner
        decision = self.tracker_for(record).on_exit(code=info.code, signal=info.signal, uptime=uptime, requested=False)
        if info.code == 0 and not health_failed:
            record = await owner.transition(record, S.STOPPED, "exited cleanly (code 0)", **gone)
            await kill_leftovers(record)
            if decision.restart:
                self.schedule(decision.delay_seconds, S.STOPPED)
            return
        crashed = Step(S.CRASHED, what, gone)
        if not decision.restart:
            record = await owner.transitions(record, (crashed,))
            await kill_leftovers(record)
            if decision.give_up:
                # The decision already names the last exit; only a health verdict adds what it saw.
                await owner.transition(
                    record, S.FAILED, f"{decision.reason}; {what}" if health_failed else decision.reason
                )
            return
        delay = decision.delay_seconds
        restarting = Step(S.RESTARTING, f"{what}; restarting in {delay:.2f}s")
        if delay > 0 or owner.shutting_down:
            record = await owner.transitions(record, (crashed, restarting))
            await kill_leftovers(record)
            self.schedule(delay, S.RESTARTING)
            return
        # No backoff: Crashed is written and announced on its own, at once (how fast a crash is seen is a
        # figure of its own), while the leftovers are killed; then Restarting and Starting share one durable
        # write with the new process spawned while it is in flight (docs/architecture.md).
        self.cancel()
        leftovers = asyncio.ensure_future(kill_leftovers(record))
        try:
            record = await owner.transitions(record, (crashed,))
            await self._relaunch(record, prelude=(restarting,), before_spawn=leftovers)
        except ActantError as exc:
            await self.launch_failed(exc)
        finally:
            if not leftovers.done():
                await leftovers

    async def _after(self, delay: float, expect: Status) -> None:
        await asyncio.sleep(delay)  # the backoff itself, not a wait for an event
        owner, name = self._owner, self.name
        async with owner.lock(name):
            record = owner.current(name)
            if record is None or record.status is not expect or owner.shutting_down:
                return
            self.task = None
            try:
                await self._relaunch(record)
            except ActantError as exc:
                await self.launch_failed(exc)

    async def launch_failed(self, exc: ActantError) -> None:
        """A policy restart could not launch. The launch recorded Failed where it could; say why in any case,
        and if nothing could be recorded (the Starting write failed: full disk, deleted directory) the
        instance is still Restarting: try again after the backoff rather than never (class 3 / 4). Caller
        holds the lock."""
        owner, name = self._owner, self.name
        owner.event("instance", name, event="restartFailed", reason=exc.message)
        current = owner.current(name)
        if current is not None and current.status is S.RESTARTING and self.task is None:
            await retry.retry_pending(owner, self.tracker_for(current), current, exc.message, self.schedule)
