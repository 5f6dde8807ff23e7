"""The named sets of states agree with the transition table: each names states from which the operation it
stands for is a legal move."""

from __future__ import annotations

from actantd.instances.state import (
    ACTIVE,
    DESTROYABLE,
    LIVE,
    NEEDS_RECOVERY,
    RESTART_PENDING,
    START_ACCEPTED,
    STARTABLE,
    STATUS_NAMES,
    STOPPABLE,
    SUPERVISED,
    Status,
    can_transition,
)

S = Status


def test_every_startable_state_can_start() -> None:
    assert all(can_transition(s, S.STARTING) for s in STARTABLE | RESTART_PENDING)
    assert STARTABLE | {S.RESTARTING, S.STARTING} == START_ACCEPTED


def test_stop_moves_are_legal() -> None:
    assert all(can_transition(s, S.STOPPING) for s in LIVE)
    assert all(can_transition(s, S.STOPPED) for s in RESTART_PENDING)
    assert STOPPABLE == LIVE | RESTART_PENDING


def test_nothing_runs_in_a_destroyable_state() -> None:
    assert not DESTROYABLE & ACTIVE
    assert S.RESTARTING not in DESTROYABLE  # a restart is about to start a process
    assert {S.CREATED, S.READY, S.STOPPED, S.FAILED, S.CRASHED} <= DESTROYABLE
    assert set(Status) == DESTROYABLE | SUPERVISED


def test_recovery_and_supervision_sets() -> None:
    assert ACTIVE | {S.RESTARTING, S.CRASHED} == NEEDS_RECOVERY
    assert {S.STARTING, S.RUNNING, S.STOPPING, S.RESTARTING} == SUPERVISED
    assert LIVE < ACTIVE


def test_status_names_are_the_wire_values_in_order() -> None:
    assert tuple(s.value for s in Status) == STATUS_NAMES
    assert STATUS_NAMES[0] == "Created"
