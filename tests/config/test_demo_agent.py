"""The bundled demo agent: a well-behaved service for trying Actant and for supervisor tests."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

TIMEOUT = 10.0


async def spawn(cwd: Path, *args: str, **env: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-u",
        "-m",
        "actantd.demo_agent",
        *args,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2]), **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def line(proc: asyncio.subprocess.Process) -> str:
    assert proc.stdout is not None
    return (await asyncio.wait_for(proc.stdout.readline(), TIMEOUT)).decode()


async def test_starts_beats_and_stops_on_sigterm(tmp_path: Path) -> None:
    (tmp_path / "AGENTS.md").write_text("Intro text\n\n# Review pull requests\n\n## Skills\n")
    proc = await spawn(tmp_path, ACTANT_INSTANCE="rev-1", DEMO_INTERVAL="0.05")
    try:
        first = await line(proc)
        assert "demo agent 'rev-1' started" in first
        assert "Review pull requests" in first
        assert "heartbeat 1" in await line(proc)
        proc.send_signal(signal.SIGTERM)
        rest, _ = await asyncio.wait_for(proc.communicate(), TIMEOUT)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0
    assert b"got SIGTERM; goodbye" in rest


async def test_sigint_is_a_clean_exit_too(tmp_path: Path) -> None:
    proc = await spawn(tmp_path, DEMO_INTERVAL="60")
    assert "demo agent 'demo' started" in await line(proc)
    proc.send_signal(signal.SIGINT)
    out, _ = await asyncio.wait_for(proc.communicate(), TIMEOUT)
    assert proc.returncode == 0 and b"got SIGINT" in out


async def test_exit_after_with_code(tmp_path: Path) -> None:
    proc = await spawn(tmp_path, DEMO_EXIT_AFTER="0", DEMO_EXIT_CODE="3")
    out, _ = await asyncio.wait_for(proc.communicate(), TIMEOUT)
    assert proc.returncode == 3
    assert b"exiting with code 3" in out


async def test_ignore_sigterm_needs_sigkill(tmp_path: Path) -> None:
    proc = await spawn(tmp_path, DEMO_IGNORE_SIGTERM="1", DEMO_INTERVAL="0.05")
    await line(proc)
    proc.send_signal(signal.SIGTERM)
    assert "heartbeat" in await line(proc)  # still alive after SIGTERM
    proc.kill()
    await asyncio.wait_for(proc.wait(), TIMEOUT)
    assert proc.returncode == -signal.SIGKILL


async def test_one_shot_prompt(tmp_path: Path) -> None:
    proc = await spawn(tmp_path, "fix", "the bug", ACTANT_INSTANCE="x")
    out, _ = await asyncio.wait_for(proc.communicate(), TIMEOUT)
    assert proc.returncode == 0
    assert json.loads(out) == {"agent": "x", "prompt": "fix the bug", "result": "demo agent received: fix the bug"}
