"""Agents in git worktrees through a real daemon: create, status, diff, destroy, setup, and SIGKILLs.

The crash tests put a ``git`` wrapper first on the daemon's PATH. It runs the real git, except for the one
command named in ``ACTANT_TEST_GIT_HOLD`` (``"worktree repair:before"``, ``"worktree add:after"``...): there it
writes its pid to a marker file and waits, before or after running git. The test waits for the marker (the
event "the daemon is inside this step"), SIGKILLs the daemon, ends the wrapper by its recorded pid, restarts
the daemon with the real git and checks the invariant: the agent exists with a registered, unlocked
worktree, or neither exists (and a branch Actant created is gone again).
"""

from __future__ import annotations

import os
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.gitrepo import branches, git, isolated_git_env, make_repo, worktree_paths
from tests.harness import Daemon, RpcError, make_configs, write_json

WRAPPER = """#!/bin/sh
# $1=-C $2=dir $3 $4: the subcommand (actantd always calls git -C DIR ...).
if [ -n "$ACTANT_TEST_GIT_HOLD" ] && [ ! -e "$ACTANT_TEST_GIT_MARK" ]; then
  cmd="${ACTANT_TEST_GIT_HOLD%:*}"; when="${ACTANT_TEST_GIT_HOLD##*:}"
  case "$3 $4" in
    "$cmd"*)
      if [ "$when" = after ]; then "$ACTANT_TEST_REAL_GIT" "$@"; fi
      echo $$ > "$ACTANT_TEST_GIT_MARK.tmp" && mv "$ACTANT_TEST_GIT_MARK.tmp" "$ACTANT_TEST_GIT_MARK"
      exec sleep 3600;;
  esac
fi
exec "$ACTANT_TEST_REAL_GIT" "$@"
"""


class GitDaemon(Daemon):
    extra_env: dict[str, str]

    def env(self) -> dict[str, str]:
        return {**super().env(), **self.extra_env}


