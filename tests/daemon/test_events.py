"""The in-process event bus (actantd/events.py): filters, subscription lifetime, and subscriber isolation."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from actantd.events import Event, EventBus, TypeFilter


def ev(type_: str, agent: str | None = None, **extra: Any) -> Event:
    return {"type": type_, "agent": agent, "at": "2025-01-01T00:00:00.000Z", **extra}


class Inbox:
    """A subscriber that only appends, like an RPC connection enqueuing a notification."""

    def __init__(self) -> None:
        self.got: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.got.append(event)

    @property
    def types(self) -> list[str]:
        return [e["type"] for e in self.got]


EVENTS = [
    ev("transition", "a", **{"from": "Starting", "to": "Running"}),
    ev("transition", "b"),
    ev("config"),
    ev("config.error"),
    ev("configuration"),
    ev("command", "a"),
    ev("daemon"),
]


def publish_all(bus: EventBus) -> None:
    for event in EVENTS:
        bus.publish(event)


@pytest.mark.parametrize(
    ("agent", "types", "expected"),
    [
        (None, None, [e["type"] for e in EVENTS]),
        (None, ["transition"], ["transition", "transition"]),
        (None, "transition", ["transition", "transition"]),
        (None, {"config.*"}, ["config", "config.error"]),
        (None, ["config.*", "daemon"], ["config", "config.error", "daemon"]),
        (None, ["*"], [e["type"] for e in EVENTS]),
        (None, [], [e["type"] for e in EVENTS]),
        ("a", None, ["transition", "command"]),
        ("a", ["command"], ["command"]),
        ("nobody", None, []),
    ],
)
def test_filters(agent: str | None, types: Any, expected: list[str]) -> None:
    bus = EventBus()
    inbox = Inbox()
    bus.subscribe(inbox, agent=agent, types=types)
    publish_all(bus)
    assert inbox.types == expected


def test_agent_filtered_subscribers_do_not_get_daemon_wide_events() -> None:
    bus = EventBus()
    inbox = Inbox()
    bus.subscribe(inbox, agent="a")
    assert bus.publish(ev("daemon")) == 0
    assert inbox.got == []


def test_the_event_is_delivered_as_published() -> None:
    bus = EventBus()
    inbox = Inbox()
    bus.subscribe(inbox)
    event = EVENTS[0]
    assert bus.publish(event) == 1
    assert inbox.got[0] is event
    assert (inbox.got[0]["from"], inbox.got[0]["to"]) == ("Starting", "Running")


def test_type_filter_semantics() -> None:
    f = TypeFilter.of(["config.*", "transition"])
    assert f is not None
    assert f.matches("config") and f.matches("config.error") and f.matches("config.a.b")
    assert f.matches("transition")
    assert not f.matches("configuration") and not f.matches("transitions") and not f.matches("conf")
    assert TypeFilter.of(None) is None
    assert TypeFilter.of([]) is None
    assert TypeFilter.of(["x", "*"]) is None


def test_unsubscribe() -> None:
    bus = EventBus()
    kept, dropped = Inbox(), Inbox()
    bus.subscribe(kept)
    sub = bus.subscribe(dropped)
    assert bus.unsubscribe(sub) is True
    assert bus.unsubscribe(sub) is False
    assert bus.unsubscribe("sub-unknown") is False
    bus.publish(ev("daemon"))
    assert kept.types == ["daemon"] and dropped.got == []
    assert len(bus) == 1


def test_ids_are_unique() -> None:
    bus = EventBus()
    ids = {bus.subscribe(Inbox()) for _ in range(100)}
    assert len(ids) == 100


def test_owner_groups_subscriptions_and_guards_them() -> None:
    bus = EventBus()
    conn1, conn2 = object(), object()
    a, b, c = Inbox(), Inbox(), Inbox()
    sub_a = bus.subscribe(a, owner=conn1)
    bus.subscribe(b, owner=conn1, types=["transition"])
    sub_c = bus.subscribe(c, owner=conn2)

    # One connection can't cancel another's subscription.
    assert bus.unsubscribe(sub_c, owner=conn1) is False
    assert bus.unsubscribe(sub_a, owner=conn1) is True

    assert bus.unsubscribe_all(conn1) == 1  # only b was left
    assert bus.unsubscribe_all(conn1) == 0
    bus.publish(ev("transition", "x"))
    assert a.got == [] and b.got == [] and c.types == ["transition"]
    assert bus.unsubscribe_all(conn2) == 1
    assert len(bus) == 0


def test_a_raising_subscriber_affects_nobody_else(caplog: pytest.LogCaptureFixture) -> None:
    bus = EventBus()
    before, after = Inbox(), Inbox()

    def broken(event: Event) -> None:
        raise RuntimeError("subscriber bug")

    bus.subscribe(before)
    bus.subscribe(broken)
    bus.subscribe(after)
    with caplog.at_level(logging.DEBUG, logger="actantd.events"):
        assert bus.publish(ev("daemon")) == 2  # no exception reaches the publisher
        assert bus.publish(ev("daemon")) == 2
    assert before.types == after.types == ["daemon", "daemon"]
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert len(tracebacks) == 1 and "subscriber bug" in caplog.text  # logged, once with its traceback
    assert len(bus) == 3


def test_unsubscribing_during_a_publish_takes_effect_at_once() -> None:
    bus = EventBus()
    later = Inbox()
    later_id = ""

    def cancel_later(event: Event) -> None:
        bus.unsubscribe(later_id)

    bus.subscribe(cancel_later)
    later_id = bus.subscribe(later)
    assert bus.publish(ev("daemon")) == 1
    assert later.got == []


def test_subscribing_during_a_publish_starts_with_the_next_event() -> None:
    bus = EventBus()
    fresh = Inbox()
    subscribed: list[str] = []

    def subscribe_once(event: Event) -> None:
        if not subscribed:
            subscribed.append(bus.subscribe(fresh))

    bus.subscribe(subscribe_once)
    bus.publish(ev("first"))
    bus.publish(ev("second"))
    assert fresh.types == ["second"]


def test_a_subscriber_may_publish_from_deliver() -> None:
    bus = EventBus()
    inbox = Inbox()

    def echo(event: Event) -> None:
        if event["type"] == "ping":
            bus.publish(ev("pong"))

    bus.subscribe(echo)
    bus.subscribe(inbox)
    bus.publish(ev("ping"))
    assert sorted(inbox.types) == ["ping", "pong"]
