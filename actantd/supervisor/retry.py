"""Spawn failures retried through the restart backoff, for :class:`~actantd.supervisor.process.AgentProcess`.

A resource shortage (EMFILE, EAGAIN...) is no verdict on the agent (:func:`is_transient_spawn_error`): it is
counted like a crash and waited out (hardening #10, class 4), and so is a policy restart whose launch failed
before it began (its Starting write failed). Knows instance records, like the process; changes state only
through the owner's ``transition``.
"""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Callable
from typing import Any, Protocol

from actantd.errors import ActantError
from actantd.instances.record import InstanceRecord
from actantd.instances.state import Status
from actantd.supervisor import policy

S = Status


class RetryOwner(Protocol):
    """What a retry needs of the instance lifecycle (a part of the process's ``Owner``)."""

    @property
    def shutting_down(self) -> bool: ...

    async def transition(self, record: InstanceRecord, to: Status, reason: str, **changes: Any) -> InstanceRecord: ...


Schedule = Callable[[float, Status], None]
"""``AgentProcess.schedule_restart``: launch again after the delay if the instance is still in the status."""


TRANSIENT_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.EAGAIN, errno.ENOMEM, errno.ENOBUFS})
"""Spawn failures that say the machine is short of something right now (fds, processes, memory), not that the
agent cannot run: they are retried through the backoff."""


def is_transient_spawn_error(exc: BaseException) -> bool:
    """Whether a spawn failure is a passing resource shortage (errno in :data:`TRANSIENT_ERRNOS`)."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, OSError) and cur.errno in TRANSIENT_ERRNOS:
            return True
        code = cur.context.get("errno") if isinstance(cur, ActantError) else None
        if isinstance(code, int) and code in TRANSIENT_ERRNOS:
            return True
        cur = cur.__cause__ or cur.__context__
    return False


async def retry_shortage(
    owner: RetryOwner, tracker: policy.RestartTracker, record: InstanceRecord, message: str, schedule: Schedule
) -> bool:
    """Count a passing shortage like a crash and wait out the backoff in Restarting. False when the policy
    gives up (then the caller records Failed). Caller holds the lock; ``record`` is Starting."""
    decision = tracker.on_exit(code=None, signal=None, uptime=0.0, requested=False)
    if not decision.restart:
        return False
    await owner.transition(
        record, S.RESTARTING, f"{message} (a passing shortage; retrying in {decision.delay_seconds:.2f}s)",
        pid=None, pid_create_time=None,
    )  # fmt: skip
    schedule(decision.delay_seconds, S.RESTARTING)
    return True


async def retry_pending(
    owner: RetryOwner, tracker: policy.RestartTracker, record: InstanceRecord, message: str, schedule: Schedule
) -> None:
    """Schedule another attempt for a Restarting instance whose launch failed before it began, or record
    Failed when the policy gives up (or the daemon is shutting down)."""
    decision = tracker.on_exit(code=None, signal=None, uptime=0.0, requested=False)
    if decision.restart and not owner.shutting_down:
        schedule(decision.delay_seconds, S.RESTARTING)
    else:
        with contextlib.suppress(ActantError):
            await owner.transition(record, S.FAILED, f"{decision.reason} (last: {message})")
