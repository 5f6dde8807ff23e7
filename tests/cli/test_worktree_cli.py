"""``actantctl agent create --repo``, ``agent diff``, ``agent list -o wide`` and a refused destroy, as a user
types them: the real console script against a real daemon, git repositories in temp dirs."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.gitrepo import git, isolated_git_env, make_repo, worktree_paths
from tests.harness import Daemon, make_configs, write_json

_SCRIPT = Path(sys.executable).parent / "actantctl"
CTL = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "actantctl"]


@pytest.fixture
def env(short_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for key, value in isolated_git_env(short_tmp).items():
        monkeypatch.setenv(key, value)
    return {k: v for k, v in os.environ.items() if not k.startswith(("ACTANT_", "NOTIFY_SOCKET", "LISTEN_"))}


@pytest.fixture
def daemon(short_tmp: Path, env: dict[str, str]) -> Iterator[Daemon]:
    configs = make_configs(short_tmp)
    write_json(
        configs / "templates/coder.json",
        {
            "version": "1.0",
            "name": "coder",
            "backend": "custom",
            "command": ["{python}", "-c", "import time; time.sleep(3600)"],
            "restart": {"policy": "Never"},
        },
    )
    write_json(configs / "templates/broken-setup.json", {"version": "1.0", "name": "broken-setup",
               "backend": "custom", "command": ["{python}", "-c", "pass"],
               "setup": ["sh", "-c", "echo 'npm ERR! could not resolve' >&2; exit 1"]})  # fmt: skip
    d = Daemon(short_tmp, configs)
    d.start()
    try:
        yield d
    finally:
        d.stop()


def ctl(daemon: Daemon, env: dict[str, str], *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CTL, "--socket", str(daemon.socket), *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=60, check=False)  # fmt: skip


def test_two_agents_one_repository_from_the_cli(daemon: Daemon, env: dict[str, str], short_tmp: Path) -> None:
    repo = make_repo(short_tmp / "repo")
    # --repo is resolved on the client side: a relative path works from the user's directory.
    one = ctl(daemon, env, "agent", "create", "one", "-t", "coder", "--repo", ".", cwd=repo)
    assert one.returncode == 0, one.stderr
    assert "created one" in one.stdout and "branch actant/one from main of " + str(repo) in one.stdout
    two = ctl(daemon, env, "agent", "create", "two", "-t", "coder", "--repo", str(repo), "--branch", "fix/two",
              "--base", "v1")  # fmt: skip
    assert two.returncode == 0 and "branch fix/two from v1" in two.stdout, two.stderr
    ws = Path(git(repo, "worktree", "list", "--porcelain").split("worktree ")[2].splitlines()[0])
    (ws / "src.txt").write_text("changed by one\n")
    status = ctl(daemon, env, "agent", "status", "one")
    assert "branch:" in status.stdout and "actant/one" in status.stdout
    assert "1 modified, 0 untracked" in status.stdout and "+0/-0" in status.stdout
    wide = ctl(daemon, env, "agent", "list", "-o", "wide").stdout.splitlines()
    assert wide[0].split()[-3:] == ["BRANCH", "AHEAD/BEHIND", "CHANGES"]
    assert "actant/one" in wide[1] and "fix/two" in wide[2] and "clean" in wide[2]
    diff = ctl(daemon, env, "agent", "diff", "one")
    assert diff.returncode == 0 and "+changed by one" in diff.stdout
    refused = ctl(daemon, env, "agent", "destroy", "one")
    assert refused.returncode != 0 and "M src.txt" in refused.stderr and "--force" in refused.stderr
    forced = ctl(daemon, env, "agent", "destroy", "one", "--force")
    assert forced.returncode == 0 and "destroyed one" in forced.stdout
    assert len(worktree_paths(repo)) == 1 and "actant/one" in git(repo, "branch")


def test_cli_errors(daemon: Daemon, env: dict[str, str], short_tmp: Path) -> None:
    repo = make_repo(short_tmp / "repo")
    usage = ctl(daemon, env, "agent", "create", "x", "-t", "coder", "--branch", "b")
    assert usage.returncode == 2 and "--branch and --base need --repo" in usage.stderr
    not_repo = ctl(daemon, env, "agent", "create", "x", "-t", "coder", "--repo", str(short_tmp))
    assert not_repo.returncode != 0 and "not inside a git repository" in not_repo.stderr
    failed = ctl(daemon, env, "agent", "create", "x", "-t", "broken-setup", "--repo", str(repo))
    assert failed.returncode == 1 and "npm ERR! could not resolve" in failed.stderr
    assert "setup command" in failed.stderr and "Failed" in failed.stderr
    (repo / "README.md").write_text("uncommitted edit\n")
    dirty = ctl(daemon, env, "agent", "create", "y", "-t", "coder", "--repo", str(repo))
    assert dirty.returncode == 0 and "warning:" in dirty.stderr and "not carried over" in dirty.stderr
    no_wt = ctl(daemon, env, "agent", "create", "plain", "-t", "coder")
    assert no_wt.returncode == 0
    nodiff = ctl(daemon, env, "agent", "diff", "plain")
    assert nodiff.returncode != 0 and "has no git worktree" in nodiff.stderr
