"""The instance state machine: one enum, one transition table, and the named sets of states.

Stdlib only, in the manner of supervisor's ``states.py``: the table is data, so tests can enumerate it and
no module decides legality ad hoc; ``actantctl`` imports the state names from here. Transitions beyond the
basic create → start → stop cycle are marked below with the reason they exist; each is one a supervisord or
systemd user would expect. docs/architecture.md shows where each transition is made.
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

STATUS_NAMES: tuple[str, ...] = tuple(s.value for s in Status)
"""Every status as it appears on the wire and on disk, in lifecycle order (CLI completion, ``--status``)."""

TRANSITIONS: dict[Status, frozenset[Status]] = {
    S.CREATED: frozenset({S.INITIALIZING}),
    S.INITIALIZING: frozenset({S.READY, S.FAILED}),
    S.READY: frozenset({S.STARTING, S.INITIALIZING}),
    # Starting → Stopping: a stop that arrives mid-start; Starting → Stopped: startup recovery ("process lost").
    # Starting → Restarting: a spawn that failed for a passing shortage (EMFILE, EAGAIN) waits out the backoff.
    S.STARTING: frozenset({S.RUNNING, S.FAILED, S.STOPPING, S.STOPPED, S.RESTARTING}),
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

LIVE: frozenset[Status] = frozenset({S.STARTING, S.RUNNING})
"""States in which the process is wanted: its exit is handled by the restart policy, a stop terminates it."""

RESTART_PENDING: frozenset[Status] = frozenset({S.RESTARTING, S.CRASHED})
"""The process is gone and the policy may still start it again: a stop or destroy cancels that restart."""

SUPERVISED: frozenset[Status] = ACTIVE | {S.RESTARTING}
"""States in which the daemon keeps an agent going (a process, or a restart waiting out its backoff):
shutdown stops exactly these, and the CLI shows an uptime for them."""

NEEDS_RECOVERY: frozenset[Status] = ACTIVE | RESTART_PENDING
"""States a previous daemon may have left mid-flight: startup recovery looks at each of them."""

STOPPABLE: frozenset[Status] = LIVE | RESTART_PENDING
"""States in which ``agent stop`` does something; in any other state it is an idempotent no-op."""

DESTROYABLE: frozenset[Status] = frozenset(Status) - SUPERVISED
"""States from which destroy proceeds without --force: no process runs and none is about to be started."""

STARTABLE: frozenset[Status] = frozenset({S.READY, S.STOPPED, S.FAILED, S.CRASHED})
"""States from which ``agent start`` launches a process."""

START_ACCEPTED: frozenset[Status] = STARTABLE | {S.RESTARTING, S.STARTING}
"""States ``agent start`` accepts: the startable ones, a pending restart (started at once), and a Starting
with no process behind it (a launch whose failure could not be recorded, disk full: starting again is how
the user recovers it)."""


ENDED: frozenset[Status] = frozenset({S.STOPPED, S.FAILED, S.CRASHED})
"""Where an instance lands when its process ended by itself; with no restart pending, an ``Ephemeral``
workspace is then removed (instances/workspaces.py, ``end_ephemeral``)."""


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
