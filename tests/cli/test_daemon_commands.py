"""``actantctl daemon start|stop``: spawning detached, waiting for ping, racing starters, failing fast.

The daemon is played by ``fake_daemon.py`` run as a script: it takes the per-home flock like actantd, so
racing starters exercise the real exclusion path.
"""

from __future__ import annotations

import fcntl
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

import actantctl.commands.daemon as daemon_cmd
from actantctl.cli import cli
from actantctl.context import AppContext
from tests.cli.fake_daemon import FakeDaemon

FAKE_SCRIPT = str(Path(__file__).with_name("fake_daemon.py"))


@pytest.fixture
def paths(short_tmp: Path) -> tuple[Path, Path]:
    return short_tmp / "home", short_tmp / "d.sock"


def run(paths: tuple[Path, Path], *args: str) -> Result:
    home, sock = paths
    return CliRunner().invoke(cli, ["--home", str(home), "--socket", str(sock), *args], catch_exceptions=False)


@pytest.fixture
def fake_daemon_command(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(daemon_cmd, "DAEMON_COMMAND", [sys.executable, FAKE_SCRIPT])
    yield


def test_start_when_already_running_does_nothing(paths: tuple[Path, Path]) -> None:
    with FakeDaemon(paths[1]) as fake:
        result = run(paths, "daemon", "start")
        assert (result.exit_code, result.stdout) == (
            0,
            f"actantd is already running (pid {fake.results['daemon.ping']['pid']})\n",
        )
        doc = json.loads(run(paths, "daemon", "start", "--json").stdout)
        assert doc["started"] is False and doc["socket"] == str(paths[1])
    assert not (paths[0] / "actantd.out").exists()  # nothing was spawned


@pytest.mark.usefixtures("fake_daemon_command")
def test_start_spawns_waits_and_stop_waits(paths: tuple[Path, Path]) -> None:
    result = run(paths, "daemon", "start")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("started actantd (pid ")
    pid = int(result.stdout.split("pid ")[1].split(",")[0].rstrip(")\n"))
    assert f"fake actantd {pid} listening" in (paths[0] / "actantd.out").read_text()
    assert json.loads(run(paths, "daemon", "status", "--json").stdout)["pid"] == pid

    result = run(paths, "daemon", "stop")
    assert (result.exit_code, result.stdout) == (0, f"stopped actantd (pid {pid})\n")
    assert run(paths, "daemon", "status").exit_code == 3
    result = run(paths, "daemon", "stop", "--json")
    assert (result.exit_code, json.loads(result.stdout)) == (0, {"stopped": False, "running": False})


@pytest.mark.usefixtures("fake_daemon_command")
def test_racing_starters_all_end_up_with_the_one_daemon(paths: tuple[Path, Path]) -> None:
    home, sock = paths
    app = AppContext(socket=sock, home=home)
    answers: list[dict[str, Any]] = []
    errors: list[BaseException] = []

    def starter() -> None:
        try:
            answers.append(daemon_cmd._wait_until_up(app, daemon_cmd._spawn(app), 10.0))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=starter) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    try:
        assert errors == []
        assert len(answers) == 4
        assert len({a["pid"] for a in answers}) == 1
        assert (home / "actantd.out").read_text().count("another daemon holds the lock") == 3
    finally:
        assert run(paths, "daemon", "stop").exit_code == 0


def test_start_fails_fast_when_the_daemon_dies(paths: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    code = "import sys; print('bad configs: templates/x.json', file=sys.stderr); sys.exit(2)"
    monkeypatch.setattr(daemon_cmd, "DAEMON_COMMAND", [sys.executable, "-c", code])
    began = time.monotonic()
    result = run(paths, "daemon", "start")
    assert time.monotonic() - began < 5  # not the 10 s wait: nobody holds the lock, so nobody else is starting
    assert result.exit_code == 1
    assert result.stderr.startswith(
        f"error: actantd exited with code 2 before answering; see {paths[0] / 'actantd.out'}"
    )
    assert "  bad configs: templates/x.json" in result.stderr


def test_start_gives_up_after_wait_and_stops_its_child(
    paths: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(daemon_cmd, "DAEMON_COMMAND", [sys.executable, "-c", "import time; time.sleep(60)"])
    result = run(paths, "daemon", "start", "--wait", "0.5")
    assert result.exit_code == 1
    assert f"did not answer at {paths[1]} within 0.5s" in result.stderr


def test_lock_held_reads_proc_locks_without_locking(short_tmp: Path) -> None:
    lock = short_tmp / "actantd.lock"
    assert daemon_cmd.lock_held(lock) is False  # no file, no lock
    with open(lock, "a") as f:
        assert daemon_cmd.lock_held(lock) is False
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert daemon_cmd.lock_held(lock) is True
        fcntl.flock(f, fcntl.LOCK_UN)
        assert daemon_cmd.lock_held(lock) is False


def test_daemon_argv_passes_paths_through(short_tmp: Path) -> None:
    app = AppContext(socket=short_tmp / "s.sock", home=short_tmp / "h", configs=short_tmp / "c")
    assert daemon_cmd.daemon_argv(app) == [
        sys.executable,
        "-m",
        "actantd",
        "--socket",
        str(short_tmp / "s.sock"),
        "--home",
        str(short_tmp / "h"),
        "--configs",
        str(short_tmp / "c"),
    ]


def test_stop_keep_agents_passes_through(paths: tuple[Path, Path]) -> None:
    with FakeDaemon(paths[1]) as fake:
        # `daemon stop` waits for the daemon's pid to exit: answer with the pid of a process that has.
        gone = subprocess.Popen(["true"])
        gone.wait()
        fake.answer("daemon.ping", {"version": "0.1.0", "pid": gone.pid, "uptimeSeconds": 1})
        result = run(paths, "daemon", "stop", "--keep-agents", "--json")
        assert result.exit_code == 0, result.stderr
        assert json.loads(result.stdout) == {"stopped": True, "pid": fake.results["daemon.ping"]["pid"]}
        assert fake.params("daemon.shutdown") == [{"keepAgents": True}]
