"""Workspaces that are a ``git worktree`` of the user's repository: one worktree and one branch per agent.

``agent create NAME --repo PATH [--branch B] [--base REF]`` makes the instance directory
``{home}/instances/NAME`` a linked worktree of PATH on branch B (default ``actant/NAME``, created from REF,
default the repository's current HEAD). Several agents can then work on one repository at once.

What Actant does in the user's repository, and nothing else: it adds and removes the worktree registration
(``.git/worktrees/<id>``) and creates the branch ref; it reads (``rev-parse``, ``worktree list``, ``status``
and ``ls-files`` with optional locks off, so not even the index is refreshed). The branch is kept on destroy.

Keeping Actant's files out of git
---------------------------------
Materialized files and ``.actant.json`` must not be committed nor shown by ``git status`` in the worktree.
``git rev-parse --git-path info/exclude`` in a linked worktree answers the *main* repository's
``.git/info/exclude``: linked worktrees share it (git's ``info/`` is common except ``info/sparse-checkout``),
so writing there would hide files in the user's main checkout too. Per-worktree config
(``config.worktree``) needs ``extensions.worktreeConfig`` in the shared config, which changes the user's
repository. What is local to one worktree is its working tree and its own index, so the exclusion lives
there: a marked block in the worktree's root ``.gitignore``. When the base tracks ``.gitignore``, the
worktree's index marks it ``skip-worktree`` so the added block is neither shown nor committed; when it does
not, the created ``.gitignore`` lists itself. The cost, documented in the README: in that worktree a merge
that changes ``.gitignore`` asks to clear the bit first (``git update-index --no-skip-worktree .gitignore``).
A materialized file that the base *tracks* (an ``AGENTS.md`` in the repository) is refused before anything
is created, as ``--work-dir`` refuses to overwrite the user's files.

Crash safety (create)
---------------------
A SIGKILL at any moment leaves a registered worktree with its complete instance, or neither. The instance
is built at ``.staging/<name>-<rand>`` and renamed into place, as every instance is; the worktree is created
*at the staging path* and follows the rename. The order:

1. an intent file ``.staging/<name>-<rand>.worktree.json`` (repository, branch, whether Actant creates it,
   the base commit, the instance id) is written durably before git is run: from here on a restart knows
   what to undo, even when git was killed before it wrote anything findable;
2. ``git worktree add --lock --reason "actant: creating <stage>" [-b B] <stage> <base commit>``: the lock
   keeps a ``git worktree prune`` (by the user, or ``git gc``) from dropping the registration while its
   path is about to change;
3. ``.actant.json``, the ``.gitignore`` block, ``.worktreeinclude`` copies, materialized files;
4. ``rename(stage, instances/NAME)``, the commit point (the worktree's admin entry still names the stage);
5. ``git worktree repair`` (the admin entry now names the final path), ``git worktree unlock``, and the
   intent file is removed.

On start (:func:`recover_intents`), an intent whose instance exists (same instance id) was committed:
step 5 is redone. One whose instance does not exist is rolled back: the worktree is removed (or its
registration, found by the unique lock reason, when git was killed mid-``add``), ``git worktree prune``,
and the branch deleted *only* if Actant created it and it still points at the base commit (``update-ref
-d`` with the expected old value, so no commit is ever lost).

Why not create in place, with the record written first as the marker? ``git worktree add`` needs an
empty or missing directory, so the record could only come after git; and an instance directory that appears
before it is complete would be a half instance for the scan to quarantine. Building at the staging path
keeps the one rule every instance follows: it appears whole, with one rename.

Crash safety (destroy)
----------------------
Destroy refuses when the worktree has uncommitted or untracked changes unless forced (it lists them). It
then renames the instance into ``.trash/`` (the commit point: the instance is gone), points the worktree's
registration at the trash path (``git worktree repair``), ``git worktree remove --force`` and
``git worktree prune``. A crash after the rename leaves a trash entry whose ``.actant.json`` names the
repository; the next start finishes the same steps (:func:`discard`), so no stale registration survives.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from actantd import fsutil
from actantd.errors import (
    BranchCheckedOut,
    GitBaseNotFound,
    GitFailed,
    InvalidParams,
    NotAGitRepository,
    WorkspaceInit,
)
from actantd.instances import git

log = logging.getLogger(__name__)

INCLUDE_FILE = ".worktreeinclude"
INTENT_SUFFIX = ".worktree.json"
LOCK_PREFIX = "actant: creating "
BLOCK_BEGIN = "# >>> actant: files Actant manages in this worktree (local to it, never committed)"
BLOCK_END = "# <<< actant"
DEFAULT_BRANCH_PREFIX = "actant/"
DIFF_MAX_BYTES = 4 * 1024 * 1024
"""``agent diff`` output beyond this is cut (and says so): it must fit one RPC message with room to spare."""
INCLUDE_MAX_FILES = 10_000


# -- planning (read-only) -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WorktreeEntry:
    path: str
    head: str | None = None
    branch: str | None = None
    locked: str | None = None
    bare: bool = False


def list_worktrees(repo: Path) -> list[WorktreeEntry]:
    """``git worktree list --porcelain``, parsed; the first entry is the main worktree."""
    out = git.run(["worktree", "list", "--porcelain"], repo, read_only=True).stdout
    entries: list[WorktreeEntry] = []
    current: dict[str, Any] = {}
    for line in [*out.splitlines(), ""]:
        if not line:
            if current:
                entries.append(WorktreeEntry(**current))
            current = {}
            continue
        key, _, value = line.partition(" ")
        if key == "worktree":
            current["path"] = value
        elif key == "HEAD":
            current["head"] = value
        elif key == "branch":
            current["branch"] = value.removeprefix("refs/heads/")
        elif key == "locked":
            current["locked"] = value
        elif key == "bare":
            current["bare"] = True
    return entries


@dataclass(frozen=True, slots=True)
class WorktreePlan:
    """Everything decided before anything is created; recorded by reference in ``.actant.json``."""

    repo: str
    """The repository's main worktree (absolute)."""
    branch: str
    base: str
    """The base as a name: what the user gave, or the branch HEAD was on, or a commit when HEAD is detached."""
    base_commit: str
    create_branch: bool
    warnings: tuple[str, ...] = ()