@pytest.fixture
def setup_env(short_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    env = isolated_git_env(short_tmp)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture
def repo(short_tmp: Path, setup_env: dict[str, str]) -> Path:
    return make_repo(short_tmp / "repo")


@pytest.fixture
def daemon(short_tmp: Path, setup_env: dict[str, str]) -> Iterator[GitDaemon]:
    configs = make_configs(short_tmp)
    write_json(
        configs / "templates/wt-agent.json",
        {
            "version": "1.0",
            "name": "wt-agent",
            "backend": "custom",
            "command": ["{python}", "-c", "import time; time.sleep(3600)"],
            "restart": {"policy": "Never"},
        },
    )
    write_json(configs / "templates/wt-setup.json", {"version": "1.0", "name": "wt-setup", "backend": "custom",
               "command": ["{python}", "-c", "print('hi')"],
               "setup": ["sh", "-c", "echo installing; echo done > .setup-ran"]})  # fmt: skip
    write_json(configs / "templates/wt-setup-fails.json", {"version": "1.0", "name": "wt-setup-fails",
               "backend": "custom", "command": ["{python}", "-c", "print('hi')"],
               "setup": ["sh", "-c", "echo resolving deps; echo 'npm ERR! missing: x' >&2; exit 7"]})  # fmt: skip
    commit = "import subprocess as s; s.run(['git', 'commit', '-q', '--allow-empty', '-m', 'ephemeral work'])"
    write_json(configs / "templates/wt-ephemeral.json", {"version": "1.0", "name": "wt-ephemeral",
               "backend": "custom", "launchMode": "OneShot", "workspacePolicy": "Ephemeral",
               "command": ["{python}", "-c", commit]})  # fmt: skip
    write_json(configs / "templates/wt-ephemeral-dirty.json", {"version": "1.0", "name": "wt-ephemeral-dirty",
               "backend": "custom", "launchMode": "OneShot", "workspacePolicy": "Ephemeral",
               "command": ["{python}", "-c", "open('draft.txt', 'w').write('unsaved')"]})  # fmt: skip
    write_json(configs / "templates/wt-setup-hangs.json", {"version": "1.0", "name": "wt-setup-hangs",
               "backend": "custom", "command": ["{python}", "-c", "pass"],
               "setup": ["sh", "-c", f"echo $$ > {short_tmp}/setup.pid.tmp && mv {short_tmp}/setup.pid.tmp "
                         f"{short_tmp}/setup.pid && exec sleep 3600"]})  # fmt: skip
    d = GitDaemon(short_tmp, configs)
    d.extra_env = {}
    try:
        yield d
    finally:
        if d.proc is not None:
            d.stop()


def rpc_error(daemon: Daemon, method: str, params: dict[str, Any]) -> RpcError:
    with pytest.raises(RpcError) as info:
        daemon.call(method, params)
    return info.value


def test_two_agents_on_one_repository(daemon: GitDaemon, repo: Path) -> None:
    daemon.start()
    r1 = daemon.call("agent.create", {"name": "one", "template": "wt-agent", "repo": str(repo)})
    r2 = daemon.call("agent.create", {"name": "two", "template": "wt-agent", "repo": str(repo / "."),
                                      "branch": "fix/two", "base": "v1"})  # fmt: skip
    assert r1["warnings"] == [] and r1["agent"]["branch"] == "actant/one" and r1["agent"]["base"] == "main"
    assert r2["agent"]["branch"] == "fix/two" and r2["agent"]["base"] == "v1"
    ws1, ws2 = (Path(daemon.call("agent.status", {"name": n})["agent"]["workspace"]) for n in ("one", "two"))
    assert sorted(worktree_paths(repo)) == sorted([str(ws1), str(ws2)])
    # Idempotent: the same create again changes nothing.
    again = daemon.call("agent.create", {"name": "one", "template": "wt-agent", "repo": str(repo)})
    assert again["agent"]["instanceId"] == r1["agent"]["instanceId"]
    daemon.call("agent.start", {"name": "one"})
    (ws1 / "src.txt").write_text("agent one was here\n")
    git(ws1, "commit", "-qam", "one's work")
    (ws1 / "notes.txt").write_text("draft\n")
    st = daemon.call("agent.status", {"name": "one"})["agent"]
    assert st["worktree"] == {"exists": True, "branch": "actant/one", "base": "main", "behind": 0, "ahead": 1,
                              "dirty": True, "modified": 0, "untracked": 1}  # fmt: skip
    wide = daemon.call("agent.list", {"wide": True})["agents"]
    assert [a["worktree"]["ahead"] for a in wide] == [1, 0]
    assert "worktree" not in daemon.call("agent.list")["agents"][0]
    d = daemon.call("agent.diff", {"name": "one"})
    assert "+agent one was here" in d["diff"] and d["untracked"] == ["notes.txt"]
    assert "src.txt" in daemon.call("agent.diff", {"name": "one", "stat": True})["diff"]
    # Destroy refuses while work would be lost, and says what.
    daemon.call("agent.stop", {"name": "one"})
    err = rpc_error(daemon, "agent.destroy", {"name": "one"})
    assert err.error_code == "WORKTREE_DIRTY" and "?? notes.txt" in str(err) and "--force" in str(err)
    assert daemon.call("agent.destroy", {"name": "one", "force": True})["destroyed"]
    assert daemon.call("agent.destroy", {"name": "two"})["destroyed"]
    assert worktree_paths(repo) == []
    assert {"actant/one", "fix/two"} <= set(branches(repo))  # the work is kept on its branch
    assert "one's work" in git(repo, "log", "--oneline", "actant/one")
    assert git(repo, "status", "--porcelain") == ""


def test_concurrent_creates_on_one_repository(daemon: GitDaemon, repo: Path) -> None:
    daemon.start()
    results: dict[str, Any] = {}

    def create(name: str) -> None:
        conn = daemon.conn()
        try:
            results[name] = conn.call("agent.create", {"name": name, "template": "wt-agent", "repo": str(repo)})
        finally:
            conn.close()

    threads = [threading.Thread(target=create, args=(f"c{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(results) == ["c0", "c1", "c2", "c3"]
    assert len(worktree_paths(repo)) == 4 and "locked" not in git(repo, "worktree", "list", "--porcelain")
    for name in results:
        assert daemon.call("agent.destroy", {"name": name})["destroyed"]
    assert worktree_paths(repo) == []


def test_create_errors_and_dirty_warning(daemon: GitDaemon, repo: Path, short_tmp: Path) -> None:
    daemon.start()
    plain = short_tmp / "plain"
    plain.mkdir()
    cases = [
        ({"repo": str(plain)}, "NOT_A_GIT_REPOSITORY", "not inside a git repository"),
        ({"repo": str(repo), "base": "no-such"}, "GIT_BASE_NOT_FOUND", "is not a commit, branch or tag"),
        ({"repo": str(repo), "branch": "main"}, "BRANCH_CHECKED_OUT", "already checked out at"),
        ({"repo": str(repo), "workDir": str(plain)}, "INVALID_PARAMS", "not both"),
    ]
    for extra, code, text in cases:
        err = rpc_error(daemon, "agent.create", {"name": "x", "template": "wt-agent", **extra})
        assert err.error_code == code and text in str(err), (extra, err.error_code, str(err))
    assert daemon.call("agent.list")["agents"] == [] and worktree_paths(repo) == []
    (repo / "README.md").write_text("edited, not committed\n")
    result = daemon.call("agent.create", {"name": "x", "template": "wt-agent", "repo": str(repo)})
    assert len(result["warnings"]) == 1 and "not carried over" in result["warnings"][0]
    ws = Path(daemon.call("agent.status", {"name": "x"})["agent"]["workspace"])
    assert (ws / "README.md").read_text() == "hello\n"


def test_setup_command(daemon: GitDaemon, repo: Path) -> None:
    daemon.start()
    ok = daemon.call("agent.create", {"name": "s1", "template": "wt-setup", "repo": str(repo)})["agent"]
    assert ok["status"] == "Ready" and ok["setup"]["exitCode"] == 0 and "installing" in ok["setup"]["outputTail"]
    ws = Path(daemon.call("agent.status", {"name": "s1"})["agent"]["workspace"])
    assert (ws / ".setup-ran").exists()
    bad = daemon.call("agent.create", {"name": "s2", "template": "wt-setup-fails", "repo": str(repo)})["agent"]
    assert bad["status"] == "Failed" and bad["setup"]["exitCode"] == 7
    assert "npm ERR! missing: x" in bad["reason"] and "exited with code 7" in bad["reason"]
    assert "resolving deps" in bad["setup"]["outputTail"]
    # Failed after setup is still an instance: it can be destroyed, its worktree goes with it.
    assert daemon.call("agent.destroy", {"name": "s2"})["destroyed"]
    assert worktree_paths(repo) == [str(ws)]


def test_sigkill_during_setup_leaves_the_agent_failed(daemon: GitDaemon, repo: Path, short_tmp: Path) -> None:
    daemon.start()
    _send_async(daemon, "agent.create", {"name": "s3", "template": "wt-setup-hangs", "repo": str(repo)})
    pid = _wait_for(short_tmp / "setup.pid", daemon)
    setup_proc = psutil.Process(pid)
    daemon.kill()
    daemon.start()  # recovery ends the orphaned setup (it carries the instance id) before recording Failed
    setup_proc.wait(10)  # raises TimeoutExpired if recovery left it running
    status = daemon.call("agent.status", {"name": "s3"})["agent"]
    assert status["status"] == "Failed" and "setup was interrupted" in status["reason"]
    assert worktree_paths(repo) == [status["workspace"]]


def test_ephemeral_workspace_goes_when_the_run_ends_and_the_branch_stays(daemon: GitDaemon, repo: Path) -> None:
    daemon.start()
    conn = daemon.conn()
    conn.call("events.subscribe", {"types": ["instance"]})
    daemon.call("agent.create", {"name": "e1", "template": "wt-ephemeral", "repo": str(repo)})
    daemon.call("agent.start", {"name": "e1", "wait": False})
    conn.wait_event(lambda e: e.get("agent") == "e1" and e.get("event") == "destroyed")
    assert worktree_paths(repo) == [] and "ephemeral work" in git(repo, "log", "--oneline", "actant/e1")
    daemon.call("agent.create", {"name": "e2", "template": "wt-ephemeral-dirty", "repo": str(repo)})
    daemon.call("agent.start", {"name": "e2", "wait": False})
    kept = conn.wait_event(lambda e: e.get("agent") == "e2" and e.get("event") == "ephemeralKept")
    conn.close()
    assert "1 uncommitted or untracked" in kept["reason"]
    assert daemon.call("agent.status", {"name": "e2"})["agent"]["status"] == "Stopped"
    assert len(worktree_paths(repo)) == 1


# -- SIGKILL during create and destroy ----------------------------------------------------------------------


def _wait_for(path: Path, daemon: Daemon, timeout: float = 30.0) -> int:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if daemon.proc is not None and daemon.proc.poll() is not None:
            raise AssertionError(f"daemon exited before reaching the hold:\n{daemon.read_stderr()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"the hold was never reached:\n{daemon.read_stderr()}")
        time.sleep(0.01)  # polling a file the wrapper renames into place: the event, not a guess at timing
    return int(path.read_text())


def _kill_held(daemon: GitDaemon, marker: Path) -> None:
    pid = _wait_for(marker, daemon)
    daemon.kill()
    try:
        held = psutil.Process(pid)
        held.kill()
        held.wait(10)
    except psutil.NoSuchProcess:
        pass


def _arm(daemon: GitDaemon, short_tmp: Path, hold: str) -> Path:
    bindir = short_tmp / "gitbin"
    bindir.mkdir(exist_ok=True)
    wrapper = bindir / "git"
    wrapper.write_text(WRAPPER)
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    marker = short_tmp / f"held-{time.monotonic_ns()}"
    real = next(p for p in (Path(d) / "git" for d in os.environ["PATH"].split(":")) if p.is_file() and p != wrapper)
    daemon.extra_env = {"PATH": f"{bindir}:{os.environ['PATH']}", "ACTANT_TEST_GIT_HOLD": hold,
                        "ACTANT_TEST_GIT_MARK": str(marker), "ACTANT_TEST_REAL_GIT": str(real)}  # fmt: skip
    return marker


def _send_async(daemon: Daemon, method: str, params: dict[str, Any]) -> None:
    conn = daemon.conn()
    conn.send({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
    # The answer never comes (the daemon is killed); the connection is closed with the daemon.
    threading.Thread(target=lambda: (conn.file.read(), conn.close()), daemon=True).start()


def _check_invariant(daemon: GitDaemon, repo: Path, name: str) -> bool:
    """Restart with the real git; return whether the agent exists. Either way, nothing is half there."""
    daemon.extra_env = {}
    daemon.start()
    names = [a["name"] for a in daemon.call("agent.list")["agents"]]
    porcelain = git(repo, "worktree", "list", "--porcelain")
    home = daemon.home / "instances"
    assert sorted(os.listdir(home / ".staging")) == [] and sorted(os.listdir(home / ".trash")) == []
    if name in names:
        ws = Path(daemon.call("agent.status", {"name": name})["agent"]["workspace"])
        assert worktree_paths(repo) == [str(ws)]
        assert "locked" not in porcelain and "prunable" not in porcelain
        assert git(ws, "status", "--porcelain") == ""
        return True
    assert worktree_paths(repo) == [], porcelain
    assert not (home / name).exists()
    return False


CREATE_HOLDS = [
    ("worktree add:before", False),
    ("worktree add:after", False),
    ("update-index --skip-worktree:after", False),
    ("worktree repair:before", True),
    ("worktree unlock:before", True),
]


@pytest.mark.parametrize(("hold", "exists"), CREATE_HOLDS)
def test_sigkill_during_create(daemon: GitDaemon, repo: Path, short_tmp: Path, hold: str, exists: bool) -> None:
    marker = _arm(daemon, short_tmp, hold)
    daemon.start()
    _send_async(daemon, "agent.create", {"name": "k", "template": "wt-agent", "repo": str(repo)})
    _kill_held(daemon, marker)
    assert _check_invariant(daemon, repo, "k") is exists
    assert ("actant/k" in branches(repo)) is exists  # a branch Actant made for a create that never was: gone
    # Whatever was left, the next create (or destroy) works.
    if exists:
        assert daemon.call("agent.destroy", {"name": "k"})["destroyed"]
    else:
        daemon.call("agent.create", {"name": "k", "template": "wt-agent", "repo": str(repo)})


DESTROY_HOLDS = [
    "status --porcelain:before",
    "worktree repair:before",
    "worktree remove:after",
    "worktree prune:before",
]


@pytest.mark.parametrize("hold", DESTROY_HOLDS)
def test_sigkill_during_destroy(daemon: GitDaemon, repo: Path, short_tmp: Path, hold: str) -> None:
    daemon.start()
    daemon.call("agent.create", {"name": "k", "template": "wt-agent", "repo": str(repo)})
    ws = Path(daemon.call("agent.status", {"name": "k"})["agent"]["workspace"])
    git(ws, "commit", "-q", "--allow-empty", "-m", "work to keep")
    daemon.stop()
    marker = _arm(daemon, short_tmp, hold)
    daemon.start()
    _send_async(daemon, "agent.destroy", {"name": "k"})
    _kill_held(daemon, marker)
    exists = _check_invariant(daemon, repo, "k")
    assert exists is (hold == "status --porcelain:before")
    assert "work to keep" in git(repo, "log", "--oneline", "actant/k")  # the branch always survives
