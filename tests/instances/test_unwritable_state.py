"""Class 3 of issue #10: stopping, destroying and crash handling never depend on the disk.

Before, when ``.actant.json`` could not be written, ``stop``/``destroy`` answered STATE_WRITE and the agent
kept running, a crash was not acted on (the record said Running with a dead pid), and ``daemon stop`` exited
leaving agents alive. We are root, so permission bits stop nothing: the tests make the record unwritable
with ``chattr +i`` (skipped where the filesystem refuses it) or by deleting the instance directory by hand.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.harness import Daemon, make_configs, running_daemon


@contextlib.contextmanager
def immutable(path: Path) -> Iterator[None]:
    if shutil.which("chattr") is None:
        pytest.skip("chattr is not installed")
    done = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"chattr +i refused here: {done.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=False)


def _started(daemon: Daemon, name: str) -> psutil.Process:
    daemon.call("agent.create", {"name": name, "template": "sleeper"})
    pid = daemon.call("agent.start", {"name": name})["agent"]["pid"]
    return psutil.Process(pid)


def _gone(proc: psutil.Process) -> bool:
    try:
        return proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_stop_kills_the_agent_when_its_record_is_immutable(short_tmp: Path) -> None:
    with running_daemon(short_tmp) as daemon:
        proc = _started(daemon, "imm")
        record = daemon.home / "instances" / "imm" / ".actant.json"
        with immutable(record):
            reply = daemon.call("agent.stop", {"name": "imm"})
            assert _gone(proc), "the agent still runs after stop"
            assert reply["agent"]["status"] == "Stopped"
            assert "could not write state" in reply["stateWriteError"]
            assert daemon.call("agent.status", {"name": "imm"})["agent"]["status"] == "Stopped"  # truth in memory
        # Writable again: the housekeeping retry puts the truth on disk.
        conn = daemon.conn()
        conn.call("events.subscribe", {"types": ["instance"]})
        conn.wait_event(lambda e: e.get("event") == "stateWritten" and e["agent"] == "imm")
        conn.close()
        assert '"status": "Stopped"' in record.read_text()


def test_stop_and_destroy_work_when_the_instance_directory_was_deleted(short_tmp: Path) -> None:
    with running_daemon(short_tmp) as daemon:
        proc = _started(daemon, "gone")
        shutil.rmtree(daemon.home / "instances" / "gone")
        reply = daemon.call("agent.stop", {"name": "gone"})
        assert _gone(proc)
        assert reply["agent"]["status"] == "Stopped" and "stateWriteError" in reply
        proc2 = _started(daemon, "gone2")
        shutil.rmtree(daemon.home / "instances" / "gone2")
        assert daemon.call("agent.destroy", {"name": "gone2", "force": True})["destroyed"] is True
        assert _gone(proc2)


def test_a_crash_is_acted_on_when_the_record_is_immutable(short_tmp: Path) -> None:
    with running_daemon(short_tmp) as daemon:
        proc = _started(daemon, "crashy")
        record = daemon.home / "instances" / "crashy" / ".actant.json"
        conn = daemon.conn()
        conn.call("events.subscribe", {"types": ["transition"]})
        with immutable(record):
            proc.kill()
            conn.wait_event(lambda e: e["agent"] == "crashy" and e["to"] == "Crashed")
            conn.wait_event(lambda e: e["agent"] == "crashy" and e["to"] == "Restarting")
            status = daemon.call("agent.status", {"name": "crashy"})["agent"]
            assert status["status"] in ("Crashed", "Restarting", "Failed"), status
            assert status.get("pid") is None
        # Writable again: the pending restart goes through.
        conn.wait_event(lambda e: e["agent"] == "crashy" and e["to"] == "Running", timeout=60)
        conn.close()
        daemon.call("agent.stop", {"name": "crashy"})


def test_daemon_stop_leaves_no_agent_behind_when_records_cannot_be_written(short_tmp: Path) -> None:
    daemon = Daemon(short_tmp, make_configs(short_tmp))
    daemon.start()
    procs = [_started(daemon, f"a{i}") for i in range(3)]
    records = [daemon.home / "instances" / f"a{i}" / ".actant.json" for i in range(3)]
    with contextlib.ExitStack() as stack:
        for record in records:
            stack.enter_context(immutable(record))
        assert daemon.stop() == 0
        assert all(_gone(p) for p in procs), [p.pid for p in procs if not _gone(p)]


@pytest.mark.soak
def test_soak_stop_start_churn_while_the_disk_refuses_writes(short_tmp: Path) -> None:
    """Class 3, long: for a while, records flip between writable and immutable while agents are started,
    killed and stopped; no agent survives a stop, and after the disk is writable again every record on disk
    matches the daemon's view."""
    import json
    import random
    import time

    rng = random.Random(1234)
    with running_daemon(short_tmp) as daemon:
        names = [f"c{i}" for i in range(4)]
        for name in names:
            daemon.call("agent.create", {"name": name, "template": "sleeper"})
        records = {n: daemon.home / "instances" / n / ".actant.json" for n in names}
        deadline = time.monotonic() + 90
        try:
            while time.monotonic() < deadline:
                name = rng.choice(names)
                locked = rng.random() < 0.5
                if locked:
                    subprocess.run(["chattr", "+i", str(records[name])], check=False)
                try:
                    try:
                        pid = daemon.call("agent.start", {"name": name})["agent"].get("pid")
                    except Exception:
                        pid = None  # a start whose Starting write is refused is an error, by design
                    if pid is not None and rng.random() < 0.3:
                        with contextlib.suppress(psutil.Error):
                            psutil.Process(pid).kill()
                    daemon.call("agent.stop", {"name": name})
                    if pid is not None:
                        with contextlib.suppress(psutil.NoSuchProcess):
                            assert _gone(psutil.Process(pid)), f"{name} pid {pid} survived its stop"
                finally:
                    if locked:
                        subprocess.run(["chattr", "-i", str(records[name])], check=False)
        finally:
            for record in records.values():
                subprocess.run(["chattr", "-i", str(record)], check=False)
        conn = daemon.conn()
        conn.call("events.subscribe", {"types": ["instance"]})
        for name in names:
            status = daemon.call("agent.status", {"name": name})["agent"]["status"]
            on_disk = json.loads(records[name].read_text())["status"]
            if on_disk != status:
                conn.wait_event(lambda e, n=name: e.get("event") == "stateWritten" and e["agent"] == n)
                on_disk = json.loads(records[name].read_text())["status"]
            assert on_disk == status, (name, on_disk, status)
        conn.close()
