"""The one-shot executor (actantd/runs/executor.py): streaming, bounded tails, timeouts that kill the tree."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import psutil
import pytest

from actantd.errors import AgentLaunch
from actantd.runs.executor import RunSpec, execute
from actantd.supervisor import kill

FAKES = Path(__file__).parent.parent / "fakes"
MARK = "test-instance.run"


def spec(tmp_path: Path, argv: list[str], **env: str) -> RunSpec:
    return RunSpec(argv=argv, env={**os.environ, kill.INSTANCE_ENV: MARK, **env}, cwd=str(tmp_path))


async def test_streams_lines_and_keeps_output(tmp_path: Path) -> None:
    seen: list[tuple[str, str]] = []
    result = await execute(
        spec(tmp_path, [sys.executable, str(FAKES / "fake_claude.py"), "-p", "--output-format", "json", "hi"]),
        marker=MARK, timeout=30, on_line=lambda s, line: seen.append((s, line)),
    )  # fmt: skip
    assert result.exit_code == 0 and not result.timed_out
    assert ("stderr", "fake-claude: working (1/3)") in seen
    assert any(s == "stdout" and '"session_id"' in line for s, line in seen)
    assert '"total_cost_usd"' in result.stdout and result.stdout_bytes == len(result.stdout.encode())
    assert not result.stdout_truncated


async def test_bounds_what_it_keeps(tmp_path: Path) -> None:
    result = await execute(
        spec(tmp_path, [sys.executable, str(FAKES / "fake_codex.py"), "exec", "--json", "hi"], FAKE_FLOOD="300000"),
        marker=MARK, timeout=30, keep_stderr=10_000,
    )  # fmt: skip
    assert result.stderr_bytes > 300_000 and result.stderr_truncated
    assert 10_000 <= len(result.stderr) <= 10_000 + 1
    assert "turn.completed" in result.stdout


async def test_timeout_kills_the_whole_tree(tmp_path: Path) -> None:
    result = await execute(
        spec(tmp_path, [sys.executable, str(FAKES / "fake_gemini.py"), "-p", "x"], FAKE_SLEEP="60",
             FAKE_GRANDCHILD="1"),
        marker=MARK, timeout=1.0,
    )  # fmt: skip
    assert result.timed_out and result.signal is not None
    assert result.duration_seconds < 20
    assert kill.find_instance_processes(MARK) == []
    assert not psutil.pid_exists(result.pid) or psutil.Process(result.pid).status() == psutil.STATUS_ZOMBIE


async def test_leftover_grandchild_does_not_hold_the_run(tmp_path: Path) -> None:
    result = await execute(
        spec(tmp_path, [sys.executable, str(FAKES / "fake_codex.py"), "exec", "hi"], FAKE_GRANDCHILD="1"),
        marker=MARK, timeout=30,
    )  # fmt: skip
    assert result.exit_code == 0 and "turn 1" in result.stdout
    assert kill.find_instance_processes(MARK) == []


async def test_exit_code_and_missing_executable(tmp_path: Path) -> None:
    result = await execute(spec(tmp_path, [sys.executable, "-c", "import sys; sys.exit(7)"]), marker=MARK, timeout=9)
    assert result.exit_code == 7
    with pytest.raises(AgentLaunch, match="not found"):
        await execute(spec(tmp_path, ["no-such-agent-cli"]), marker=MARK, timeout=9, install_hint="npm i x")
