"""The declarative method table: every method of docs/protocol.md is registered once, and "mutating" (what is
journaled as a command) is a property of the registration."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from actantd.rpc.handlers import METHODS
from actantd.rpc.registry import MethodTable

PROTOCOL = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"

MUTATING = {
    "daemon.shutdown", "agent.create", "agent.start", "agent.stop", "agent.restart", "agent.destroy",
    "agent.sync", "agent.run", "agent.attach", "agent.detach", "config.migrate",
    "agent.prompt", "agent.prompt.cancel", "agent.permission.respond",
}  # fmt: skip
EVENT_TYPES = {"config.changed", "config.error", "prompt.update", "prompt.permission"}
"""Named like methods in docs/protocol.md, but journal event types (and the notifications of agent.prompt)."""


def test_mutating_is_exactly_the_state_changing_methods() -> None:
    assert {m.name for m in METHODS if m.mutating} == MUTATING
    assert METHODS.is_mutating("agent.start")
    assert not METHODS.is_mutating("agent.status")
    assert not METHODS.is_mutating("no.such.method")


def test_every_method_the_protocol_documents_is_registered() -> None:
    documented = set(re.findall(r"`([a-z]+\.[a-zA-Z]+)`", PROTOCOL.read_text()))
    registered = {m.name for m in METHODS}
    namespaces = {name.split(".")[0] for name in registered}
    missing = {name for name in documented if name.split(".")[0] in namespaces} - registered - EVENT_TYPES
    assert registered, "no method registered"
    assert not missing, f"documented but not registered: {sorted(missing)}"


def test_a_name_registers_once() -> None:
    table = MethodTable()

    async def handler(svc: object, params: object, ctx: object) -> None:
        return None

    table.add("x.y", handler)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="registered twice"):
        table.add("x.y", handler)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="registered twice"):
        MethodTable(table, table)