def _rev(repo: Path, spec: str) -> str | None:
    result = git.run(["rev-parse", "--verify", "--quiet", "--end-of-options", spec], repo, read_only=True, check=False)
    return result.stdout.strip() or None if result.ok else None


def _dirty_lines(path: Path) -> list[str]:
    out = git.run(["status", "--porcelain=v1", "--untracked-files=normal"], path, read_only=True).stdout
    return [line for line in out.splitlines() if line.strip()]


def plan(
    repo_path: Path,
    name: str,
    branch: str | None,
    base: str | None,
    planned_files: Iterable[str] = (),
) -> WorktreePlan:
    """Check the repository, branch and base; raise an error that says what to do, or return the plan."""
    if not repo_path.is_dir():
        raise NotAGitRepository(f"--repo {repo_path}: not an existing directory", repo=str(repo_path))
    top = git.toplevel(repo_path)
    if top is None:
        raise NotAGitRepository(
            f"--repo {repo_path} is not inside a git repository (run 'git init' there, or give the repository's path)",
            repo=str(repo_path),
        )
    entries = list_worktrees(top)
    main = entries[0] if entries else WorktreeEntry(path=str(top))
    if main.bare:
        raise NotAGitRepository(f"--repo {repo_path}: bare repositories are not supported yet", repo=str(repo_path))
    repo = Path(main.path)
    branch = branch or f"{DEFAULT_BRANCH_PREFIX}{name}"
    check = git.run(["check-ref-format", "--branch", branch], repo, read_only=True, check=False)
    if not check.ok:
        raise InvalidParams(f"--branch {branch!r} is not a valid branch name", branch=branch)
    for entry in entries:
        if entry.branch == branch:
            raise BranchCheckedOut(
                f"branch {branch!r} is already checked out at {entry.path}; pick another with --branch, or "
                "switch that checkout to a different branch",
                branch=branch,
                path=entry.path,
            )
    exists = _rev(repo, f"refs/heads/{branch}") is not None
    warnings: list[str] = []
    head_branch = git.run(["symbolic-ref", "--quiet", "--short", "HEAD"], repo, read_only=True, check=False)
    current = head_branch.stdout.strip() if head_branch.ok else None
    if exists and base is not None:
        raise WorkspaceInit(
            f"branch {branch!r} already exists in {repo}; omit --base to continue on it, or pick another --branch",
            branch=branch,
            repo=str(repo),
        )
    if base is None or base == "HEAD" or (current is not None and base == current):
        commit = _rev(repo, "HEAD^{commit}")
        if commit is None:
            raise GitBaseNotFound(f"{repo} has no commits yet; commit something first", repo=str(repo))
        label = base if base not in (None, "HEAD") else (current or commit)
        assert label is not None
        dirty = _dirty_lines(repo)
        if dirty and not exists:
            warnings.append(
                f"{repo} has uncommitted changes ({len(dirty)} path(s)); they are not carried over: the worktree "
                f"starts from {label} at {commit[:12]}"
            )
    else:
        found = _rev(repo, f"{base}^{{commit}}")
        if found is None:
            raise GitBaseNotFound(
                f"--base {base!r} is not a commit, branch or tag of {repo} (see 'git branch -a' and 'git tag')",
                base=base,
                repo=str(repo),
            )
        commit, label = found, base
    files = sorted(set(planned_files))
    if files:
        start = f"refs/heads/{branch}" if exists else commit
        tracked = git.run(["ls-tree", "-r", "--name-only", start, "--", *files], repo, read_only=True).stdout
        taken = sorted(line for line in tracked.splitlines() if line)
        if taken:
            raise WorkspaceInit(
                f"{repo} tracks {', '.join(taken)} on {label}; Actant would overwrite it in the worktree (use "
                "--work-dir for this repository, or remove the file from the branch)",
                files=taken,
                repo=str(repo),
            )
    return WorktreePlan(str(repo), branch, label, commit, not exists, tuple(warnings))


