"""``actantctl top`` under a real pseudo-terminal (issue #11): it draws every agent, follows a transition
as soon as the daemon publishes it, and Ctrl-C (typed into the terminal) ends it with 130."""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import time

from actantctl.commands.top import Board
from tests.e2e.test_cli import CTL, _env, ok
from tests.harness import Daemon
from tests.helpers import with_default_signals

ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")


class Screen:
    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        argv = with_default_signals(argv)  # the suite may run with SIGINT ignored; a terminal's child has it
        pid, fd = pty.fork()
        if pid == 0:  # the child only execs (pytest has threads: nothing else is safe after fork)
            os.execve(argv[0], argv, env)
        self.pid, self.fd = pid, fd
        self.seen = b""

    def until(self, pattern: str, timeout: float = 20) -> str:
        """Read the terminal until ``pattern`` appears in what was drawn (escape codes stripped)."""
        deadline = time.monotonic() + timeout
        while True:
            text = ANSI.sub(b"", self.seen).decode(errors="replace")
            if re.search(pattern, text):
                return text
            left = deadline - time.monotonic()
            assert left > 0, f"{pattern!r} never appeared; the screen showed:\n{text[-3000:]}"
            ready, _, _ = select.select([self.fd], [], [], min(left, 0.5))
            if ready:
                try:
                    self.seen += os.read(self.fd, 65536)
                except OSError:  # the child exited and the pty closed
                    raise AssertionError(f"top exited early:\n{text[-3000:]}") from None

    def ctrl_c(self) -> int:
        os.write(self.fd, b"\x03")  # the terminal turns it into SIGINT for the foreground process
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with_status = os.waitpid(self.pid, os.WNOHANG)
            if with_status[0] == self.pid:
                return os.waitstatus_to_exitcode(with_status[1])
            select.select([self.fd], [], [], 0.1)
            try:
                os.read(self.fd, 65536)
            except OSError:
                pass
        os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)
        raise AssertionError("top did not exit on Ctrl-C")


def test_top_draws_agents_follows_events_and_exits_130(daemon: Daemon) -> None:
    sock = daemon.socket
    ok(sock, "agent", "create", "web", "-t", "sleeper")
    ok(sock, "agent", "create", "idle", "-t", "demo")
    ok(sock, "agent", "start", "web")
    argv = [*CTL, "--socket", str(sock), "top", "--interval", "30"]  # figures rarely: events must do the work
    env = _env() | {"COLUMNS": "140", "LINES": "30", "TERM": "xterm-256color"}
    screen = Screen(argv, env)
    try:
        first = screen.until(r"web\s+Running\s+custom\s+\d+")
        assert re.search(r"NAME\s+STATUS\s+BACKEND\s+PID\s+UPTIME\s+CPU\s+MEM\s+RESTARTS\s+LATEST EVENT", first)
        assert re.search(r"idle\s+Ready\s+custom", first)
        assert re.search(r"web\s+Running.*\d+\.\d%\s+[\d.]+ (KiB|MiB)", first), "cpu and memory are shown"
        ok(sock, "agent", "stop", "web")
        # Live from the events (figures come only every 30 s): the status, and the stop as the latest event.
        screen.until(r"web\s+Stopped\s+custom\s+-\s+-.*(→ Stopped|agent\.stop)")
    finally:
        code = screen.ctrl_c()
    assert code == 130


def test_board_folds_events_without_a_daemon() -> None:
    board = Board()
    board.replace([{"name": "a", "status": "Running", "pid": 7, "live": {"cpuPercent": 1.0, "rssBytes": 2048}}])
    assert board.apply({"type": "transition", "agent": "a", "from": "Running", "to": "Crashed", "reason": "boom"})
    assert board.agents["a"]["status"] == "Crashed" and board.agents["a"]["pid"] is None
    assert board.rows()[0][:7] == ["a", "Crashed", "-", "-", "-", "-", "-"]
    assert not board.apply({"type": "daemon", "event": "started"}), "events of no agent change nothing"


def test_stop_of_a_slow_agent_shows_that_it_waits_and_how_long(daemon: Daemon) -> None:
    sock = daemon.socket
    ok(sock, "agent", "create", "slow", "-t", "stubborn")  # ignores SIGTERM
    ok(sock, "agent", "start", "slow")
    argv = [*CTL, "--socket", str(sock), "agent", "stop", "slow", "--timeout", "3"]
    screen = Screen(argv, _env() | {"TERM": "xterm"})
    try:
        screen.until(r"stopping slow… waiting [12]s \(SIGKILL after 3s\)")
        screen.until(r"stopped slow")
    finally:
        _pid, status = os.waitpid(screen.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_run_and_open_name_an_unknown_agent_first(daemon: Daemon) -> None:
    from tests.e2e.test_cli import ctl

    for argv in (("agent", "run", "ghost", "hi"), ("agent", "open", "ghost")):
        done = ctl(daemon.socket, *argv)
        assert done.returncode == 4, done
        assert done.stderr.startswith("error: no agent named 'ghost'"), done.stderr
