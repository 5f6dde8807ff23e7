"""The group commit of instance records (``instances/group_commit.py``, ``fsutil.atomic_write_many``).

A batch shares its fsyncs, never its fate: a process SIGKILLed in the middle of batches leaves every record
either the old one or the new one (never torn, never a mix within a file), and the start-up scan reads them
all and removes the temp files; one record that cannot be written fails alone, and only its transition is
reported as kept in memory. The kill delays are the thing under test (where the kill lands), not waits.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from actantd import fsutil
from actantd.errors import StateWrite
from actantd.instances.group_commit import GroupCommit
from actantd.instances.store import InstanceStore
from actantd.paths import INSTANCE_FILE, Layout
from tests.harness import running_daemon
from tests.helpers import kill_mid_write
from tests.instances.test_unwritable_state import immutable

COUNT = 24

WRITER = r"""
import asyncio, sys, msgspec
from pathlib import Path
from actantd.paths import Layout
from actantd.instances.record import new_record, Overrides, encode
from actantd.instances.store import InstanceStore

home = Path(sys.argv[1]); count = int(sys.argv[2])
store = InstanceStore(Layout(home=home, configs=home, socket=home / "s"))
records = []
for i in range(count):
    r = new_record(name=f"g{i:02d}", template_ref="demo", launch_mode="Service", workspace_policy="Persistent",
                   work_dir=None, overrides=Overrides())
    (home / "instances" / r.name).mkdir()
    store.write(r)
    records.append(r)

async def main():
    version = 0
    print("ready", flush=True)
    while True:
        version += 1
        # One batch: every record at the same version, with a size that changes, so a torn file shows.
        batch = [msgspec.structs.replace(r, restart_count=version, reason="x" * (version * 37 % 3000)) for r in records]
        await asyncio.gather(*(store.commit(r) for r in batch))
        print(version, flush=True)  # every record of this version is durable

asyncio.run(main())
"""


def _run_and_kill(home: Path, delay: float) -> int:
    """Run the writer, SIGKILL it after ``delay``; returns the last version it reported durable."""
    acked = [int(line) for line in kill_mid_write(WRITER, [str(home), str(COUNT)], delay).split()]
    return acked[-1] if acked else 0


@pytest.mark.parametrize("delay", [0.05, 0.13, 0.29, 0.41])
def test_a_kill_mid_batch_leaves_every_record_old_or_new(tmp_path: Path, delay: float) -> None:
    acked = _run_and_kill(tmp_path, delay)
    layout = Layout(home=tmp_path, configs=tmp_path, socket=tmp_path / "s")
    for i in range(COUNT):
        raw = json.loads((layout.instance_dir(f"g{i:02d}") / INSTANCE_FILE).read_bytes())  # whole JSON, not torn
        # Durable once reported; at most the batch in flight beyond it (a record is one version, never a mix).
        assert raw["restartCount"] in (acked, acked + 1), (i, raw["restartCount"], acked)
        version = raw["restartCount"]
        assert raw.get("reason") == ("x" * (version * 37 % 3000) if version else None)
    result = InstanceStore(layout).scan()
    assert result.quarantined == []
    assert sorted(result.records) == [f"g{i:02d}" for i in range(COUNT)]
    leftovers = [p for p in (tmp_path / "instances").rglob(".*") if fsutil.TEMP_MARK in p.name]
    assert leftovers == [], "the scan removes the temp files of the interrupted batch"


async def test_one_failed_record_fails_alone(tmp_path: Path) -> None:
    commits = GroupCommit()
    paths = [tmp_path / f"d{i}" / "r.json" for i in range(6)]
    for p in paths:
        p.parent.mkdir()
        p.write_bytes(b"old")
    paths[2].parent.rename(tmp_path / "gone")  # its directory was deleted by hand
    results = await asyncio.gather(*(commits.write(p, b"new", 0o600) for p in paths), return_exceptions=True)
    assert commits.batches == 1, "written together"
    assert isinstance(results[2], StateWrite) and "could not write state" in results[2].message
    assert [r for i, r in enumerate(results) if i != 2] == [None] * 5
    assert [p.read_bytes() for i, p in enumerate(paths) if i != 2] == [b"new"] * 5
    assert (tmp_path / "gone" / "r.json").read_bytes() == b"old"


async def test_transitions_in_flight_share_a_batch(tmp_path: Path) -> None:
    commits = GroupCommit(max_in_flight=1)
    paths = [tmp_path / f"r{i}.json" for i in range(40)]
    await asyncio.gather(*(commits.write(p, str(i).encode(), 0o600) for i, p in enumerate(paths)))
    assert commits.batches == 1
    first = asyncio.ensure_future(commits.write(paths[0], b"a", 0o600))
    await asyncio.sleep(0)  # the first batch has been scheduled; these arrive while it is in flight
    rest = [commits.write(p, b"b", 0o600) for p in paths[1:]]
    await asyncio.gather(first, *rest)
    assert commits.batches == 3, "one batch for the first write, one for everything that came meanwhile"
    assert paths[0].read_bytes() == b"a" and {p.read_bytes() for p in paths[1:]} == {b"b"}


def test_a_failed_write_in_a_batch_of_stops_is_reported_for_that_instance_only(short_tmp: Path) -> None:
    names = [f"b{i}" for i in range(6)]
    with running_daemon(short_tmp) as daemon:
        for name in names:
            daemon.call("agent.create", {"name": name, "template": "sleeper"})
            daemon.call("agent.start", {"name": name, "wait": False})
        events = daemon.conn()
        events.call("events.subscribe", {"types": ["transition", "instance"]})
        record = daemon.home / "instances" / "b3" / INSTANCE_FILE
        with immutable(record):
            conn = daemon.conn()
            # One JSON-RPC batch: the stops run concurrently and their writes share batches.
            conn.send([{"jsonrpc": "2.0", "id": i, "method": "agent.stop", "params": {"name": n}}
                       for i, n in enumerate(names)])  # fmt: skip
            replies = {r["id"]: r["result"] for r in conn.read()}
            conn.close()
            assert {replies[i]["agent"]["status"] for i in replies} == {"Stopped"}
            assert [n for i, n in enumerate(names) if "stateWriteError" in replies[i]] == ["b3"]
            for name in names:
                on_disk = json.loads((daemon.home / "instances" / name / INSTANCE_FILE).read_bytes())
                assert on_disk["status"] == ("Running" if name == "b3" else "Stopped"), name
        failed: list[str] = []
        stopped: set[str] = set()
        while stopped != set(names):
            event = events.wait_event(lambda e: True)
            if event.get("event") == "stateWriteFailed":
                failed.append(event["agent"])
            if event.get("type") == "transition" and event.get("to") == "Stopped":
                stopped.add(event["agent"])
        events.close()
        assert failed == ["b3"]
