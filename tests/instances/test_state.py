"""The transition table is the only authority on legality; these tests enumerate it."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actantd.errors import InvalidTransition
from actantd.instances.state import ACTIVE, TRANSITIONS, Status, can_transition, check_transition

DESIGN_EDGES = [
    ("Created", "Initializing"),
    ("Initializing", "Ready"),
    ("Initializing", "Failed"),
    ("Ready", "Starting"),
    ("Starting", "Running"),
    ("Starting", "Failed"),
    ("Running", "Stopping"),
    ("Stopping", "Stopped"),
    ("Running", "Crashed"),
    ("Crashed", "Restarting"),
    ("Restarting", "Starting"),
    ("Crashed", "Failed"),
    ("Stopped", "Starting"),
    ("Failed", "Starting"),
    ("Crashed", "Starting"),
]


def test_every_status_has_a_row() -> None:
    assert set(TRANSITIONS) == set(Status)


@pytest.mark.parametrize(("src", "dst"), DESIGN_EDGES)
def test_design_diagram_edges_are_allowed(src: str, dst: str) -> None:
    assert can_transition(Status(src), Status(dst))


def test_enum_values_are_pascal_case_strings() -> None:
    assert [s.value for s in Status] == [
        "Created", "Initializing", "Ready", "Starting", "Running",
        "Stopping", "Stopped", "Failed", "Crashed", "Restarting",
    ]  # fmt: skip
    assert Status.RUNNING == "Running"


def test_stopping_only_ends_in_stopped() -> None:
    assert TRANSITIONS[Status.STOPPING] == {Status.STOPPED}


def test_no_status_goes_back_to_created() -> None:
    assert all(Status.CREATED not in dsts for dsts in TRANSITIONS.values())


@given(st.sampled_from(list(Status)), st.sampled_from(list(Status)))
def test_check_transition_agrees_with_table(src: Status, dst: Status) -> None:
    if dst in TRANSITIONS[src]:
        check_transition(src, dst, name="x")
    else:
        with pytest.raises(InvalidTransition) as info:
            check_transition(src, dst, name="x")
        err = info.value.to_rpc()
        assert err["code"] == -32011
        assert err["data"]["errorCode"] == "INVALID_TRANSITION"
        assert err["data"]["context"] == {"agent": "x", "from": src.value, "to": dst.value}


@given(st.lists(st.sampled_from(list(Status)), max_size=40))
def test_random_walks_only_follow_the_table(steps: list[Status]) -> None:
    """Any sequence of requested moves either follows the table or is refused without changing state."""
    state = Status.CREATED
    for dst in steps:
        try:
            check_transition(state, dst)
        except InvalidTransition:
            continue
        state = dst
    assert state in Status


def test_every_state_is_reachable_from_created() -> None:
    seen = {Status.CREATED}
    frontier = [Status.CREATED]
    while frontier:
        for nxt in TRANSITIONS[frontier.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                frontier.append(nxt)
    assert seen == set(Status)


def test_active_states_can_reach_stopped() -> None:
    for status in ACTIVE:
        assert Status.STOPPED in TRANSITIONS[status] or Status.STOPPING in TRANSITIONS[status]
