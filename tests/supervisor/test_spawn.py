"""spawn(): detached agents with O_APPEND logs, PATH resolution against the agent's env, typed launch errors."""

from __future__ import annotations

import asyncio
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from actantd.errors import AgentLaunch
from actantd.supervisor import exits
from actantd.supervisor.spawn import ignored_signals, is_child_subreaper, resolve_executable, spawn
from tests.helpers import ignores

PY = sys.executable


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(extra)
    return env


async def _run(argv: list[str], tmp_path: Path, **kwargs: object) -> tuple[exits.ExitInfo, Path, Path]:
    out, err = tmp_path / "logs" / "deep" / "stdout.log", tmp_path / "logs" / "deep" / "stderr.log"
    spawned = spawn(argv, kwargs.pop("cwd", tmp_path), kwargs.pop("env", _env()), out, err)  # type: ignore[arg-type]
    info = await exits.watch_exit(asyncio.get_running_loop(), spawned.pid, is_child=True, popen=spawned.popen)
    return info, out, err


async def test_spawn_writes_logs_and_detaches(tmp_path: Path) -> None:
    script = (
        "import os, sys\n"
        "print('out', os.getsid(0) == os.getpid(), os.getpgrp() == os.getpid(), flush=True)\n"
        "print('err', repr(sys.stdin.read()), file=sys.stderr)\n"
        "print(os.environ['ACTANT_INSTANCE_ID'])\n"
    )
    out = tmp_path / "logs" / "stdout.log"
    out.parent.mkdir()
    out.write_text("earlier\n")
    spawned = spawn([PY, "-c", script], tmp_path, _env(ACTANT_INSTANCE_ID="abc"), out, tmp_path / "e" / "stderr.log")
    assert spawned.create_time == pytest.approx(psutil.Process(spawned.pid).create_time())
    info = await exits.watch_exit(asyncio.get_running_loop(), spawned.pid, is_child=True, popen=spawned.popen)
    assert (info.code, info.signal) == (0, None)
    assert spawned.popen.returncode == 0
    # Appended, not truncated; a new session and group; stdin is /dev/null (immediate EOF).
    assert out.read_text() == "earlier\nout True True\nabc\n"
    assert (tmp_path / "e" / "stderr.log").read_text() == "err ''\n"
    assert stat.S_IMODE(os.stat(tmp_path / "e" / "stderr.log").st_mode) == 0o600


async def test_log_files_are_opened_append_only(tmp_path: Path) -> None:
    """O_APPEND on the agent's own descriptors: after a copy-truncate it writes at the new end, not at a hole."""
    script = "print([l for l in open('/proc/self/fdinfo/1') if l.startswith('flags')][0].split()[1])"
    info, out, _err = await _run([PY, "-c", script], tmp_path)
    assert info.code == 0
    assert int(out.read_text().strip(), 8) & os.O_APPEND


async def test_same_path_for_both_streams_interleaves(tmp_path: Path) -> None:
    log = tmp_path / "both.log"
    script = "import sys; print('a', flush=True); print('b', file=sys.stderr, flush=True); print('c', flush=True)"
    spawned = spawn([PY, "-c", script], tmp_path, _env(), log, log)
    await exits.watch_exit(asyncio.get_running_loop(), spawned.pid, is_child=True, popen=spawned.popen)
    assert log.read_text() == "a\nb\nc\n"


async def test_no_daemon_descriptors_leak_into_the_agent(tmp_path: Path) -> None:
    fd = os.open(tmp_path / "secret", os.O_WRONLY | os.O_CREAT)
    leak = os.dup2(fd, 100, inheritable=True)
    os.close(fd)
    try:
        info, out, _ = await _run([PY, "-c", "import os; print(' '.join(os.listdir('/proc/self/fd')))"], tmp_path)
    finally:
        os.close(leak)
    assert info.code == 0
    assert "100" not in out.read_text().split()


