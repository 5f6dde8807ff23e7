"""Workspace-as-storage: scan, atomic writes, staging, trash, quarantine, schema migration."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import msgspec
import pytest

from actantd.errors import InstanceCorrupted, InvalidName, SchemaTooNew, StateWrite, WorkspaceInit
from actantd.instances.record import SCHEMA_VERSION, InstanceRecord, Overrides, decode, encode, new_record
from actantd.instances.state import Status
from actantd.instances.store import InstanceStore, atomic_write, validate_name
from actantd.paths import Layout

FIXTURES = Path(__file__).parent / "fixtures"


def make_store(tmp_path: Path) -> InstanceStore:
    return InstanceStore(Layout(home=tmp_path / "home", configs=tmp_path / "configs", socket=tmp_path / "s"))


def rec(name: str, work_dir: str | None = None) -> InstanceRecord:
    return new_record(
        name=name,
        template_ref="demo",
        launch_mode="Service",
        workspace_policy="Persistent",
        work_dir=work_dir,
        overrides=Overrides(),
    )


def ready(record: InstanceRecord) -> InstanceRecord:
    return msgspec.structs.replace(record, status=Status.READY)


def test_create_scan_roundtrip(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    created = store.create(rec("alpha"), lambda ws: ready(rec("alpha")))
    assert created.status is Status.READY
    raw = json.loads(store.record_path("alpha").read_text())
    # The fields outside tools read must be present under exactly these names.
    for key in ("schemaVersion", "instanceId", "name", "templateRef", "status", "launchMode",
                "workspacePolicy", "pid", "createdAt", "updatedAt"):  # fmt: skip
        assert key in raw
    assert raw["status"] == "Ready" and raw["pid"] is None and raw["schemaVersion"] == SCHEMA_VERSION
    result = make_store(tmp_path).scan()
    assert list(result.records) == ["alpha"]
    assert not list((tmp_path / "home/instances/.staging").iterdir())


@pytest.mark.parametrize("bad", ["", ".hidden", "a/b", "../x", "x" * 129, "-lead", "a b", "ä", "a\x00b", 7])
def test_hostile_names_are_refused(bad: object) -> None:
    with pytest.raises(InvalidName):
        validate_name(bad)


def test_valid_names() -> None:
    for good in ("a", "A.b_c-9", "x" * 128, "0abc"):
        assert validate_name(good) == good


def test_corrupted_dirs_are_quarantined_without_blocking(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    store.create(rec("good"), lambda ws: ready(rec("good")))
    inst = tmp_path / "home/instances"
    (inst / "no-meta").mkdir()
    (inst / "bad-json").mkdir()
    (inst / "bad-json/.actant.json").write_text("{not json")
    (inst / "wrong-type").mkdir()
    (inst / "wrong-type/.actant.json").write_text('{"schemaVersion": 2, "name": "wrong-type", "status": 5}')
    (inst / "stray-file").write_text("x")
    result = store.scan()
    assert list(result.records) == ["good"]
    assert sorted(q[0] for q in result.quarantined) == ["bad-json", "no-meta", "stray-file", "wrong-type"]
    assert len(list((inst / ".corrupted").iterdir())) == 4
    reasons = {q[0]: q[1] for q in result.quarantined}
    assert "not valid JSON" in reasons["bad-json"]
    assert "missing" in reasons["no-meta"]


def test_newer_schema_is_left_untouched(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    d = tmp_path / "home/instances/future"
    d.mkdir()
    body = '{"schemaVersion": 99, "name": "future", "hologram": true}'
    (d / ".actant.json").write_text(body)
    result = store.scan()
    assert result.too_new == [("future", 99)]
    assert (d / ".actant.json").read_text() == body
    assert not result.quarantined


def test_old_state_files_are_migrated_in_place(tmp_path: Path) -> None:
    """pueue-style compatibility: real files in the TypeScript daemon's format load and are upgraded."""
    store = make_store(tmp_path)
    for src in (FIXTURES / "instances-v1").iterdir():
        shutil.copytree(src, tmp_path / "home/instances" / src.name)
    result = store.scan()
    assert sorted(result.migrated) == ["legacy-ci", "legacy-reviewer"]
    r = result.records["legacy-reviewer"]
    assert (r.template_ref, r.status, r.launch_mode, r.instance_id) == (
        "code-reviewer",
        Status.RUNNING,
        "Service",
        "0f8fad5b-d9cb-469f-a165-70867728950e",
    )
    ci = result.records["legacy-ci"]
    assert (ci.launch_mode, ci.workspace_policy, ci.status) == ("OneShot", "Ephemeral", Status.STOPPED)
    on_disk = json.loads((tmp_path / "home/instances/legacy-ci/.actant.json").read_text())
    assert on_disk["schemaVersion"] == SCHEMA_VERSION and on_disk["templateRef"] == "ci-agent"
    # A second scan finds nothing left to migrate.
    assert make_store(tmp_path).scan().migrated == []


def test_decode_errors_are_typed() -> None:
    with pytest.raises(InstanceCorrupted):
        decode(b"[]", where="x")
    with pytest.raises(InstanceCorrupted):
        decode(b'{"schemaVersion": "2"}', where="x")
    with pytest.raises(SchemaTooNew):
        decode(b'{"schemaVersion": 3}', where="x")


