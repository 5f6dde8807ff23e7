"""The instance-level side of git-worktree workspaces: what create, destroy, status and diff add for them.

:mod:`.worktree` speaks git; this module speaks instances (records, templates, the destroy rule, the setup
command, the Ephemeral policy), so the lifecycle code calls one function per step and stays short. Every
function here that runs git blocks: callers run it in a worker thread.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

from actantd.config.schema import Template, expand_argv, expand_env
from actantd.errors import GitFailed, InvalidParams, WorktreeDirty
from actantd.instances import git, worktree
from actantd.instances.record import InstanceRecord, SetupResult
from actantd.instances.setup import run_setup

BLOCKERS_SHOWN = 20
"""Paths a refused destroy lists; the rest are counted."""

DAEMON_ONLY_ENV = frozenset({"NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "WATCHDOG_USEC"})


def plan(
    name: str,
    repo: str | None,
    branch: str | None,
    base: str | None,
    work_dir: str | None,
    planned: Mapping[str, str],
) -> worktree.WorktreePlan | None:
    """The worktree plan for ``agent create --repo``; None without ``repo``. Raises what the user must fix."""
    if repo is None:
        if branch is not None or base is not None:
            raise InvalidParams("'branch' and 'base' need 'repo'", agent=name)
        return None
    if work_dir is not None:
        raise InvalidParams("give either 'repo' (a new worktree) or 'workDir' (an existing directory), not both",
                            agent=name)  # fmt: skip
    return worktree.plan(Path(repo).expanduser().resolve(), name, branch, base, planned)


def apply(record: InstanceRecord, p: worktree.WorktreePlan | None) -> InstanceRecord:
    """The record's references to the repository, branch and base."""
    if p is None:
        return record
    return msgspec.structs.replace(record, repo=p.repo, branch=p.branch, base=p.base, base_commit=p.base_commit)


def maker(p: worktree.WorktreePlan | None, record: InstanceRecord, planned: Mapping[str, str]) -> Any:
    """The :class:`~.worktree.WorktreeMaker` for :meth:`InstanceStore.create`, or None."""
    if p is None:
        return None
    return worktree.WorktreeMaker(p, record.name, record.instance_id, sorted(planned))


def same_request(existing: InstanceRecord, repo: str | None, branch: str | None, base: str | None) -> bool:
    """Whether a repeated create names the same repository (and branch/base when given): then it is a no-op."""
    if repo is None:
        return existing.repo is None
    if existing.repo is None or Path(existing.repo) != Path(repo).expanduser().resolve():
        # ``repo`` may name a subdirectory or a linked worktree of the same repository.
        top = git.toplevel(Path(repo)) if Path(repo).is_dir() else None
        entries = worktree.list_worktrees(top) if top is not None else []
        if not entries or existing.repo != entries[0].path:
            return False
    return (branch is None or branch == existing.branch) and (base is None or base == existing.base)


def check_destroy(record: InstanceRecord, workspace: Path, force: bool) -> None:
    """Refuse to destroy a worktree with uncommitted or untracked changes unless forced, listing them."""
    if record.repo is None or force:
        return
    blockers = worktree.removal_blockers(workspace)
    if not blockers:
        return
    shown = "\n  ".join(blockers[:BLOCKERS_SHOWN])
    more = f"\n  ... and {len(blockers) - BLOCKERS_SHOWN} more" if len(blockers) > BLOCKERS_SHOWN else ""
    raise WorktreeDirty(
        f"agent {record.name!r}: its worktree has uncommitted or untracked changes that destroy would lose:\n"
        f"  {shown}{more}\ncommit them on branch {record.branch} (the branch is kept), or pass --force to discard "
        "them",
        agent=record.name,
        branch=record.branch,
        paths=blockers[:BLOCKERS_SHOWN],
        count=len(blockers),
    )


def status_of(record: InstanceRecord, workspace: Path) -> dict[str, Any] | None:
    """The ``worktree`` object of ``agent status`` / ``agent list`` (wide); None for other instances."""
    if record.repo is None:
        return None
    try:
        return worktree.status(workspace, record.base, record.base_commit)
    except GitFailed as exc:
        return {"exists": workspace.exists(), "error": exc.message}


def diff_of(record: InstanceRecord, workspace: Path, stat: bool) -> dict[str, Any]:
    if record.repo is None:
        raise InvalidParams(
            f"agent {record.name!r} has no git worktree (create it with --repo to get one)", agent=record.name
        )
    out = worktree.diff(workspace, record.base, record.base_commit, stat=stat)
    out["branch"] = record.branch
    return out


def setup_env(record: InstanceRecord, template: Template, workspace: Path, values: Mapping[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in DAEMON_ONLY_ENV}
    env.update(expand_env(template.env, **values))
    env.update(record.overrides.env)
    env.update(ACTANT_INSTANCE=record.name, ACTANT_INSTANCE_ID=record.instance_id, ACTANT_WORKSPACE=str(workspace),
               ACTANT_TEMPLATE=record.template_ref, ACTANT_SETUP="1")  # fmt: skip
    return env


async def setup(
    record: InstanceRecord, template: Template | None, workspace: Path, log_path: Path, values: Mapping[str, str]
) -> SetupResult | None:
    """Run the template's ``setup`` once in the new workspace; None when the template has none."""
    if template is None or template.setup is None:
        return None
    argv = expand_argv(template.setup, **values)
    env = setup_env(record, template, workspace, values)
    return await run_setup(argv, workspace, env, log_path, template.setup_timeout_seconds)


def setup_failure(result: SetupResult) -> str | None:
    """The Failed reason for a setup that did not succeed, with the last lines of its output; else None."""
    if result.exit_code == 0 and not result.timed_out:
        return None
    what = "timed out" if result.timed_out else (
        "could not start" if result.exit_code is None else f"exited with code {result.exit_code}"
    )  # fmt: skip
    lines = [line for line in result.output_tail.splitlines() if line.strip()][-10:]
    tail = ("\n" + "\n".join(lines)) if lines else ""
    return f"setup {' '.join(result.argv)} {what}{tail}"


def ephemeral_blockers(record: InstanceRecord, workspace: Path) -> str | None:
    """Why an ended Ephemeral instance must stay (uncommitted work in its worktree), or None to remove it."""
    if record.repo is None:
        return None
    try:
        lines = worktree.removal_blockers(workspace)
    except GitFailed as exc:
        return f"could not check its worktree: {exc.message}"
    if not lines:
        return None
    return (f"ephemeral workspace kept: {len(lines)} uncommitted or untracked path(s) in its worktree; commit them "
            f"on {record.branch} and destroy it, or destroy --force")  # fmt: skip
