"""The instance state machine: one enum, one transition table (DESIGN §5).

Stdlib only, in the manner of supervisor's ``states.py``: the table is data, so tests can enumerate it and
the manager never decides legality ad hoc. Transitions beyond the DESIGN diagram are marked below with the
reason they exist; each is one a supervisord or systemd user would expect.
"""

from __future__ import annotations

from enum import StrEnum

from actantd.errors import InvalidTransition


class Status(StrEnum):
    CREATED = "Created"
    INITIALIZING = "Initializing"
    READY = "Ready"
    STARTING = "Starting"
    RUNNING = "Running"
    STOPPING = "Stopping"
    STOPPED = "Stopped"
    FAILED = "Failed"
    CRASHED = "Crashed"
    RESTARTING = "Restarting"


S = Status

TRANSITIONS: dict[Status, frozenset[Status]] = {
    S.CREATED: frozenset({S.INITIALIZING}),
    S.INITIALIZING: frozenset({S.READY, S.FAILED}),
    S.READY: frozenset({S.STARTING, S.INITIALIZING}),
    # Starting → Stopping: a stop that arrives mid-start; Starting → Stopped: startup recovery ("process lost").
    S.STARTING: frozenset({S.RUNNING, S.FAILED, S.STOPPING, S.STOPPED}),
    # Running → Stopped: a clean exit (OneShot done, or Service exit 0 under OnFailure/Never), a detach, or
    # startup recovery finding the process gone.
    S.RUNNING: frozenset({S.STOPPING, S.CRASHED, S.STOPPED}),
    S.STOPPING: frozenset({S.STOPPED}),
    # Stopped/Failed → Initializing: re-materialization (agent sync) of an idle instance.
    S.STOPPED: frozenset({S.STARTING, S.INITIALIZING}),
    S.FAILED: frozenset({S.STARTING, S.INITIALIZING}),
    # Crashed → Stopped: a stop while the restart is still pending cancels it.
    S.CRASHED: frozenset({S.RESTARTING, S.FAILED, S.STARTING, S.STOPPED}),
    # Restarting → Stopped: a stop during the backoff wait cancels the restart.
    S.RESTARTING: frozenset({S.STARTING, S.STOPPED, S.FAILED}),
}

ACTIVE: frozenset[Status] = frozenset({S.STARTING, S.RUNNING, S.STOPPING})
"""States in which a process may exist; startup recovery checks exactly these."""

DESTROYABLE: frozenset[Status] = frozenset({S.CREATED, S.READY, S.STOPPED, S.FAILED, S.CRASHED})
"""States from which destroy proceeds without --force (Created/Crashed added: nothing runs in them)."""

STARTABLE: frozenset[Status] = frozenset({S.READY, S.STOPPED, S.FAILED, S.CRASHED})


def can_transition(src: Status, dst: Status) -> bool:
    return dst in TRANSITIONS[src]


def check_transition(src: Status, dst: Status, *, name: str = "") -> None:
    """Raise INVALID_TRANSITION naming the instance and both states unless ``src → dst`` is in the table."""
    if not can_transition(src, dst):
        raise InvalidTransition(
            f"{name or 'instance'}: cannot go from {src.value} to {dst.value}",
            agent=name,
            **{"from": src.value, "to": dst.value},
        )