def test_name_mismatch_is_corruption(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    d = tmp_path / "home/instances/one"
    d.mkdir()
    (d / ".actant.json").write_bytes(encode(rec("two")))
    assert [q[0] for q in store.scan().quarantined] == ["one"]


def test_destroy_is_rename_then_delete(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    store.create(rec("gone"), lambda ws: ready(rec("gone")))
    assert store.destroy("gone") is True
    assert not store.exists("gone")
    assert store.destroy("gone") is False
    assert not list((tmp_path / "home/instances/.trash").iterdir())


def test_interrupted_create_and_destroy_are_finished_by_scan(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    staged = tmp_path / "home/instances/.staging/half-1234"
    staged.mkdir()
    (staged / ".actant.json").write_bytes(encode(rec("half")))
    trashed = tmp_path / "home/instances/.trash/old-abcd"
    trashed.mkdir()
    (trashed / "AGENTS.md").write_text("x")
    result = store.scan()
    assert result.records == {}
    assert len(result.cleaned) == 2
    assert not staged.exists() and not trashed.exists()


def test_work_dir_instance_is_a_symlink_and_destroy_spares_user_files(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    repo = tmp_path / "repo"
    (repo / "src").mkdir(parents=True)
    (repo / "src/main.py").write_text("print('mine')\n")

    def populate(ws: Path) -> InstanceRecord:
        (ws / "AGENTS.md").write_text("# agents\n")
        (ws / ".claude/skills/x").mkdir(parents=True)
        (ws / ".claude/skills/x/SKILL.md").write_text("skill\n")
        return msgspec.structs.replace(
            ready(rec("linked", str(repo))), materialized=["AGENTS.md", ".claude/skills/x/SKILL.md", "../escape"]
        )

    store.create(rec("linked", str(repo)), populate)
    link = tmp_path / "home/instances/linked"
    assert link.is_symlink() and (repo / ".actant.json").exists()
    assert list(store.scan().records) == ["linked"]
    (tmp_path / "escape").write_text("outside\n")
    assert store.destroy("linked")
    assert not os.path.lexists(link)
    assert sorted(p.relative_to(repo).as_posix() for p in repo.rglob("*")) == ["src", "src/main.py"]
    assert (tmp_path / "escape").exists()


def test_work_dir_must_exist(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    with pytest.raises(WorkspaceInit):
        store.create(rec("x", str(tmp_path / "nope")), lambda ws: ready(rec("x")))
    assert not store.exists("x")


def test_failed_populate_leaves_nothing(tmp_path: Path) -> None:
    store = make_store(tmp_path)

    def boom(ws: Path) -> InstanceRecord:
        (ws / "partial").write_text("x")
        raise RuntimeError("materializer broke")

    with pytest.raises(RuntimeError):
        store.create(rec("x"), boom)
    assert not store.exists("x")
    assert not list((tmp_path / "home/instances/.staging").iterdir())


def test_write_failure_keeps_old_state(tmp_path: Path) -> None:
    """A failing write (here EACCES on a read-only dir; ENOSPC behaves alike) keeps the previous file."""
    if os.geteuid() == 0:
        # root ignores directory permissions; use a file that cannot be replaced: a directory in the way.
        target = tmp_path / "state.json"
        target.write_text('{"old": true}')
        blocker = tmp_path / "blocked"
        blocker.mkdir()
        (blocker / "state.json").mkdir()
        with pytest.raises(StateWrite) as info:
            atomic_write(blocker / "state.json", b'{"new": true}')
        assert "previous state kept" in info.value.message
        assert (blocker / "state.json").is_dir()
        assert [p.name for p in blocker.iterdir()] == ["state.json"]
        return
    d = tmp_path / "ro"
    d.mkdir()
    (d / "f").write_text("old")
    d.chmod(0o500)
    try:
        with pytest.raises(StateWrite):
            atomic_write(d / "f", b"new")
        assert (d / "f").read_text() == "old"
    finally:
        d.chmod(0o700)


def test_enospc_during_write_keeps_old_state(tmp_path: Path) -> None:
    """Real ENOSPC from /dev/full is not renameable, so fill a tiny tmpfs-like quota by a small RLIMIT_FSIZE."""
    import resource
    import subprocess
    import sys

    target = tmp_path / "rec.json"
    target.write_text('{"v": "old"}')
    code = (
        "import resource, signal, sys\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (16, 16))\n"
        "from pathlib import Path\n"
        "from actantd.instances.store import atomic_write\n"
        "from actantd.errors import StateWrite\n"
        "try:\n"
        "    atomic_write(Path(sys.argv[1]), b'x' * 4096)\n"
        "except StateWrite as e:\n"
        "    print(e.context['errno']); sys.exit(0)\n"
        "sys.exit(1)\n"
    )
    del resource
    out = subprocess.run([sys.executable, "-c", code, str(target)], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "EFBIG"
    assert target.read_text() == '{"v": "old"}'
    assert [p.name for p in tmp_path.iterdir()] == ["rec.json"]
