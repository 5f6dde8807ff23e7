"""Class 11 of issue #10 (CLI side): racing ``daemon start`` calls, and ``~`` in ``--work-dir``.

Before: of 20 racing ``actantctl daemon start``, more than one said it started the daemon (every starter
whose ping came back reported "started", whoever's daemon won the lock). Now only the starter whose own
child is the daemon that answers says so.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

import actantctl.commands.daemon as daemon_cmd
from actantctl.context import AppContext
from tests.harness import Daemon, make_configs

STARTERS = 20
FAKE_SCRIPT = str(Path(__file__).resolve().with_name("fake_daemon.py"))


def _ctl(home: Path, sock: Path, configs: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "actantctl", "--home", str(home), "--socket", str(sock), "--configs", str(configs),
            *args]  # fmt: skip


def test_of_twenty_racing_starters_exactly_one_says_it_started(
    short_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """All 20 look before any daemon is up (a barrier), so all 20 spawn one; one daemon wins the lock."""
    monkeypatch.setattr(daemon_cmd, "DAEMON_COMMAND", [sys.executable, FAKE_SCRIPT])
    app = AppContext(socket=short_tmp / "d.sock", home=short_tmp / "home")
    barrier = threading.Barrier(STARTERS)
    results: list[tuple[bool, dict[str, Any]]] = []
    errors: list[BaseException] = []
    real_ping = daemon_cmd.ping

    def ping_after_barrier(app: AppContext, timeout: float = 2.0) -> dict[str, Any] | None:
        if threading.current_thread().name.startswith("starter") and not getattr(local, "waited", False):
            local.waited = True
            barrier.wait(30)
        return real_ping(app, timeout)

    local = threading.local()
    monkeypatch.setattr(daemon_cmd, "ping", ping_after_barrier)

    def starter() -> None:
        try:
            results.append(daemon_cmd.start_or_join(app, 60.0))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=starter, name=f"starter-{i}") for i in range(STARTERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    try:
        assert errors == []
        assert len(results) == STARTERS
        assert len({answer["pid"] for _, answer in results}) == 1
        assert sum(started for started, _ in results) == 1, results
    finally:
        from click.testing import CliRunner

        from actantctl.cli import cli

        CliRunner().invoke(cli, ["--home", str(app.home), "--socket", str(app.socket), "daemon", "stop"])


@pytest.mark.soak
def test_soak_twenty_racing_actantctl_processes_start_one_real_daemon(short_tmp: Path) -> None:
    home, sock, configs = short_tmp / "home", short_tmp / "d.sock", make_configs(short_tmp)
    env = Daemon(short_tmp).env()
    procs = [
        subprocess.Popen(
            _ctl(home, sock, configs, "daemon", "start", "--json", "--wait", "120"),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(STARTERS)
    ]
    try:
        outs = [p.communicate(timeout=180) for p in procs]
        assert all(p.returncode == 0 for p in procs), [o[1][-500:] for o in outs if o[1]]
        docs = [json.loads(o[0]) for o in outs]
        assert len({d["pid"] for d in docs}) == 1
        assert sum(d["started"] for d in docs) == 1, docs
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        stop = subprocess.run(_ctl(home, sock, configs, "daemon", "stop"), env=env, capture_output=True, timeout=120)
        assert stop.returncode == 0, stop.stderr


def test_tilde_in_work_dir_is_the_callers_home(short_tmp: Path) -> None:
    caller_home = short_tmp / "caller"
    (caller_home / "proj").mkdir(parents=True)
    daemon = Daemon(short_tmp, make_configs(short_tmp))
    daemon.start()
    try:
        env = {**daemon.env(), "HOME": str(caller_home)}
        result = subprocess.run(
            _ctl(daemon.home, daemon.socket, daemon.configs, "agent", "create", "t1", "--template", "sleeper",
                 "--work-dir", "~/proj", "--json"),
            env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        record = json.loads(result.stdout)
        record = record.get("agent", record)
        assert os.path.realpath(record["workDir"]) == os.path.realpath(caller_home / "proj"), record
        daemon.call("agent.destroy", {"name": "t1"})
    finally:
        assert daemon.stop() == 0