# -- intent files (crash recovery) --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Intent:
    name: str
    instance_id: str
    repo: str
    path: str
    branch: str
    base_commit: str
    create_branch: bool


def intent_path(stage: Path) -> Path:
    return stage.with_name(stage.name + INTENT_SUFFIX)


def write_intent(stage: Path, intent: Intent) -> None:
    fsutil.atomic_write(intent_path(stage), json.dumps(asdict(intent), indent=2).encode() + b"\n", mode=0o600)


def read_intent(path: Path) -> Intent | None:
    try:
        doc = json.loads(path.read_bytes())
        return Intent(**{k: doc[k] for k in Intent.__dataclass_fields__})
    except (OSError, ValueError, KeyError, TypeError):
        return None


# -- create -------------------------------------------------------------------------------------------------


def add(stage: Path, p: WorktreePlan) -> None:
    """``git worktree add`` at the staging path, locked until :func:`finish` (see the module docstring)."""
    args = ["worktree", "add", "--lock", "--reason", LOCK_PREFIX + stage.name]
    if p.create_branch:
        args += ["-b", p.branch, "--", str(stage), p.base_commit]
    else:
        args += ["--", str(stage), p.branch]
    git.run(args, p.repo)


def finish(workspace: Path) -> None:
    """After the rename into place: point the registration at the final path, then unlock it."""
    git.run(["worktree", "repair", str(workspace)], workspace, check=False)
    git.run(["worktree", "unlock", str(workspace)], workspace, check=False)


def exclude(workspace: Path, files: Iterable[str]) -> None:
    """Hide ``.actant.json`` and the materialized files from git in this worktree only (module docstring).

    Idempotent: the block is replaced, so ``agent sync`` can call it again when the materialized set changes.
    """
    patterns = ["/.actant.json", "/..actant.json.tmp-*"]
    for rel in sorted(set(files)):
        parent, _, leaf = rel.rpartition("/")
        prefix = f"/{parent}/" if parent else "/"
        patterns += [f"/{rel}", f"{prefix}.{leaf}.tmp-*"]
    gitignore = workspace / ".gitignore"
    tracked = bool(git.run(["ls-files", "--", ".gitignore"], workspace, read_only=True).stdout.strip())
    try:
        text = gitignore.read_text()
    except FileNotFoundError:
        text = ""
    if not tracked:
        patterns.insert(0, "/.gitignore")
    start, end = text.find(BLOCK_BEGIN), text.find(BLOCK_END)
    if start != -1 and end != -1:
        text = text[:start] + text[end + len(BLOCK_END) :].lstrip("\n")
    if text and not text.endswith("\n"):
        text += "\n"
    block = "\n".join([BLOCK_BEGIN, *patterns, BLOCK_END]) + "\n"
    fsutil.atomic_write(gitignore, (text + block).encode())
    if tracked:
        git.run(["update-index", "--skip-worktree", "--", ".gitignore"], workspace)


