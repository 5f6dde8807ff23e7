"""What ``agent start`` reports when the program exits during the start check (issue #11): a clean exit is
"exited", never "started"; a failure says whether the restart policy retries and shows stderr, or stdout when
stderr is empty; a backend's ``startCheckSeconds`` covers CLIs that take over a second to fail; the Failed
reason names the last exit once; and the agent finds programs on the caller's PATH."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from tests.e2e.test_cli import CTL, _env, ctl, js, ok
from tests.harness import Daemon, add_template, write_json


def _template(daemon: Daemon, name: str, code: str, **extra: object) -> None:
    add_template(daemon, {"name": name, "backend": "custom", "launchMode": "Service",
                          "command": ["{python}", "-c", code], **extra})  # fmt: skip


def test_clean_exit_during_the_start_check_is_reported_as_exited(daemon: Daemon) -> None:
    _template(daemon, "quick", "print('usage: quick [options]')", restart={"policy": "OnFailure"})
    ok(daemon.socket, "agent", "create", "q", "-t", "quick")
    done = ctl(daemon.socket, "agent", "start", "q")
    assert done.returncode == 1, done
    assert "started" not in done.stdout
    assert "q exited during the start check (exited cleanly (code 0)); it is Stopped" in done.stderr


def test_failed_start_says_whether_the_policy_retries_and_shows_stdout_when_stderr_is_empty(daemon: Daemon) -> None:
    code = "import sys; print('Not logged in'); sys.exit(1)"
    _template(
        daemon,
        "flaky",
        code,
        restart={"policy": "OnFailure", "maxRestarts": 1, "initialDelayMs": 60000, "maxDelayMs": 60000},
    )
    _template(daemon, "never", code, restart={"policy": "Never"})
    ok(daemon.socket, "agent", "create", "f", "-t", "flaky")
    ok(daemon.socket, "agent", "create", "n", "-t", "never")
    done = ctl(daemon.socket, "agent", "start", "f")
    assert done.returncode == 1
    first = done.stderr.splitlines()[0]
    assert first.startswith(
        "error: agent 'f' exited right after start (exited with code 1); the restart policy will retry"
    )
    assert "  last lines of stdout:" in done.stderr and "    Not logged in" in done.stderr
    ok(daemon.socket, "agent", "stop", "f")
    done = ctl(daemon.socket, "agent", "start", "n", "--json")
    assert done.returncode == 1
    error = json.loads(done.stdout)["error"]
    assert error["context"]["willRetry"] is False and error["context"]["stdoutTail"] == ["Not logged in"]
    assert "it will not be restarted (restart policy is Never)" in done.stderr


def test_a_backend_start_check_catches_a_slow_failure(daemon: Daemon) -> None:
    write_json(daemon.configs / "backends" / "slow-cli.json", {"version": "1.0", "name": "slow-cli",
               "startCheckSeconds": 3})  # fmt: skip
    slow = "import sys, time; time.sleep(1.2); print('bad flag', file=sys.stderr); sys.exit(2)"
    add_template(daemon, {"name": "slow", "backend": "slow-cli", "command": ["{python}", "-c", slow],
                          "restart": {"policy": "Never"}})  # fmt: skip
    ok(daemon.socket, "agent", "create", "s", "-t", "slow")
    done = ctl(daemon.socket, "agent", "start", "s")
    assert done.returncode == 1, done
    assert "exited right after start (exited with code 2)" in done.stderr and "    bad flag" in done.stderr


def test_failed_reason_names_the_last_exit_once(daemon: Daemon) -> None:
    ok(daemon.socket, "agent", "create", "c", "-t", "crasher")
    ctl(daemon.socket, "agent", "start", "c")
    conn = daemon.conn()
    try:
        conn.call("events.subscribe", {"agent": "c", "types": ["transition"]})
        record = js(daemon.socket, "agent", "status", "c")["agent"]
        if record["status"] != "Failed":
            conn.wait_event(lambda e: e.get("to") == "Failed")
    finally:
        conn.close()
    reason = js(daemon.socket, "agent", "status", "c")["agent"]["reason"]
    assert reason.count("code 3") == 1, reason


def test_an_agent_finds_programs_on_the_callers_path(daemon: Daemon, tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    tool = bindir / "only-on-callers-path"
    tool.write_text("#!/bin/sh\necho found it\nexec sleep 3600\n")
    tool.chmod(tool.stat().st_mode | stat.S_IEXEC)
    add_template(daemon, {"name": "pathy", "backend": "custom", "command": ["only-on-callers-path"]})
    env = _env() | {"PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}"}
    import subprocess

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*CTL, "--socket", str(daemon.socket), *args], capture_output=True, text=True,
                              env=env, timeout=60)  # fmt: skip

    assert run("agent", "create", "p", "-t", "pathy").returncode == 0
    started = run("agent", "start", "p")
    assert started.returncode == 0, started.stderr
    assert started.stdout.startswith("started p (pid ")
    ok(daemon.socket, "agent", "stop", "p")
