"""``agent open`` under a real pseudo-terminal: the program gets the tty, is attached while it runs, detached
after; its exit status (and 128+N for a signal) passes through; a second open is refused meanwhile."""

from __future__ import annotations

import hashlib
import json
import os
import pty
import select
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e.test_cli import CTL, _env, ctl
from tests.harness import Daemon


class PtyCli:
    """``actantctl agent open`` in a child whose controlling terminal is a pty we hold the master of."""

    def __init__(self, sock: Path, name: str) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # pragma: no cover - the child execs
            argv = [*CTL, "--socket", str(sock), "agent", "open", name]
            os.execvpe(argv[0], argv, _env())
        self.out = b""

    def read_until(self, needle: bytes, timeout: float = 30.0) -> bytes:
        deadline = time.monotonic() + timeout
        while needle not in self.out:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{needle!r} not seen; got {self.out!r}")
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready:
                try:
                    chunk = os.read(self.fd, 4096)
                except OSError:  # EIO: the child side closed
                    chunk = b""
                if not chunk:
                    raise EOFError(f"{needle!r} not seen before EOF; got {self.out!r}")
                self.out += chunk
        return self.out

    def type(self, line: str) -> None:
        os.write(self.fd, line.encode() + b"\r")

    def wait(self) -> int:
        while True:  # drain, so the child never blocks writing to the pty
            ready, _, _ = select.select([self.fd], [], [], 0.2)
            if ready:
                try:
                    if not os.read(self.fd, 4096):
                        break
                except OSError:
                    break
            done, status = os.waitpid(self.pid, os.WNOHANG)
            if done:
                os.close(self.fd)
                return os.waitstatus_to_exitcode(status)
        _, status = os.waitpid(self.pid, 0)
        os.close(self.fd)
        return os.waitstatus_to_exitcode(status)


def _transitions(d: Daemon, name: str) -> list[tuple[str, str]]:
    events = d.call("events.query", {"agent": name, "types": ["transition"]})["events"]
    return [(e["to"], e["reason"]) for e in events]


@pytest.mark.parametrize(("command", "expect"), [("exit 3", 3), ("signal SIGTERM", 128 + signal.SIGTERM)])
def test_open_attaches_detaches_and_passes_the_status_through(fake_daemon: Daemon, command: str, expect: int) -> None:
    d = fake_daemon
    d.call("agent.create", {"name": "o1", "template": "fake-claude"})
    cli = PtyCli(d.socket, "o1")
    out = cli.read_until(b"ready> ")
    workspace = d.call("agent.status", {"name": "o1"})["agent"]["workspace"]
    assert b"tty=True" in out and f"cwd={workspace}".encode() in out and b"instance=o1" in out
    status = d.call("agent.status", {"name": "o1"})["agent"]
    assert status["status"] == "Running" and status["attached"] is True and status["pid"] > 0

    second = ctl(d.socket, "agent", "open", "o1")  # refused while the first runs; it runs nothing
    assert second.returncode == 1 and "already open in a terminal" in second.stderr
    assert "fake-tui" not in second.stdout

    cli.type("hello")
    cli.read_until(b"got: hello")
    cli.type(command)
    assert cli.wait() == expect
    status = d.call("agent.status", {"name": "o1"})["agent"]
    assert status["status"] == "Stopped" and status["attached"] is False and status["pid"] is None
    moves = _transitions(d, "o1")  # events announced both: the attachment and its end
    assert moves[-2][0] == "Running" and moves[-2][1].startswith("attached to pid")
    assert moves[-1][0] == "Stopped"


def test_open_of_a_backend_without_open_argv_is_refused(fake_daemon: Daemon) -> None:
    fake_daemon.call("agent.create", {"name": "o2", "template": "fake-codex"})
    done = ctl(fake_daemon.socket, "agent", "open", "o2")
    assert done.returncode != 0 and "no 'open' argv" in done.stderr


def test_a_refused_attach_never_runs_the_program(short_tmp: Path) -> None:
    """Two opens both get the launch spec; the daemon's attach (under the instance's lock) lets one win, and
    the refused one never runs its program."""
    import sys

    from actantd.errors import AgentAlreadyRunning
    from tests.cli.fake_daemon import FakeDaemon
    from tests.cli.test_commands import run

    marker = short_tmp / "ran"
    with FakeDaemon(short_tmp / "d.sock") as fake:
        fake.answer("agent.launchSpec", {"argv": [sys.executable, "-c", f"open({str(marker)!r}, 'w')"],
                                         "cwd": str(short_tmp), "env": {}, "mode": "open", "masked": []})  # fmt: skip
        fake.fail("agent.attach", AgentAlreadyRunning("agent 'reviewer' is already running (pid 1)"))
        result = run(fake, "agent", "open", "reviewer")
    assert result.exit_code == 1 and "already open or running" in result.stderr
    assert not marker.exists()


def test_open_uses_the_launch_spec_of_mode_open(fake_daemon: Daemon) -> None:
    fake_daemon.call("agent.create", {"name": "o3", "template": "fake-claude", "overrides": {"env": {"MINE": "1"}}})
    spec = fake_daemon.call("agent.launchSpec", {"name": "o3", "mode": "open", "reveal": True})
    status = fake_daemon.call("agent.status", {"name": "o3"})["agent"]
    assert spec["mode"] == "open" and spec["argv"][-1].endswith("fake_tui.py") and spec["cwd"] == status["workspace"]
    env = spec["env"]
    assert env["MINE"] == "1" and env["ACTANT_INSTANCE"] == "o3" and env["ACTANT_INSTANCE_ID"] == status["instanceId"]
    assert "PATH" not in env  # only what the launch spec adds: the user's own environment stays the user's
    assert spec["masked"] == []
    masked = fake_daemon.call("agent.launchSpec", {"name": "o3", "mode": "open"})
    assert masked["env"]["MINE"] == "********" and "MINE" in masked["masked"]  # the template env too


def test_open_gives_the_program_its_secrets_and_prints_none(fake_daemon: Daemon) -> None:
    """The instance's env values reach the program in the user's terminal (they are revealed to the CLI,
    which puts them over the user's own environment), and nothing the CLI prints contains them."""
    secret = "s3cr3t-" + os.urandom(8).hex()
    fake_daemon.call("agent.create", {"name": "o4", "template": "fake-claude",
                                      "overrides": {"env": {"OPEN_TOKEN": secret}}})  # fmt: skip
    env = {**_env(), "USER_OWN": "kept"}
    done = subprocess.run([*CTL, "--socket", str(fake_daemon.socket), "agent", "open", "o4", "--json"],
                          input="env OPEN_TOKEN\nenv USER_OWN\nexit 0\n", capture_output=True, text=True, env=env,
                          timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"env OPEN_TOKEN sha256={hashlib.sha256(secret.encode()).hexdigest()}" in done.stdout
    assert f"env USER_OWN sha256={hashlib.sha256(b'kept').hexdigest()}" in done.stdout
    assert secret not in done.stdout and secret not in done.stderr
    summary = json.loads(done.stdout[done.stdout.rindex("{\n") :])  # the program's output, then --json's document
    assert summary["exitCode"] == 0 and summary["name"] == "o4"