def copy_includes(repo: Path, workspace: Path) -> list[str]:
    """Copy the git-ignored files that ``.worktreeinclude`` (gitignore syntax) lists from the main checkout.

    The convention other tools follow: a file is copied when it matches ``.worktreeinclude`` *and* git ignores
    it (an ``.env``, local settings); tracked files come with the checkout and untracked work in progress is
    not copied. Files already present in the worktree are left alone.
    """
    include = repo / INCLUDE_FILE
    if not include.is_file():
        return []

    def listed(*args: str) -> set[str]:
        out = git.run(["ls-files", "-z", "--others", "--ignored", *args], repo, read_only=True).stdout
        return {p for p in out.split("\0") if p}

    wanted = listed(f"--exclude-from={include}") & listed("--exclude-standard")
    copied: list[str] = []
    for rel in sorted(wanted)[:INCLUDE_MAX_FILES]:
        parts = Path(rel).parts
        if Path(rel).is_absolute() or ".." in parts or (parts and parts[0] == ".git"):
            continue
        src, dst = repo / rel, workspace / rel
        if os.path.lexists(dst) or not (src.is_symlink() or src.is_file()):
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst, follow_symlinks=False)
        copied.append(rel)
    return copied


# -- status and diff ----------------------------------------------------------------------------------------


def _base_ref(workspace: Path, base: str | None, base_commit: str | None) -> str | None:
    for candidate in (base, base_commit):
        if candidate and _rev(workspace, f"{candidate}^{{commit}}") is not None:
            return candidate
    return None


def status(workspace: Path, base: str | None, base_commit: str | None) -> dict[str, Any]:
    """Branch, commits ahead of / behind the base, and uncommitted changes of one worktree."""
    if not (workspace / ".git").exists():
        return {"exists": False}
    head = git.run(["symbolic-ref", "--quiet", "--short", "HEAD"], workspace, read_only=True, check=False)
    out: dict[str, Any] = {"exists": True, "branch": head.stdout.strip() if head.ok else None, "base": base}
    ref = _base_ref(workspace, base, base_commit)
    if ref is not None:
        counts = git.run(["rev-list", "--left-right", "--count", f"{ref}...HEAD"], workspace, read_only=True)
        behind, _, ahead = counts.stdout.strip().partition("\t")
        out["behind"], out["ahead"] = int(behind or 0), int(ahead or 0)
    lines = _dirty_lines(workspace)
    untracked = sum(1 for line in lines if line.startswith("??"))
    out.update(dirty=bool(lines), modified=len(lines) - untracked, untracked=untracked)
    return out


def diff(
    workspace: Path, base: str | None, base_commit: str | None, *, stat: bool = False, max_bytes: int = DIFF_MAX_BYTES
) -> dict[str, Any]:
    """The agent's work against its base: commits and uncommitted changes since the fork point.

    ``git diff <merge-base>`` compares the working tree with where the branch left the base, so the base
    moving on does not show up as the agent undoing it. Untracked files are listed by name (git diff does not
    show them).
    """
    ref = _base_ref(workspace, base, base_commit)
    if ref is None:
        raise GitBaseNotFound(f"base {base!r} no longer exists in the repository", base=base)
    fork = git.run(["merge-base", ref, "HEAD"], workspace, read_only=True).stdout.strip()
    args = ["diff", "--no-color", "--no-ext-diff", "--stat" if stat else "--patch", fork, "--"]
    text = git.run(args, workspace, read_only=True).stdout
    truncated = len(text.encode()) > max_bytes
    if truncated:
        text = text.encode()[:max_bytes].decode("utf-8", "ignore")
    untracked = [line[3:] for line in _dirty_lines(workspace) if line.startswith("??")]
    return {"base": base, "forkPoint": fork, "diff": text, "truncated": truncated, "untracked": untracked}


def removal_blockers(workspace: Path) -> list[str]:
    """What ``git worktree remove --force`` would lose: ``git status --porcelain`` lines (ignored files aside)."""
    if not (workspace / ".git").exists():
        return []
    return _dirty_lines(workspace)


# -- remove, rollback, recovery -----------------------------------------------------------------------------


def _admin_dir(workspace: Path) -> Path | None:
    """The registration directory (``<common>/worktrees/<id>``) named by the worktree's ``.git`` file."""
    try:
        first = (workspace / ".git").read_text().splitlines()[0]
    except (OSError, IndexError):
        return None
    if not first.startswith("gitdir:"):
        return None
    path = Path(first.removeprefix("gitdir:").strip())
    return path if path.is_absolute() else (workspace / path).resolve()


