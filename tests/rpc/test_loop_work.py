"""Class 5 of issue #10: work a client causes must not hold the event loop.

A batch of 100,000 notifications, each journaled with a synchronous SQLite insert, held the loop for
seconds: other clients and crash detection waited. Now the dispatcher gives the loop back every few
milliseconds of a batch, and the journal queues entries for a writer thread that inserts them in batches.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import sqlite3
import time
from pathlib import Path

import pytest

from actantd.journal import Journal
from tests.harness import Conn, Daemon, running_daemon


def test_record_never_waits_for_the_database_in_writer_mode(tmp_path: Path) -> None:
    """A foreign writer holds the database lock: a synchronous insert would wait its busy timeout (250 ms)
    for each of these 200 entries (50 s); with the writer thread, ``record`` only queues."""
    path = tmp_path / "journal.sqlite"
    journal = Journal(path)
    journal.start_writer()
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        started = time.monotonic()
        ids = [journal.record("daemon", n=n)["id"] for n in range(200)]
        elapsed = time.monotonic() - started
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert elapsed < 2.0, f"200 records took {elapsed:.2f}s with the database locked"
    assert ids == sorted(ids) and len(set(ids)) == 200 and None not in ids
    assert [e["n"] for e in journal.query(limit=1000)] == list(range(200))
    assert journal.dropped == 0
    journal.close()


def test_writer_mode_keeps_ids_order_and_read_your_writes(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    with Journal(path) as first:
        first.record("daemon", what="before")
    journal = Journal(path)
    journal.start_writer()
    entries = [journal.record("transition", "a", n=n) for n in range(5000)]
    got = journal.query(types="transition", limit=10_000)
    assert [e["id"] for e in got] == [e["id"] for e in entries]
    assert entries[0]["id"] == 2
    journal.close()
    with Journal(path) as again:
        assert again.record("daemon")["id"] == 5002


def _command_batch(n: int) -> bytes:
    notes = [{"jsonrpc": "2.0", "method": "agent.stop", "params": {"name": f"nope-{i}"}} for i in range(n)]
    notes.append({"jsonrpc": "2.0", "id": "done", "method": "daemon.ping"})
    return json.dumps(notes).encode() + b"\n"


@pytest.mark.parametrize("entries", [100_000])
def test_a_huge_batch_of_journaled_notifications_does_not_stall_other_clients(short_tmp: Path, entries: int) -> None:
    with running_daemon(short_tmp) as daemon:
        _other_client_is_served_during_batch(daemon, entries)


@pytest.mark.soak
def test_soak_crash_detection_stays_fast_during_huge_batches(short_tmp: Path) -> None:
    """Three batches of 100,000 journaled notifications in a row, while an agent is killed: its crash is
    seen (a transition event) within a second, and the batches complete."""
    with running_daemon(short_tmp) as daemon:
        daemon.call("agent.create", {"name": "s1", "template": "sleeper"})
        daemon.call("agent.start", {"name": "s1"})
        for _ in range(3):
            _other_client_is_served_during_batch(daemon, 100_000, crash="s1")


def _other_client_is_served_during_batch(daemon: Daemon, entries: int, crash: str | None = None) -> None:
    watcher = daemon.conn()
    watcher.call("events.subscribe", {"types": ["command", "transition"]})
    flood = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    flood.connect(str(daemon.socket))
    try:
        flood.sendall(_command_batch(entries))
        # The first journaled command from the batch proves the daemon is inside it.
        watcher.wait_event(lambda e: e["type"] == "command" and e.get("method") == "agent.stop")
        started = time.monotonic()
        if crash is not None:
            pid = daemon.call("agent.status", {"name": crash})["agent"]["pid"]
            crashes = daemon.conn()  # transitions only: the watcher above has 100,000 command events to read
            crashes.call("events.subscribe", {"types": ["transition"], "agent": crash})
            killed = time.monotonic()
            os.kill(pid, signal.SIGKILL)
            event = crashes.wait_event(lambda e: e["to"] == "Crashed")
            detected = time.monotonic() - killed
            crashes.close()
            assert detected < 1.0, f"crash seen after {detected:.3f}s during the batch: {event}"
            readable, _, _ = select.select([flood], [], [], 0)
            assert not readable, "the crash was only handled once the whole batch was done"
            daemon.call("agent.start", {"name": crash})
        else:
            ping = _ping(daemon)
            latency = time.monotonic() - started
            readable, _, _ = select.select([flood], [], [], 0)
            assert not readable, f"the ping ({latency:.3f}s) was only answered once the whole batch was done"
            assert ping is not None
        flood.settimeout(120)
        reply = b""
        while not reply.endswith(b"\n"):
            chunk = flood.recv(65536)
            assert chunk, "daemon closed the flooding connection"
            reply += chunk
        assert json.loads(reply)[0]["id"] == "done"
    finally:
        flood.close()
        watcher.close()


def _ping(daemon: Daemon) -> object:
    conn = Conn(daemon.socket, timeout=60)
    try:
        return conn.call("daemon.ping")
    finally:
        conn.close()
