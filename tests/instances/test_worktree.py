"""Git worktree workspaces (actantd/instances/worktree.py) against real repositories in temp dirs."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from actantd.errors import BranchCheckedOut, GitBaseNotFound, InvalidParams, NotAGitRepository, WorkspaceInit
from actantd.instances import worktree
from actantd.instances.record import InstanceRecord, Overrides, new_record
from actantd.instances.state import Status
from actantd.instances.store import InstanceStore
from actantd.paths import Layout
from tests.gitrepo import branches, git, isolated_git_env, make_repo, worktree_paths


@pytest.fixture(autouse=True)
def _git_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in isolated_git_env(tmp_path).items():
        monkeypatch.setenv(key, value)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[InstanceStore]:
    home = tmp_path / "home"
    yield InstanceStore(Layout(home=home, configs=tmp_path / "configs", socket=home / "s.sock"))


FILES = {"AGENTS.md": "# agent\n"}


def create(
    store: InstanceStore, repo: Path, name: str, branch: str | None = None, base: str | None = None
) -> tuple[InstanceRecord, worktree.WorktreePlan]:
    p = worktree.plan(repo, name, branch, base, FILES)
    base_record = new_record(
        name=name, template_ref="t", launch_mode="Service", workspace_policy="Persistent", work_dir=None,
        overrides=Overrides(),
    )  # fmt: skip
    base_record = msgspec.structs.replace(
        base_record, repo=p.repo, branch=p.branch, base=p.base, base_commit=p.base_commit, materialized=list(FILES)
    )

    def populate(ws: Path) -> InstanceRecord:
        for rel, text in FILES.items():
            (ws / rel).write_text(text)
        return msgspec.structs.replace(base_record, status=Status.READY)

    maker = worktree.WorktreeMaker(p, name, base_record.instance_id, list(FILES))
    return store.create(base_record, populate, maker), p


def test_create_from_head_branch_and_status(store: InstanceStore, repo: Path) -> None:
    record, p = create(store, repo, "a1")
    ws = store.layout.instance_dir("a1")
    assert p.branch == "actant/a1" and p.base == "main" and p.create_branch
    assert worktree_paths(repo) == [str(ws)]
    assert git(ws, "symbolic-ref", "--short", "HEAD").strip() == "actant/a1"
    assert (ws / "src.txt").read_text() == "two\n"
    # Actant's files are neither shown nor committable, and the main checkout is untouched.
    assert git(ws, "status", "--porcelain") == ""
    assert git(repo, "status", "--porcelain") == ""
    assert "AGENTS.md" not in (repo / ".git" / "info" / "exclude").read_text()
    assert list(store.layout.staging.iterdir()) == []
    # No lock left behind once created.
    assert "locked" not in git(repo, "worktree", "list", "--porcelain")
    st = worktree.status(ws, record.base, record.base_commit)
    assert st == {"exists": True, "branch": "actant/a1", "base": "main", "behind": 0, "ahead": 0, "dirty": False,
                  "modified": 0, "untracked": 0}  # fmt: skip
    (ws / "new.txt").write_text("x\n")
    (ws / "src.txt").write_text("changed\n")
    git(ws, "add", "src.txt")
    git(ws, "commit", "-q", "-m", "agent work")
    git(repo, "commit", "-q", "--allow-empty", "-m", "upstream moved on")
    st = worktree.status(ws, record.base, record.base_commit)
    assert (st["ahead"], st["behind"], st["dirty"], st["untracked"]) == (1, 1, True, 1)
    d = worktree.diff(ws, record.base, record.base_commit)
    assert "+changed" in d["diff"] and "upstream" not in d["diff"] and d["untracked"] == ["new.txt"]


def test_create_from_branch_and_from_tag(store: InstanceStore, repo: Path) -> None:
    _, p1 = create(store, repo, "b1", base="feature")
    _, p2 = create(store, repo, "t1", branch="work/t1", base="v1")
    assert p1.base == "feature" and p2.base == "v1" and p2.branch == "work/t1"
    for name in ("b1", "t1"):
        ws = store.layout.instance_dir(name)
        assert not (ws / "src.txt").exists()  # both start at the first commit
        assert git(ws, "rev-parse", "HEAD") == git(repo, "rev-parse", "v1^{commit}")
    assert sorted(worktree_paths(repo)) == sorted(str(store.layout.instance_dir(n)) for n in ("b1", "t1"))


def test_tracked_gitignore_is_extended_locally_only(store: InstanceStore, repo: Path) -> None:
    create(store, repo, "g1")
    ws = store.layout.instance_dir("g1")
    text = (ws / ".gitignore").read_text()
    assert text.startswith(".env\nbuild/\n") and "/AGENTS.md" in text and "/.actant.json" in text
    assert git(ws, "status", "--porcelain") == ""
    git(ws, "commit", "-q", "--allow-empty", "-m", "x")
    git(ws, "add", "-A")
    assert git(ws, "diff", "--cached", "--name-only") == ""  # nothing of Actant's can be staged
    assert (repo / ".gitignore").read_text() == ".env\nbuild/\n"


def test_untracked_gitignore_lists_itself(store: InstanceStore, tmp_path: Path) -> None:
    bare = tmp_path / "plain"
    bare.mkdir()
    git(bare, "init", "-q", "-b", "main")
    (bare / "f").write_text("f\n")
    git(bare, "add", "f")
    git(bare, "commit", "-q", "-m", "f")
    create(store, bare, "p1")
    ws = store.layout.instance_dir("p1")
    assert "/.gitignore" in (ws / ".gitignore").read_text()
    assert git(ws, "status", "--porcelain", "--untracked-files=all") == ""


def test_worktreeinclude_copies_ignored_listed_files(store: InstanceStore, repo: Path) -> None:
    (repo / ".worktreeinclude").write_text(".env\nconfig/*.local\n")
    (repo / ".env").write_text("SECRET=1\n")
    (repo / "config").mkdir()
    (repo / "config" / "a.local").write_text("a\n")  # listed but not git-ignored: work in progress, not copied
    (repo / "build").mkdir()
    (repo / "build" / "out.bin").write_text("big\n")  # ignored but not listed
    create(store, repo, "i1")
    ws = store.layout.instance_dir("i1")
    assert (ws / ".env").read_text() == "SECRET=1\n"
    assert not (ws / "config" / "a.local").exists()
    assert not (ws / "build").exists()


def test_two_agents_on_one_repository(store: InstanceStore, repo: Path) -> None:
    create(store, repo, "one")
    create(store, repo, "two")
    a, b = store.layout.instance_dir("one"), store.layout.instance_dir("two")
    (a / "src.txt").write_text("from one\n")
    assert (b / "src.txt").read_text() == "two\n"
    assert sorted(worktree_paths(repo)) == sorted([str(a), str(b)])
    assert {"actant/one", "actant/two"} <= set(branches(repo))


def test_errors_say_what_to_do(store: InstanceStore, repo: Path, tmp_path: Path) -> None:
    plain = tmp_path / "not-a-repo"
    plain.mkdir()
    with pytest.raises(NotAGitRepository, match="not inside a git repository"):
        worktree.plan(plain, "x", None, None)
    with pytest.raises(GitBaseNotFound, match="'nope' is not a commit, branch or tag"):
        worktree.plan(repo, "x", None, "nope")
    with pytest.raises(BranchCheckedOut, match=f"already checked out at {repo}"):
        worktree.plan(repo, "x", "main", None)
    create(store, repo, "c1")
    with pytest.raises(BranchCheckedOut, match="actant/c1"):
        worktree.plan(repo, "c2", "actant/c1", None)
    with pytest.raises(InvalidParams, match="not a valid branch name"):
        worktree.plan(repo, "x", "bad..name", None)
    with pytest.raises(WorkspaceInit, match="omit --base"):
        worktree.plan(repo, "x", "feature", "v1")
    (repo / "AGENTS.md").write_text("mine\n")
    git(repo, "add", "AGENTS.md")
    git(repo, "commit", "-q", "-m", "agents")
    with pytest.raises(WorkspaceInit, match=r"tracks AGENTS\.md"):
        worktree.plan(repo, "x", None, None, FILES)


def test_dirty_head_is_a_warning(repo: Path) -> None:
    (repo / "src.txt").write_text("uncommitted\n")
    p = worktree.plan(repo, "x", None, None)
    assert len(p.warnings) == 1 and "not carried over" in p.warnings[0]
    assert worktree.plan(repo, "x", None, "v1").warnings == ()


def test_existing_branch_is_continued(store: InstanceStore, repo: Path) -> None:
    _, p = create(store, repo, "f1", branch="feature")
    assert not p.create_branch
    assert git(store.layout.instance_dir("f1"), "rev-parse", "HEAD") == git(repo, "rev-parse", "feature")


def test_destroy_keeps_branch_and_refuses_dirty(store: InstanceStore, repo: Path) -> None:
    create(store, repo, "d1")
    ws = store.layout.instance_dir("d1")
    (ws / "wip.txt").write_text("x\n")
    assert worktree.removal_blockers(ws) == ["?? wip.txt"]
    os.unlink(ws / "wip.txt")
    assert worktree.removal_blockers(ws) == []
    git(ws, "commit", "-q", "--allow-empty", "-m", "work")
    head = git(ws, "rev-parse", "HEAD")
    assert store.destroy("d1")
    assert worktree_paths(repo) == []
    assert git(repo, "rev-parse", "actant/d1") == head
    assert list(store.layout.trash.iterdir()) == []


def test_failed_create_rolls_back(store: InstanceStore, repo: Path) -> None:
    p = worktree.plan(repo, "r1", None, None)
    rec = new_record(name="r1", template_ref="t", launch_mode="Service", workspace_policy="Persistent",
                     work_dir=None, overrides=Overrides())  # fmt: skip
    rec = msgspec.structs.replace(rec, repo=p.repo, branch=p.branch, base=p.base, base_commit=p.base_commit)

    def populate(ws: Path) -> InstanceRecord:
        raise WorkspaceInit("boom")

    with pytest.raises(WorkspaceInit):
        store.create(rec, populate, worktree.WorktreeMaker(p, "r1", rec.instance_id))
    assert worktree_paths(repo) == []
    assert "actant/r1" not in branches(repo)
    assert list(store.layout.staging.iterdir()) == []
    assert not store.exists("r1")


def test_recovery_of_interrupted_create_and_destroy(store: InstanceStore, repo: Path) -> None:
    """The states a SIGKILL can leave, built by hand; the subprocess tests kill a real daemon."""
    # 1. Killed after `git worktree add`, before the rename: rolled back (worktree, registration, branch).
    p = worktree.plan(repo, "k1", None, None)
    stage = store.layout.staging / "k1-deadbeef"
    worktree.WorktreeMaker(p, "k1", "id-k1").make(stage)
    # 2. Killed after the rename, before repair/unlock: finished.
    _, p2 = create(store, repo, "k2")
    target = store.layout.instance_dir("k2")
    rec2 = store.read("k2")[0]
    moved = store.layout.staging / "k2-cafebabe"
    os.rename(target, moved)
    git(moved, "worktree", "repair")
    git(repo, "worktree", "lock", "--reason", worktree.LOCK_PREFIX + moved.name, str(moved))
    worktree.write_intent(moved, worktree.Intent("k2", rec2.instance_id, p2.repo, str(moved), p2.branch,
                                                 p2.base_commit, True))  # fmt: skip
    os.rename(moved, target)
    # 3. Killed after the trash rename of a destroy.
    create(store, repo, "k3")
    os.rename(store.layout.instance_dir("k3"), store.layout.trash / "k3-00000000")
    result = store.scan()
    assert sorted(result.records) == ["k2"]
    assert worktree_paths(repo) == [str(target)]
    assert "locked" not in git(repo, "worktree", "list", "--porcelain")
    assert "actant/k1" not in branches(repo) and "actant/k3" in branches(repo)
    assert list(store.layout.staging.iterdir()) == [] and list(store.layout.trash.iterdir()) == []