def _repo_of(workspace: Path, repo: str | None) -> Path | None:
    if repo and Path(repo).is_dir():
        return Path(repo)
    admin = _admin_dir(workspace)
    if admin is not None and admin.parent.name == "worktrees" and admin.parent.parent.is_dir():
        return admin.parent.parent
    return None


def discard(workspace: Path, repo: str | None) -> None:
    """Remove a worktree that is no longer an instance (trash, staging): registration, files, then prune.

    The branch is kept. Every step tolerates an earlier interrupted run of itself, so recovery can call this
    on whatever a crash left.
    """
    target = _repo_of(workspace, repo)
    if target is not None and workspace.exists():
        git.run(["worktree", "repair", str(workspace)], workspace, check=False)
        git.run(["worktree", "remove", "--force", "--force", str(workspace)], target, check=False)
    if os.path.lexists(workspace):
        shutil.rmtree(workspace, ignore_errors=True)
    if target is not None:
        git.run(["worktree", "prune"], target, check=False)


def rollback(intent: Intent) -> None:
    """Undo a create that never reached its commit point: worktree, registration, and a branch Actant made."""
    stage = Path(intent.path)
    repo = Path(intent.repo)
    if not repo.is_dir():
        shutil.rmtree(stage, ignore_errors=True)
        return
    discard(stage, intent.repo)
    # git killed inside `worktree add` can leave a locked registration with no path to find it by: the
    # unique lock reason identifies it.
    common = git.common_dir(repo)
    if common is not None:
        reason = LOCK_PREFIX + stage.name
        admin_root = common / "worktrees"
        with contextlib.suppress(OSError):
            for admin in admin_root.iterdir():
                with contextlib.suppress(OSError):
                    if (admin / "locked").read_text().strip() == reason:
                        shutil.rmtree(admin, ignore_errors=True)
        git.run(["worktree", "prune"], repo, check=False)
    if intent.create_branch:
        # Delete the branch only while it still points at the base commit: nothing of anyone's is lost.
        git.run(["update-ref", "-d", f"refs/heads/{intent.branch}", intent.base_commit], repo, check=False)


def recover_intents(staging: Path, instance_file_of: Any) -> list[str]:
    """Finish or undo every worktree create a crash interrupted (module docstring); returns what was done.

    ``instance_file_of(name)`` returns the instance id recorded at ``instances/<name>``, or None.
    """
    done: list[str] = []
    with os.scandir(staging) as entries:
        intents = sorted(staging / e.name for e in entries if e.name.endswith(INTENT_SUFFIX))
    for path in intents:
        intent = read_intent(path)
        try:
            if intent is None:
                log.error("%s: unreadable worktree intent; removed", path)
            elif instance_file_of(intent.name) == intent.instance_id:
                finish(Path(path.parent.parent / intent.name))
                done.append(f"finished worktree of {intent.name}")
            else:
                rollback(intent)
                done.append(f"rolled back worktree {intent.path} ({intent.repo})")
        except GitFailed as exc:
            log.error("%s: %s", path, exc.message)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    return done


@dataclass
class WorktreeMaker:
    """The create steps for :meth:`actantd.instances.store.InstanceStore.create` (module docstring)."""

    plan: WorktreePlan
    name: str
    instance_id: str
    files: Sequence[str] = ()
    copied: list[str] = field(default_factory=list)

    def make(self, stage: Path) -> None:
        intent = Intent(self.name, self.instance_id, self.plan.repo, str(stage), self.plan.branch,
                        self.plan.base_commit, self.plan.create_branch)  # fmt: skip
        try:
            write_intent(stage, intent)
        except OSError as exc:  # nothing was created yet
            raise WorkspaceInit(f"{self.name}: could not write {intent_path(stage)}: {exc}", agent=self.name) from exc
        add(stage, self.plan)

    def prepare(self, stage: Path) -> None:
        exclude(stage, self.files)
        self.copied = copy_includes(Path(self.plan.repo), stage)

    def commit(self, target: Path, stage: Path) -> None:
        finish(target)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(intent_path(stage))

    def abort(self, stage: Path) -> None:
        intent = read_intent(intent_path(stage))
        if intent is not None:
            rollback(intent)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(intent_path(stage))
