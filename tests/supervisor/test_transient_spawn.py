"""Class 4 of issue #10: a passing resource shortage at spawn goes through the backoff like a crash.

Before, a restart that could not spawn because of EMFILE or EAGAIN (fd or process limits) put the instance
in Failed, and it was never retried. The shortage is simulated at the spawn call (as root, RLIMIT_NPROC does
not apply, and lowering RLIMIT_NOFILE would starve the test itself).
"""

from __future__ import annotations

import asyncio
import errno
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from actantd.config.service import ConfigService
from actantd.errors import AgentLaunch
from actantd.events import EventBus
from actantd.journal import Journal
from actantd.manager import Manager
from actantd.paths import Layout
from actantd.supervisor import spawn
from actantd.supervisor.process import is_transient_spawn_error
from tests.harness import make_configs


@pytest.fixture
async def manager(short_tmp: Path) -> AsyncIterator[tuple[Manager, EventBus]]:
    configs = make_configs(short_tmp)
    layout = Layout(home=short_tmp / "home", configs=configs, socket=short_tmp / "s.sock")
    layout.home.mkdir()
    svc = ConfigService(configs)
    journal = Journal(layout.journal)
    bus = EventBus()
    m = Manager(layout, lambda: svc.registry, journal, bus, python=sys.executable)
    await m.initialize()
    try:
        yield m, bus
    finally:
        await m.shutdown(stop_agents=True)
        journal.close()


def _failing_spawn(monkeypatch: pytest.MonkeyPatch, errnum: int, times: int) -> list[int]:
    real = spawn.spawn
    calls: list[int] = []

    def fake(*args: Any, **kwargs: Any) -> spawn.Spawned:
        calls.append(1)
        if len(calls) <= times:
            raise OSError(errnum, "simulated shortage")
        return real(*args, **kwargs)

    monkeypatch.setattr(spawn, "spawn", fake)
    return calls


@pytest.mark.parametrize("errnum", [errno.EMFILE, errno.EAGAIN])
async def test_a_transient_spawn_failure_is_retried_until_it_runs(
    manager: tuple[Manager, EventBus], monkeypatch: pytest.MonkeyPatch, errnum: int
) -> None:
    m, bus = manager
    await m.create("short", "sleeper")
    running = asyncio.Event()
    seen: list[str] = []

    def deliver(event: dict[str, Any]) -> bool:
        if event.get("type") == "transition" and event.get("agent") == "short":
            seen.append(event["to"])
            if event["to"] == "Running":
                running.set()
        return True

    bus.subscribe(deliver)
    calls = _failing_spawn(monkeypatch, errnum, times=2)
    with pytest.raises(AgentLaunch) as info:
        await m.start("short")
    assert info.value.context.get("retrying") is True
    await asyncio.wait_for(running.wait(), 30)
    assert len(calls) == 3
    assert "Failed" not in seen, seen
    assert seen.count("Restarting") == 2, seen


async def test_a_permanent_spawn_failure_still_fails(manager: tuple[Manager, EventBus]) -> None:
    m, _ = manager
    await m.create("nope", "missing-exe")
    with pytest.raises(AgentLaunch):
        await m.start("nope")
    assert m.get("nope").status.value == "Failed"


def test_transient_errors_are_recognised_through_the_wrapping() -> None:
    wrapped = AgentLaunch("could not start", errno=errno.EMFILE)
    assert is_transient_spawn_error(wrapped)
    assert is_transient_spawn_error(OSError(errno.EAGAIN, "x"))
    assert not is_transient_spawn_error(OSError(errno.ENOENT, "x"))
