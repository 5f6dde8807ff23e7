"""An ``agent run`` of an ``Ephemeral`` worktree instance ends it: the worktree goes, its branch stays.

A real daemon, a real repository in a temp dir, and a backend whose one-shot ``run`` argv is a small Python
program that commits (or leaves a file uncommitted) in the workspace.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.gitrepo import branches, git, isolated_git_env, make_repo, worktree_paths
from tests.harness import Daemon, RpcError, make_configs, served, write_json

COMMIT = (
    "import subprocess, sys; open('work.txt', 'w').write(sys.argv[1]); "
    "subprocess.run(['git', 'add', 'work.txt'], check=True); "
    "subprocess.run(['git', 'commit', '-q', '-m', 'run: ' + sys.argv[1]], check=True); print('committed')"
)
LEAVE_DIRTY = "import sys; open('draft.txt', 'w').write(sys.argv[1]); print('drafted')"


@pytest.fixture
def repo(short_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for key, value in isolated_git_env(short_tmp).items():
        monkeypatch.setenv(key, value)  # the daemon (and the runs it starts) inherit it
    return make_repo(short_tmp / "repo")


@pytest.fixture
def daemon(short_tmp: Path, repo: Path) -> Iterator[Daemon]:
    configs = make_configs(short_tmp)
    for name, code in (("committer", COMMIT), ("drafter", LEAVE_DIRTY)):
        write_json(configs / f"backends/{name}.json", {"version": "1.0", "name": name, "materializer": "custom",
                   "run": ["{python}", "-c", code, "{prompt}"], "runOutput": "text"})  # fmt: skip
        write_json(configs / f"templates/eph-{name}.json", {"version": "1.0", "name": f"eph-{name}",
                   "backend": name, "workspacePolicy": "Ephemeral", "restart": {"policy": "Never"},
                   "command": ["{python}", "-c", "import time; time.sleep(3600)"]})  # fmt: skip
    write_json(configs / "templates/kept-committer.json", {"version": "1.0", "name": "kept-committer",
               "backend": "committer", "restart": {"policy": "Never"},
               "command": ["{python}", "-c", "pass"]})  # fmt: skip
    with served(Daemon(short_tmp, configs)) as d:
        yield d


def test_a_run_ends_an_ephemeral_worktree_instance_and_keeps_its_branch(daemon: Daemon, repo: Path) -> None:
    conn = daemon.conn()
    conn.call("events.subscribe", {"types": ["instance"]})
    daemon.call("agent.create", {"name": "e1", "template": "eph-committer", "repo": str(repo)})
    assert len(worktree_paths(repo)) == 1
    result = daemon.call("agent.run", {"name": "e1", "prompt": "fix it"})
    assert result["exitCode"] == 0 and result["result"] == "committed\n"
    assert result["ephemeral"] == {"removed": True, "reason": None}
    conn.wait_event(lambda e: e.get("agent") == "e1" and e.get("event") == "destroyed")
    conn.close()
    assert worktree_paths(repo) == []  # the worktree is gone ...
    assert "actant/e1" in branches(repo) and "run: fix it" in git(
        repo, "log", "--oneline", "actant/e1"
    )  # ... not the work
    with pytest.raises(RpcError) as info:
        daemon.call("agent.status", {"name": "e1"})
    assert info.value.code == -32003
    runs = daemon.call("events.query", {"agent": "e1", "types": ["execution"]})["events"]
    assert len(runs) == 1 and runs[0]["exitCode"] == 0  # the run's history outlives the instance


def test_a_run_that_leaves_uncommitted_work_keeps_the_instance(daemon: Daemon, repo: Path) -> None:
    daemon.call("agent.create", {"name": "e2", "template": "eph-drafter", "repo": str(repo)})
    result = daemon.call("agent.run", {"name": "e2", "prompt": "draft it"})
    assert result["exitCode"] == 0 and result["ephemeral"]["removed"] is False
    assert "1 uncommitted or untracked" in result["ephemeral"]["reason"]
    status = daemon.call("agent.status", {"name": "e2"})["agent"]
    assert status["status"] == "Ready" and (Path(status["workspace"]) / "draft.txt").read_text() == "draft it"
    kept = daemon.call("events.query", {"agent": "e2", "types": ["instance"]})["events"]
    assert [e["event"] for e in kept if e.get("event") == "ephemeralKept"] == ["ephemeralKept"]
    assert len(worktree_paths(repo)) == 1


def test_a_run_beside_a_running_service_does_not_end_it(daemon: Daemon, repo: Path) -> None:
    """The service is the agent's work too: the instance goes when it ends, not when a run beside it does."""
    daemon.call("agent.create", {"name": "e3", "template": "eph-committer", "repo": str(repo)})
    daemon.call("agent.start", {"name": "e3"})
    result = daemon.call("agent.run", {"name": "e3", "prompt": "beside"})
    assert result["exitCode"] == 0 and result["ephemeral"] is None
    assert daemon.call("agent.status", {"name": "e3"})["agent"]["status"] == "Running"
    daemon.call("agent.stop", {"name": "e3"})  # a stop is not an end: restart keeps working
    assert daemon.call("agent.status", {"name": "e3"})["agent"]["status"] == "Stopped"
    assert len(worktree_paths(repo)) == 1
    daemon.call("agent.destroy", {"name": "e3"})
    assert worktree_paths(repo) == [] and "run: beside" in git(repo, "log", "--oneline", "actant/e3")


def test_a_run_of_a_persistent_instance_leaves_it(daemon: Daemon, repo: Path) -> None:
    daemon.call("agent.create", {"name": "p1", "template": "kept-committer", "repo": str(repo)})
    result = daemon.call("agent.run", {"name": "p1", "prompt": "keep"})
    assert result["exitCode"] == 0 and result["ephemeral"] is None
    assert daemon.call("agent.status", {"name": "p1"})["agent"]["status"] == "Ready"
    assert len(worktree_paths(repo)) == 1
    daemon.call("agent.destroy", {"name": "p1"})
