"""Real git repositories in temp dirs for worktree tests, with the machine's git config kept out.

``isolated_git_env`` points ``GIT_CONFIG_GLOBAL`` at an empty file and sets ``GIT_CONFIG_NOSYSTEM``, so a
developer's aliases, hooks path or default branch cannot change what the tests see; commits get a fixed
author through the environment.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Actant Test",
    "GIT_AUTHOR_EMAIL": "test@actant.invalid",
    "GIT_COMMITTER_NAME": "Actant Test",
    "GIT_COMMITTER_EMAIL": "test@actant.invalid",
}


def isolated_git_env(tmp: Path) -> dict[str, str]:
    empty = tmp / "gitconfig-empty"
    empty.touch()
    return {"GIT_CONFIG_GLOBAL": str(empty), "GIT_CONFIG_NOSYSTEM": "1", **GIT_IDENTITY}


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, "LC_ALL": "C"}
    proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {proc.stderr}")
    return proc.stdout


def make_repo(path: Path) -> Path:
    """A repository on ``main`` with two commits, a tag ``v1`` on the first, and a branch ``feature``."""
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    (path / "README.md").write_text("hello\n")
    (path / ".gitignore").write_text(".env\nbuild/\n")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "first")
    git(path, "tag", "v1")
    git(path, "branch", "feature")
    (path / "src.txt").write_text("two\n")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "second")
    return path


def worktree_paths(repo: Path) -> list[str]:
    """Paths of the linked worktrees registered in ``repo`` (the main checkout left out)."""
    out = git(repo, "worktree", "list", "--porcelain")
    paths = [line.split(" ", 1)[1] for line in out.splitlines() if line.startswith("worktree ")]
    return paths[1:]


def branches(repo: Path) -> list[str]:
    return git(repo, "for-each-ref", "--format=%(refname:short)", "refs/heads/").split()
