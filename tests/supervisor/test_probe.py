"""``make_probe``: a ProbeSpec becomes the command or TCP probe the health monitor calls."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from actantd.supervisor.health import ProbeSpec, make_probe


async def test_a_command_spec_runs_in_its_cwd_with_its_env(tmp_path: Path) -> None:
    argv = ("sh", "-c", 'test "$PWD" = "$1" && test "$ACTANT_INSTANCE" = a1', "sh", str(tmp_path))
    ok = make_probe(ProbeSpec(timeout=5, argv=argv, cwd=tmp_path, env={"ACTANT_INSTANCE": "a1"}))
    bad = make_probe(ProbeSpec(timeout=5, argv=argv, cwd=tmp_path, env={"ACTANT_INSTANCE": "other"}))
    assert await ok()
    assert not await bad()


async def test_a_port_spec_connects() -> None:
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        assert await make_probe(ProbeSpec(timeout=5, port=port))()
    finally:
        server.close()
        await server.wait_closed()
    assert not await make_probe(ProbeSpec(timeout=5, port=port))()


def test_a_spec_with_neither_is_refused() -> None:
    with pytest.raises(ValueError, match="command or a port"):
        make_probe(ProbeSpec(timeout=1))
