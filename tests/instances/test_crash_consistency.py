"""A process SIGKILLed at a random moment never leaves an unreadable record or half an instance.

The writer loops over state writes, creates and destroys; hypothesis picks the moment of the kill. The
delay is the thing under test (where the kill lands), not a wait for an event.
"""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from actantd.instances.store import InstanceStore
from actantd.paths import INSTANCE_FILE, Layout
from tests.helpers import kill_mid_write

WRITER = r"""
import sys, msgspec
from pathlib import Path
from actantd.paths import Layout
from actantd.instances.record import new_record, Overrides
from actantd.instances.state import Status
from actantd.instances.store import InstanceStore

home = Path(sys.argv[1])
store = InstanceStore(Layout(home=home, configs=home, socket=home / "s"))
i = 0
print("ready", flush=True)
while True:
    i += 1
    name = f"inst-{i % 5}"
    base = new_record(name=name, template_ref="demo", launch_mode="Service", workspace_policy="Persistent",
                      work_dir=None, overrides=Overrides(env={"K": "v" * (i % 300)}))
    if store.exists(name):
        if i % 3 == 0:
            store.destroy(name)
        else:
            old, _ = store.read(name)
            store.write(msgspec.structs.replace(old, restart_count=old.restart_count + 1,
                                                reason="x" * (i % 4000)))
    else:
        def populate(ws, base=base):
            for k in range(3):
                (ws / f"file{k}.md").write_text("payload\n" * 50)
            return msgspec.structs.replace(base, status=Status.READY, materialized=["file0.md"])
        store.create(base, populate)
"""


def _run_and_kill(home: Path, delay: float) -> None:
    kill_mid_write(WRITER, [str(home)], delay)


def _check(home: Path) -> None:
    store = InstanceStore(Layout(home=home, configs=home, socket=home / "s"))
    result = store.scan()
    assert result.quarantined == [], result.quarantined
    for name in result.records:
        ws = home / "instances" / name
        # Whole or absent: a visible instance has every file its create wrote.
        assert sorted(p.name for p in ws.iterdir()) == [
            INSTANCE_FILE,
            "file0.md",
            "file1.md",
            "file2.md",
        ]
    assert not list((home / "instances/.staging").iterdir())
    assert not list((home / "instances/.trash").iterdir())


@settings(max_examples=25, deadline=None)
@given(delay=st.floats(min_value=0.0, max_value=0.25))
def test_sigkill_at_random_moments_never_corrupts(delay: float) -> None:
    import tempfile

    home = Path(tempfile.mkdtemp(prefix="crash-"))
    try:
        for _ in range(2):  # kill, recover, kill again on top of the recovered state
            _run_and_kill(home, delay)
            _check(home)
    finally:
        import shutil

        shutil.rmtree(home, ignore_errors=True)
