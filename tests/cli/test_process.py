"""``actantctl`` as a real process: import thinness, exit statuses, Ctrl-C while following, shell completion."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from tests.cli.fake_daemon import FakeDaemon
from tests.helpers import with_default_signals

HEAVY = ("msgspec", "uvloop", "psutil", "watchfiles", "asyncio", "sqlite3")
"""Modules the client must never load: the daemon's dependencies, plus stdlib packages it has no use for."""
ALLOWED_ACTANTD = {"actantd", "actantd.paths", "actantd.errors", "actantd.limits", "actantd.identity",
                   "actantd.instances", "actantd.instances.state"}  # fmt: skip
"""The stdlib-only daemon modules the CLI shares (tests/test_architecture.py checks they stay stdlib-only)."""
CTL = [sys.executable, "-m", "actantctl"]


@pytest.fixture
def fake(short_tmp: Path) -> Iterator[FakeDaemon]:
    with FakeDaemon(short_tmp / "d.sock") as daemon:
        yield daemon


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys, json; print(json.dumps(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return set(json.loads(out.splitlines()[-1]))


def _heavy(modules: set[str]) -> list[str]:
    bad = [m for m in modules if m.split(".")[0] in HEAVY]
    bad += [m for m in modules if m.split(".")[0] == "actantd" and m not in ALLOWED_ACTANTD]
    return sorted(bad)


def test_importing_the_cli_stays_thin() -> None:
    modules = _modules_after("import actantctl.cli")
    assert _heavy(modules) == []
    # sub-groups load on first use only
    assert not [m for m in modules if m.startswith("actantctl.commands.")]
    assert "subprocess" not in modules


def test_every_command_module_stays_thin() -> None:
    code = "import click, actantctl.cli as c\nfor n in c.COMMANDS: c.cli.get_command(click.Context(c.cli), n)"
    modules = _modules_after(code)
    assert {"actantctl.commands.agent", "actantctl.commands.daemon", "actantctl.commands.events"} <= modules
    assert _heavy(modules) == []


def _list_json_listing_modules(socket: Path) -> str:
    """Python source running ``actantctl agent list --json`` against ``socket`` that prints, at exit, every
    module it loaded (as JSON, on stderr)."""
    return (
        "import atexit, json, sys\n"
        "atexit.register(lambda: print(json.dumps(sorted(sys.modules)), file=sys.stderr))\n"
        "from actantctl.cli import main\n"
        f"sys.argv = ['actantctl', '--socket', {str(socket)!r}, 'agent', 'list', '--json']\n"
        "main()\n"
    )


def test_a_real_command_imports_nothing_heavy(fake: FakeDaemon) -> None:
    """The start-up check: every module ``agent list --json`` loads, end to end, listed at exit."""
    fake.answer("agent.list", {"agents": []})
    code = _list_json_listing_modules(fake.path)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"agents": []}
    imported = set(json.loads(proc.stderr.splitlines()[-1]))
    assert "actantctl.commands.agent" in imported
    assert _heavy(imported) == []
    assert "actantctl.commands.catalog" not in imported  # lazy: only the group that was named


NOT_ON_THE_LIST_PATH = ("pathlib", "dataclasses", "actantctl.views", "actantctl.worktree_views",
                        "actantctl.commands.agent_manage", "actantctl.environment")  # fmt: skip
"""What ``agent list --json`` does without: each costs milliseconds at every call (see actantctl/cli.py)."""


def test_agent_list_json_loads_only_its_own_command(fake: FakeDaemon) -> None:
    """As a wheel install runs it: ``-S`` skips the dev venv's ``.pth`` files, whose editable-install finder
    imports pathlib at every interpreter start; the package and click come from PYTHONPATH instead."""
    fake.answer("agent.list", {"agents": [{"name": "a", "status": "Running"}]})
    code = _list_json_listing_modules(fake.path)
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(repo), str(Path(click.__file__).parents[1])])}
    proc = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"agents": [{"name": "a", "status": "Running"}]}
    imported = set(json.loads(proc.stderr.splitlines()[-1]))
    assert "actantctl.commands.agent_list" in imported
    assert [m for m in NOT_ON_THE_LIST_PATH if m in imported] == []
    assert _heavy(imported) == []


def test_not_running_exit_status_and_message(short_tmp: Path) -> None:
    sock = short_tmp / "none.sock"
    proc = subprocess.run([*CTL, "--socket", str(sock), "agent", "list"], capture_output=True, text=True)
    assert proc.returncode == 3
    assert proc.stdout == ""
    assert proc.stderr == (
        f"error: actantd is not running (no socket at {sock}); "
        "start it with `actantctl daemon start` (or run `actantd` in a terminal)\n"
    )


def test_socket_from_environment(fake: FakeDaemon) -> None:
    env = {**os.environ, "ACTANT_SOCKET": str(fake.path)}
    proc = subprocess.run([*CTL, "daemon", "status", "--json"], capture_output=True, text=True, env=env)
    assert proc.returncode == 1  # the fake has no daemon.status: METHOD_NOT_FOUND, a generic failure
    assert json.loads(proc.stdout)["error"]["code"] == -32601
    assert fake.params("daemon.status") == [{}]


def test_events_follow_until_ctrl_c(fake: FakeDaemon) -> None:
    fake.answer("events.subscribe", {"subscription": "S"})
    events = [
        {
            "subscription": "S",
            "id": i,
            "type": "transition",
            "agent": "a",
            "at": "2024-05-01T12:00:00+00:00",
            "from": "Starting",
            "to": "Running",
        }
        for i in (1, 2)
    ]
    fake.push_after("events.subscribe", [("event", e) for e in events], close=False)
    proc = subprocess.Popen(  # stopped with SIGINT (Ctrl-C): it must not inherit an ignored SIGINT from pytest
        with_default_signals([*CTL, "--socket", str(fake.path), "events", "-f", "--json"]),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines = [json.loads(proc.stdout.readline()) for _ in events]
        assert [e["id"] for e in lines] == [1, 2]
        assert "subscription" not in lines[0]
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=10)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 130, stderr  # Ctrl-C: 128 + SIGINT
    assert "Traceback" not in stderr


def test_dynamic_completion_of_agent_names(fake: FakeDaemon) -> None:
    fake.answer("agent.list", {"agents": [{"name": "reviewer"}, {"name": "rescue"}, {"name": "scratch"}]})
    env = {
        **os.environ,
        "_ACTANTCTL_COMPLETE": "bash_complete",
        "COMP_WORDS": f"actantctl --socket {fake.path} agent status re",
        "COMP_CWORD": "5",
    }
    proc = subprocess.run(CTL, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["plain,reviewer", "plain,rescue"]


def test_completion_without_daemon_completes_nothing(short_tmp: Path) -> None:
    env = {
        **os.environ,
        "_ACTANTCTL_COMPLETE": "bash_complete",
        "COMP_WORDS": f"actantctl --socket {short_tmp / 'x.sock'} agent start ",
        "COMP_CWORD": "5",
    }
    proc = subprocess.run(CTL, capture_output=True, text=True, env=env)
    assert (proc.returncode, proc.stdout.strip(), proc.stderr) == (0, "", "")


def test_console_script_and_completion_source() -> None:
    script = Path(sys.executable).with_name("actantctl")
    argv = [str(script)] if script.exists() else CTL
    proc = subprocess.run([*argv, "completion", "bash"], capture_output=True, text=True)
    assert proc.returncode == 0
    assert "_ACTANTCTL_COMPLETE=bash_complete" in proc.stdout
    assert subprocess.run([*argv, "--version"], capture_output=True, text=True).stdout.startswith("actantctl, version ")
