"""Health probes against a real TCP listener and real commands; the monitor's threshold and re-arming."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from pathlib import Path

import psutil

from actantd.supervisor.health import HealthMonitor, probe_command, probe_tcp
from tests.helpers import until


def _free_port() -> int:
    """A port nobody listens on (bound then released: connecting to it is refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def _server() -> tuple[asyncio.Server, int]:
    async def handle(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def test_probe_tcp() -> None:
    server, port = await _server()
    async with server:
        assert await probe_tcp("127.0.0.1", port, timeout=2)
    assert not await probe_tcp("127.0.0.1", _free_port(), timeout=2)


async def test_probe_command_exit_status(tmp_path: Path) -> None:
    env = dict(os.environ)
    assert await probe_command(["true"], tmp_path, env, timeout=5)
    assert not await probe_command(["false"], tmp_path, env, timeout=5)
    assert not await probe_command(["no-such-probe-command"], tmp_path, env, timeout=5)
    assert await probe_command(["sh", "-c", 'test "$PWD" = "$1"', "sh", str(tmp_path)], tmp_path, env, timeout=5)


async def test_probe_command_timeout_kills_its_group(tmp_path: Path) -> None:
    start = time.monotonic()
    # sh and its sleep child: both must be gone afterwards (the conftest fixture checks).
    assert not await probe_command(["sh", "-c", "sleep 1000 & sleep 1000; wait"], tmp_path, None, timeout=0.3)
    assert time.monotonic() - start < 3


async def test_probe_command_leftovers_are_killed(tmp_path: Path) -> None:
    assert await probe_command(["sh", "-c", "sleep 1000 & exit 0"], tmp_path, None, timeout=5)


async def test_monitor_fires_once_at_the_threshold_and_rearms_on_success() -> None:
    script = iter([True, False, False, False, False, False, True, False, False, False] + [True] * 1000)
    probes = 0
    fired: list[tuple[int, str]] = []
    second = asyncio.Event()

    async def probe() -> bool:
        nonlocal probes
        probes += 1
        return next(script)

    async def unhealthy(reason: str) -> None:
        fired.append((probes, reason))
        if len(fired) == 2:
            second.set()

    monitor = HealthMonitor(probe, interval=0.001, failure_threshold=3, on_unhealthy=unhealthy, initial_delay=0)
    monitor.start()
    await asyncio.wait_for(second.wait(), 10)
    await until(lambda: probes >= 15)
    await monitor.aclose()
    assert fired == [(4, "3 consecutive health probes failed"), (10, "3 consecutive health probes failed")]
    assert not monitor.running


async def test_monitor_counts_raising_probes_as_failures() -> None:
    fired = asyncio.Event()

    async def probe() -> bool:
        raise RuntimeError("probe bug")

    async def unhealthy(_reason: str) -> None:
        fired.set()

    monitor = HealthMonitor(probe, interval=0.001, failure_threshold=2, on_unhealthy=unhealthy, initial_delay=0)
    monitor.start()
    await asyncio.wait_for(fired.wait(), 10)
    await monitor.aclose()


async def test_monitor_on_a_real_port_and_stop_from_the_handler() -> None:
    """The handler stops the monitor (as the manager does when it restarts the agent) and still completes."""
    server, port = await _server()
    done = asyncio.Event()
    monitor: HealthMonitor | None = None

    async def unhealthy(reason: str) -> None:
        assert monitor is not None
        monitor.stop()
        await asyncio.sleep(0)  # still running after the monitor's task was cancelled
        done.set()

    async def probe() -> bool:
        return await probe_tcp("127.0.0.1", port, timeout=1)

    monitor = HealthMonitor(probe, interval=0.01, failure_threshold=2, on_unhealthy=unhealthy, initial_delay=0)
    monitor.start()
    await until(lambda: monitor.healthy is True)
    server.close()
    await server.wait_closed()
    await asyncio.wait_for(done.wait(), 10)
    assert not monitor.running


async def test_stopping_mid_probe_kills_the_probe_process(tmp_path: Path) -> None:
    marker = tmp_path / "probing"

    async def probe() -> bool:
        return await probe_command(["sh", "-c", f"touch {marker}; exec sleep 1000"], tmp_path, None, timeout=100)

    async def unhealthy(_reason: str) -> None:
        raise AssertionError("never reached")

    monitor = HealthMonitor(probe, interval=1, failure_threshold=1, on_unhealthy=unhealthy, initial_delay=0)
    monitor.start()
    await until(marker.exists)
    await monitor.aclose()
    # The probe's sleep was SIGKILLed on cancellation; its pidfd watch reaps it as soon as the loop runs.
    await until(lambda: not any(_is_probe_sleep(pid) for pid in _children()))


def _children() -> list[int]:
    return [p.pid for p in psutil.Process().children()]


def _is_probe_sleep(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().startswith(b"sleep\0")
    except OSError:
        return False