async def test_executable_resolved_on_the_agents_path(tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    tool = bindir / "my-agent"
    tool.write_text('#!/bin/sh\necho "$0 ran in $PWD"\n')
    tool.chmod(0o755)
    work = tmp_path / "work"
    work.mkdir()
    env = _env(PATH=f"{bindir}:/usr/bin:/bin")
    info, out, _ = await _run(["my-agent"], tmp_path, cwd=work, env=env)
    assert info.code == 0
    # Found on the env's PATH (the daemon's own PATH has no such directory), run in the workspace.
    assert out.read_text() == f"{tool} ran in {work}\n"


async def test_relative_path_is_relative_to_the_workspace(tmp_path: Path) -> None:
    work = tmp_path / "ws"
    work.mkdir()
    script = work / "run.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o755)
    assert resolve_executable("./run.sh", work, {}) == str(work / "run.sh")
    info, out, _ = await _run(["./run.sh"], tmp_path, cwd=work)
    assert (info.code, out.read_text()) == (0, "hi\n")


def test_missing_executable_names_it_and_the_install_hint(tmp_path: Path) -> None:
    hint = "npm install -g @anthropic-ai/claude-code"
    env = _env(PATH=str(tmp_path))
    with pytest.raises(AgentLaunch) as caught:
        spawn(["claude", "--help"], tmp_path, env, tmp_path / "o", tmp_path / "e", install_hint=hint)
    err = caught.value
    assert err.message == f"'claude' not found on PATH; install it with: {hint}"
    assert err.context["executable"] == "claude"
    assert err.context["hint"] == hint
    assert err.to_rpc()["code"] == -32008
    with pytest.raises(AgentLaunch, match=r"^'nope' not found on PATH$"):
        spawn(["nope"], tmp_path, env, tmp_path / "o", tmp_path / "e")


def test_missing_path_with_slash(tmp_path: Path) -> None:
    with pytest.raises(AgentLaunch, match=r"'\./missing' not found"):
        spawn(["./missing"], tmp_path, _env(), tmp_path / "o", tmp_path / "e")


def test_not_executable_is_permission_denied(tmp_path: Path) -> None:
    script = tmp_path / "agent.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o644)
    with pytest.raises(AgentLaunch, match="permission denied") as caught:
        spawn([str(script)], tmp_path, _env(), tmp_path / "o", tmp_path / "e")
    assert caught.value.context["errno"] == 13


def test_exec_format_error(tmp_path: Path) -> None:
    script = tmp_path / "agent"
    script.write_bytes(b"\x00\x01\x02 not a program")
    script.chmod(0o755)
    with pytest.raises(AgentLaunch, match="exec format error"):
        spawn([str(script)], tmp_path, _env(), tmp_path / "o", tmp_path / "e")


def test_bad_working_directory(tmp_path: Path) -> None:
    with pytest.raises(AgentLaunch, match="cannot enter working directory"):
        spawn(["true"], tmp_path / "nowhere", _env(), tmp_path / "o", tmp_path / "e")


def test_empty_command(tmp_path: Path) -> None:
    with pytest.raises(AgentLaunch, match="empty command"):
        spawn([], tmp_path, _env(), tmp_path / "o", tmp_path / "e")


def test_child_subreaper_really_adopts_orphans(tmp_path: Path) -> None:
    """A process that calls set_child_subreaper() becomes the parent of its double-forked grandchildren."""
    script = (
        "import os, sys\n"
        "from actantd.supervisor.spawn import set_child_subreaper, is_child_subreaper\n"
        "set_child_subreaper()\n"
        "assert is_child_subreaper()\n"
        "r, w = os.pipe()\n"
        "mid = os.fork()\n"
        "if mid == 0:\n"
        "    if os.fork() == 0:\n"
        "        os.close(w)\n"
        "        os.read(r, 1)\n"  # wait until the grand-parent has looked
        "        os._exit(0)\n"
        "    os._exit(0)\n"
        "os.waitpid(mid, 0)\n"
        "def ppid(p):\n"
        "    try:\n"
        "        return int(open(f'/proc/{p}/stat').read().rsplit(')', 1)[1].split()[1])\n"
        "    except OSError:\n"
        "        return None\n"
        "orphans = [int(p) for p in os.listdir('/proc') if p.isdigit() and ppid(p) == os.getpid()]\n"
        "os.close(w)\n"
        "pid, status = os.wait()\n"
        "print(len(orphans), pid in orphans, status)\n"
    )
    done = subprocess.run([PY, "-c", script], capture_output=True, text=True, timeout=30, cwd=os.getcwd())
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1", "True", "0"]
    assert is_child_subreaper()  # pytest itself (conftest)


SIGIGN_OF_SELF = "print(open('/proc/self/status').read())"


async def test_agents_start_with_default_signal_dispositions(tmp_path: Path) -> None:
    """A parent that ignores SIGINT/SIGQUIT (a background job) must not hand SIG_IGN on: exec keeps it."""
    saved = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGQUIT)}
    try:
        assert set(ignored_signals()) >= {signal.SIGINT, signal.SIGQUIT}
        info, out, _err = await _run([PY, "-c", SIGIGN_OF_SELF], tmp_path)
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
    assert info.code == 0
    mask = int(next(line.split()[1] for line in out.read_text().splitlines() if line.startswith("SigIgn:")), 16)
    assert not ignores(mask, signal.SIGINT) and not ignores(mask, signal.SIGQUIT), hex(mask)
