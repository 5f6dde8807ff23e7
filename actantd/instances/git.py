"""Running the ``git`` CLI: the one place Actant starts git, so every call has the same environment and errors.

Debian's ``git`` is the only real dependency of worktree workspaces; libgit2 bindings would add a wheel and
still not know the worktree commands. Every call is blocking (the daemon runs them in a worker thread):

* ``LC_ALL=C`` so messages can be matched, ``GIT_TERMINAL_PROMPT=0`` so nothing ever waits for a password;
* read-only queries run with ``GIT_OPTIONAL_LOCKS=0`` so that even ``git status`` does not refresh and rewrite
  the user's index: a query in the user's main checkout changes nothing in it;
* a bounded timeout, and output capped, so a huge repository cannot wedge a worker thread or the daemon's
  memory.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from actantd.errors import GitFailed
from actantd.supervisor import exits

GIT_TIMEOUT = 120.0
"""Seconds for one git command: a checkout of a large repository takes a while, a hang must not block forever."""


@dataclass(frozen=True, slots=True)
class GitResult:
    code: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.code == 0

    def first_error_line(self) -> str:
        for line in self.stderr.splitlines():
            line = line.strip()
            if line:
                return line.removeprefix("fatal: ").removeprefix("error: ")
        return f"exit code {self.code}"


def git_env(base: Mapping[str, str] | None = None, *, read_only: bool = False) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    env.update(LC_ALL="C", LANGUAGE="C", GIT_TERMINAL_PROMPT="0")
    # A hook or editor must never run from the daemon.
    env.setdefault("GIT_EDITOR", "true")
    if read_only:
        env["GIT_OPTIONAL_LOCKS"] = "0"
    for leaked in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_COMMON_DIR", "GIT_PREFIX"):
        env.pop(leaked, None)
    return env


def run(
    args: Sequence[str],
    cwd: str | os.PathLike[str],
    *,
    read_only: bool = False,
    check: bool = True,
    timeout: float = GIT_TIMEOUT,
) -> GitResult:
    """``git -C cwd args...``; raises :class:`GitFailed` when ``check`` and git exits non-zero."""
    exe = shutil.which("git")
    if exe is None:
        raise GitFailed("git is not installed (on Debian: apt-get install git)", command="git")
    argv = [exe, "-C", os.fspath(cwd), *args]
    try:
        proc = subprocess.Popen(  # argv, never a shell
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=git_env(read_only=read_only),
        )
    except OSError as exc:
        raise GitFailed(f"could not run git: {exc}", command=list(args)) from exc
    # The daemon reaps orphans as a subreaper: claim the child so its status is ours to collect.
    exits.claim_child(proc.pid)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        proc.kill()
        proc.communicate()
        raise GitFailed(f"git {' '.join(args[:2])} did not finish within {timeout:.0f}s", command=list(args)) from exc
    finally:
        exits.release_child(proc.pid)
    result = GitResult(proc.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"))
    if check and not result.ok:
        raise GitFailed(
            f"git {' '.join(args[:2])} failed in {cwd}: {result.first_error_line()}",
            command=list(args),
            cwd=os.fspath(cwd),
            stderr=result.stderr[-2000:],
        )
    return result


def toplevel(path: Path) -> Path | None:
    """The root of the working tree containing ``path``, or None when it is not inside one."""
    result = run(["rev-parse", "--show-toplevel"], path, read_only=True, check=False)
    return Path(result.stdout.strip()) if result.ok and result.stdout.strip() else None


def common_dir(path: Path) -> Path | None:
    """The repository's shared ``.git`` directory (the same for the main checkout and all its worktrees)."""
    result = run(["rev-parse", "--path-format=absolute", "--git-common-dir"], path, read_only=True, check=False)
    return Path(result.stdout.strip()) if result.ok and result.stdout.strip() else None
