"""An agent's health monitor as :class:`~actantd.supervisor.process.AgentProcess` runs it: built from the
template's ``healthCheck`` (:func:`start_monitor`), and the kill on an unhealthy verdict (:func:`kill_unhealthy`),
whose exit then goes through the restart policy like any crash. Knows instance records, like the process.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from actantd.config.schema import Template
from actantd.instances.record import InstanceRecord
from actantd.instances.state import Status
from actantd.launch import build_probe_spec
from actantd.paths import Layout
from actantd.supervisor import exits, health, kill

S = Status


class HealthOwner(Protocol):
    """What the health handling needs of the instance lifecycle (a part of the process's ``Owner``)."""

    layout: Layout

    def current(self, name: str) -> InstanceRecord | None: ...

    def lock(self, name: str) -> asyncio.Lock: ...

    def template(self, record: InstanceRecord) -> Template | None: ...

    def event(self, type_: str, agent: str | None, **data: Any) -> None: ...


def start_monitor(
    owner: HealthOwner, record: InstanceRecord, on_unhealthy: Callable[[int | None, str], Awaitable[None]]
) -> health.HealthMonitor | None:
    """Start probing ``record``'s process if its template has a health check; ``on_unhealthy(pid, reason)``
    is called with the pid probed when ``failureThreshold`` probes in a row failed."""
    template = owner.template(record)
    if template is None or template.health_check is None:
        return None
    check = template.health_check
    probe = health.make_probe(build_probe_spec(record, check, owner.layout))
    pid = record.pid

    async def unhealthy(reason: str) -> None:
        await on_unhealthy(pid, reason)

    monitor = health.HealthMonitor(
        probe, interval=check.interval_seconds, failure_threshold=check.failure_threshold,
        on_unhealthy=unhealthy,
    )  # fmt: skip
    monitor.start()
    return monitor


async def kill_unhealthy(
    owner: HealthOwner,
    name: str,
    pid: int | None,
    reason: str,
    *,
    mark: Callable[[str], None],
    exited: Callable[[], asyncio.Future[exits.ExitInfo] | None],
) -> None:
    """Kill the unhealthy process (if ``pid`` is still the instance's running one); ``mark`` records the
    verdict on the process first, so its exit is reported as the health failure."""
    async with owner.lock(name):  # no start or stop can interleave, so only this process is killed
        record = owner.current(name)
        if record is None or record.pid != pid or record.status is not S.RUNNING:
            return
        mark(f"health check failed: {reason}")
        owner.event("health", name, ok=False, reason=reason)
        template = owner.template(record)
        await kill.terminate_tree(
            record.pid, instance_id=record.instance_id,
            sig=template.stop_signal_number if template else signal.SIGTERM,
            timeout=template.stop_timeout_seconds if template else 10.0, exited=exited(),
        )  # fmt: skip
