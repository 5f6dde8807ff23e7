"""Stop, attach and detach one agent's process: the operations the user asks for, as opposed to the ones
its exits cause.

Part of :class:`~actantd.supervisor.process.AgentProcess`, split out so that the process module holds what
runs and watches a process. Each function takes the agent (its process state, :class:`Agent`), changes the
record only through the owner's ``transition``, and expects the caller to hold the instance's lock.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from subprocess import Popen
from typing import Any, Protocol

from actantd.config.schema import Template
from actantd.instances.record import InstanceRecord, LastExit, utc_now
from actantd.instances.state import Status
from actantd.supervisor import exits, kill, spawn

log = logging.getLogger(__name__)

S = Status

LEFTOVER_TIMEOUT = 2.0
"""Seconds descendants an exited agent left behind get between SIGTERM and SIGKILL."""


class ControlOwner(Protocol):
    def template(self, record: InstanceRecord) -> Template | None: ...

    async def transition(self, record: InstanceRecord, to: Status, reason: str, **changes: Any) -> InstanceRecord: ...


class Agent(Protocol):
    """The process state of one agent these operations read and change (``AgentProcess``)."""

    name: str
    exit_future: asyncio.Future[exits.ExitInfo] | None
    started_mono: float
    attached: bool
    stop_requested: bool

    @property
    def owner(self) -> ControlOwner: ...

    def stop_health(self) -> None: ...

    def cancel_restart(self) -> None: ...

    def watch(self, pid: int, *, is_child: bool, popen: Popen[bytes] | None) -> None: ...

    def unwatch(self) -> None: ...


async def terminate(agent: Agent, record: InstanceRecord, reason: str, timeout: float | None) -> InstanceRecord:
    """Stopping → signal the whole tree, wait, SIGKILL what is left → Stopped.

    Never leaves the instance in Stopping: a failure to terminate is recorded in the Stopped reason."""
    owner = agent.owner
    if record.status is not S.STOPPING:
        record = await owner.transition(record, S.STOPPING, reason)
    agent.stop_requested = True
    agent.stop_health()
    template = owner.template(record)
    sig = template.stop_signal_number if template is not None else signal.SIGTERM
    wait = timeout if timeout is not None else (template.stop_timeout_seconds if template else 10.0)
    problem = None
    try:
        await kill.terminate_tree(
            record.pid, instance_id=record.instance_id, sig=sig, timeout=wait, exited=agent.exit_future
        )
    except Exception as exc:  # never leave an instance in Stopping: record what went wrong instead
        log.error("%s: stop failed: %r", agent.name, exc)
        problem = f"stopped, but terminating the process failed: {exc}"
    fut = agent.exit_future
    info = fut.result() if fut is not None and fut.done() and not fut.cancelled() else None
    last = LastExit(code=info.code, signal=info.signal, at=utc_now()) if info else record.last_exit
    agent.attached = False
    return await owner.transition(
        record, S.STOPPED, problem or "stopped", pid=None, pid_create_time=None, stopped_at=utc_now(),
        last_exit=last, attached=False,
    )  # fmt: skip


async def kill_leftovers(record: InstanceRecord) -> None:
    """Descendants an exited agent left behind (daemonized helpers) must not outlive it.

    Awaited under the instance lock, and before any restart launches: the scan matches
    ``ACTANT_INSTANCE_ID`` (and the cgroup holds it), which the next process of this instance carries too.
    """
    await kill.terminate_tree(None, instance_id=record.instance_id, timeout=LEFTOVER_TIMEOUT)


async def attach(agent: Agent, record: InstanceRecord, pid: int, create_time: float) -> InstanceRecord:
    """Supervise a process Actant did not start: watched and stopped, never restarted."""
    owner = agent.owner
    agent.cancel_restart()
    record = await owner.transition(record, S.STARTING, f"attach to pid {pid}")
    agent.started_mono = time.monotonic() - max(0.0, time.time() - create_time)
    record = await owner.transition(
        record, S.RUNNING, f"attached to pid {pid}", pid=pid, pid_create_time=create_time,
        attached=True, launched_at=utc_now(),
    )  # fmt: skip
    agent.attached = True
    agent.watch(pid, is_child=False, popen=None)
    return record


async def detach(agent: Agent, record: InstanceRecord) -> InstanceRecord:
    """Stop supervising an attached process, leaving it running."""
    agent.stop_health()
    agent.unwatch()
    agent.exit_future = None
    agent.attached = False
    return await agent.owner.transition(
        record, S.STOPPED, f"detached from pid {record.pid}", pid=None, pid_create_time=None,
        attached=False, stopped_at=utc_now(),
    )  # fmt: skip


async def discard_spawn(spawning: asyncio.Future[spawn.Spawned], instance_id: str) -> None:
    """A process spawned ahead of a Starting write that then failed: it must not live (nor stay a zombie)."""
    try:
        spawned = await spawning
    except Exception:  # the spawn failed too: nothing to discard
        return
    loop = asyncio.get_running_loop()
    exited = exits.watch_exit(loop, spawned.pid, is_child=True, popen=spawned.popen)
    await kill.terminate_tree(spawned.pid, instance_id=instance_id, timeout=LEFTOVER_TIMEOUT, exited=exited)
