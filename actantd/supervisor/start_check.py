"""The start check of ``agent start``: a short watch for an early exit, reported with the last log lines.

Part of :class:`~actantd.supervisor.process.AgentProcess` (the one other supervisor module that knows instance
records): how long to watch (:func:`start_check_seconds`) and what a failing early exit raises
(:func:`wait_for_early_exit`). It changes nothing; the exit handler records the exit.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any, Protocol

from actantd.config.registry import Resolved
from actantd.config.schema import Template
from actantd.errors import ActantError, AgentLaunch
from actantd.instances.record import InstanceRecord
from actantd.instances.state import Status
from actantd.paths import Layout
from actantd.supervisor import exits, logs

S = Status

START_GRACE_MAX = 1.0
"""``agent start`` waits at most this long (bounded by ``minUptimeSeconds``) to report an immediate crash,
unless the backend sets ``startCheckSeconds``."""


class CheckOwner(Protocol):
    """What the start check reads of the instance lifecycle (a part of the process's ``Owner``)."""

    layout: Layout

    def current(self, name: str) -> InstanceRecord | None: ...

    def lock(self, name: str) -> asyncio.Lock: ...

    def template(self, record: InstanceRecord) -> Template | None: ...

    def resolve(self, template_ref: str) -> Resolved: ...


def start_check_seconds(owner: CheckOwner, record: InstanceRecord) -> float:
    """How long ``agent start`` watches for an early exit: the backend's ``startCheckSeconds`` when set
    (Node-based CLIs take a second or more to fail), else ``minUptimeSeconds`` capped at 1 s."""
    template = owner.template(record)
    if template is None:
        return 0.0
    with contextlib.suppress(ActantError):
        backend = owner.resolve(record.template_ref).backend
        configured = getattr(backend, "start_check_seconds", None)
        if isinstance(configured, int | float):
            return float(configured)
    return min(template.restart.min_uptime_seconds, START_GRACE_MAX)


async def wait_for_early_exit(
    owner: CheckOwner,
    name: str,
    record: InstanceRecord,
    fut: asyncio.Future[exits.ExitInfo] | None,
    still_ours: Callable[[asyncio.Future[exits.ExitInfo]], bool],
) -> None:
    """Wait briefly for an early exit of the process ``fut`` watches so ``agent start`` reports it.

    Called without the lock (the exit handler needs it to record the exit). A failing exit raises
    :class:`AgentLaunch` saying whether the restart policy will retry; a clean exit (code 0) returns once
    it is recorded, so the caller reports the program as exited, never as started. ``still_ours(fut)`` is
    False once a stop or a newer launch owns the instance (then the exit is no failed start).
    """
    if fut is None or owner.template(record) is None:
        return
    try:
        info = await asyncio.wait_for(asyncio.shield(fut), start_check_seconds(owner, record))
    except TimeoutError:
        return
    # Let the exit handler record the exit first, so the answer reflects the persisted state.
    await asyncio.sleep(0)
    async with owner.lock(name):
        current = owner.current(name)
    if not still_ours(fut):
        return  # stopped (or restarted) on purpose meanwhile: not a failed start
    if info.code == 0:
        return
    layout = owner.layout
    tail = logs.tail_lines(layout.log_file(name, "stderr"), 10)
    context: dict[str, Any] = {"agent": name, "reason": info.describe(), "stderrTail": tail}
    if not tail:  # some CLIs report on stdout (Claude Code's "Not logged in" in stream-json)
        context["stdoutTail"] = logs.tail_lines(layout.log_file(name, "stdout"), 10)
    status = current.status if current is not None else None
    context["status"] = status.value if status is not None else None
    context["willRetry"] = status is S.RESTARTING
    if status is S.FAILED and current is not None:
        context["policyReason"] = current.reason
    elif status is S.CRASHED and _policy(owner, record) == "Never":
        context["policyReason"] = "restart policy is Never"
    raise AgentLaunch(f"agent {name!r} exited right after start ({info.describe()})", **context)


def _policy(owner: CheckOwner, record: InstanceRecord) -> str | None:
    template = owner.template(record)
    return str(template.restart.policy) if template is not None else None
