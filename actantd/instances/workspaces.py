"""Create, destroy and sync: an instance's directory, its workspace files, and the ``--work-dir`` rules.

Create is crash-safe through :meth:`InstanceStore.create` (staged directory, renamed into place); the
Initializing record lists the files before they are written, so whatever moment a create is interrupted,
cleanup knows exactly which files are Actant's. Each operation runs under the instance's lock. A workspace
that is a git worktree (``repo``) follows the same steps with git kept in step (:mod:`.worktree`), and a
template's ``setup`` command runs once the new workspace is in place (:mod:`.setup`).
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import msgspec

from actantd import materialize
from actantd.config.schema import Template
from actantd.errors import (
    ActantError,
    AgentAlreadyRunning,
    AgentExists,
    AgentNotFound,
    DestroyRefused,
    InvalidParams,
    WorkspaceInit,
)
from actantd.instances import secret_env, workdir_rules, worktree, worktree_ops
from actantd.instances.lifecycle import Lifecycle
from actantd.instances.record import InstanceRecord, Overrides, new_record, utc_now
from actantd.instances.state import DESTROYABLE, ENDED, LIVE, Status
from actantd.instances.store import validate_name
from actantd.materialize import workspace as mat_workspace
from actantd.paths import INSTANCE_FILE

S = Status


async def create(
    lc: Lifecycle,
    name: str,
    template: str,
    work_dir: str | None = None,
    overrides: dict[str, Any] | None = None,
    repo: str | None = None,
    branch: str | None = None,
    base: str | None = None,
    warnings: list[str] | None = None,
) -> InstanceRecord:
    """Build an instance; with ``repo`` its workspace is a new git worktree (:mod:`.worktree`).

    ``warnings`` collects what the caller should tell the user (a dirty HEAD not carried over).
    """
    validate_name(name)
    try:
        ov = msgspec.convert(overrides or {}, Overrides)
    except msgspec.ValidationError as exc:
        raise InvalidParams(f"overrides: {exc}", agent=name) from exc
    if work_dir is not None:
        if (problem := workdir_rules.unexpanded_problem(work_dir)) is not None:  # hardening #10
            raise WorkspaceInit(problem, agent=name, workDir=work_dir)
        work_dir = str(Path(work_dir).resolve())
    async with lc.lock(name):
        existing = lc.records.get(name)
        if existing is not None:
            same_env = secret_env.launch_env(existing, lc.layout) == ov.env
            if (
                (existing.template_ref, existing.work_dir) == (template, work_dir)
                and same_env
                and (
                    worktree_ops.same_request(existing, None, branch, base)
                    if repo is None
                    else await asyncio.to_thread(worktree_ops.same_request, existing, repo, branch, base)
                )
            ):
                return existing  # idempotent: same arguments, nothing to change
            raise AgentExists(
                f"agent {name!r} already exists (template {existing.template_ref!r})",
                agent=name,
                template=existing.template_ref,
            )
        if lc.store.exists(name):
            raise AgentExists(f"instances/{name} exists but is not loaded (see daemon status)", agent=name)
        resolved = lc.resolve(template)
        planned = materialize.plan(resolved)
        if work_dir is not None:
            others = [(r.name, lc.workspace(r)) for r in lc.records.values()]
            refused = workdir_rules.refused_reason(  # hardening #10: never /etc, /dev, /, the configs folder...
                Path(work_dir), configs=lc.layout.configs.resolve(), home_dirs=workdir_rules.user_homes()
            )
            if refused is not None:
                raise WorkspaceInit(refused, agent=name, workDir=work_dir)
            check_work_dir(name, Path(work_dir), planned, home=lc.layout.home, others=others)
        # Planning a worktree runs git (a worker thread); without a repository it only checks the params.
        wt_plan = (
            worktree_ops.plan(name, None, branch, base, work_dir, planned)
            if repo is None
            else await asyncio.to_thread(worktree_ops.plan, name, repo, branch, base, work_dir, planned)
        )
        tpl: Template = resolved.template
        record0 = new_record(
            name=name,
            template_ref=template,
            launch_mode=tpl.launch_mode,
            workspace_policy=tpl.workspace_policy,
            work_dir=work_dir,
            overrides=secret_env.redacted(ov),  # values go to {home}/secrets/, never into the workspace
        )
        record0 = worktree_ops.apply(record0, wt_plan)
        # The Initializing record lists the files before they are written (see materialize.plan).
        initializing = msgspec.structs.replace(
            record0, status=S.INITIALIZING, updated_at=utc_now(), materialized=sorted(planned)
        )
        # With a setup command the instance appears still Initializing; it runs once the workspace is in place.
        has_setup = tpl.setup is not None

        def populate(workspace: Path) -> InstanceRecord:
            lc.store.write_at(workspace, initializing)
            try:
                if work_dir is not None and wt_plan is None:  # before the files appear: `git status` stays clean
                    mat_workspace.exclude(workspace, name, planned)
                files = materialize.write(workspace, planned).files
                final_ws = Path(work_dir) if work_dir is not None else lc.layout.instance_dir(name)
                trusted = mat_workspace.add_trust(resolved, final_ws, [])
            except ActantError:
                raise
            except OSError as exc:
                raise WorkspaceInit(f"{name}: could not write the workspace: {exc}", agent=name) from exc
            return msgspec.structs.replace(
                initializing, status=S.INITIALIZING if has_setup else S.READY, materialized=files,
                updated_at=utc_now(), reason="running setup" if has_setup else "created",
                trust_entries=trusted,
            )  # fmt: skip

        maker = worktree_ops.maker(wt_plan, record0, planned)
        await asyncio.to_thread(secret_env.save, lc.layout, name, ov.env)
        try:
            final = await asyncio.to_thread(lc.store.create, record0, populate, maker)
        except BaseException:
            secret_env.remove(lc.layout, name)
            raise
        lc.records[name] = final
        notes = list(wt_plan.warnings) if wt_plan is not None else []
        if warnings is not None:
            warnings.extend(notes)
        lc.event("instance", name, event="created", template=template, workDir=work_dir, repo=final.repo,
                 branch=final.branch, base=final.base, warnings=notes or None)  # fmt: skip
        lc.announce(name, S.CREATED, S.INITIALIZING, "created")
        if not has_setup:
            lc.announce(name, S.INITIALIZING, S.READY, "created")
            return final
        return await _run_setup(lc, final, tpl)


async def _run_setup(lc: Lifecycle, record: InstanceRecord, template: Template) -> InstanceRecord:
    """The template's setup command, once, in the new workspace: Initializing → Ready, or → Failed."""
    workspace = lc.workspace(record)
    values = {"python": lc.python, "workspace": str(workspace), "name": record.name,
              "configs": str(lc.layout.configs)}  # fmt: skip
    result = await worktree_ops.setup(record, template, workspace, lc.layout.log_dir(record.name) / "setup.log",
                                      values)  # fmt: skip
    assert result is not None
    failure = worktree_ops.setup_failure(result)
    if failure is not None:
        return await lc.transition(record, S.FAILED, failure, setup=result)
    return await lc.transition(record, S.READY, "created (setup done)", setup=result)


async def destroy(lc: Lifecycle, name: str, force: bool = False) -> bool:
    record = lc.records.get(name)
    if record is None:
        if force:
            return False  # idempotent: destroying what is not there succeeds
        raise AgentNotFound(f"no agent named {name!r}", agent=name)
    proc = lc.process(name)
    proc.cancel_restart()
    async with lc.lock(name):
        record = lc.records.get(name)
        if record is None:
            return False  # destroyed by a call queued ahead of this one
        proc = lc.process(name)
        proc.cancel_restart()
        try:  # hardening #10: prove the directory is this instance's before anything changes
            await asyncio.to_thread(lc.store.check_owned, record)
        except DestroyRefused as exc:
            lc.event("instance", name, event="destroyRefused", reason=exc.message)
            raise
        if record.status not in DESTROYABLE:
            if not force:
                raise AgentAlreadyRunning(
                    f"agent {name!r} is {record.status.value}; stop it first or pass --force",
                    agent=name,
                    status=record.status.value,
                )
            if record.status in LIVE:
                record = await proc.terminate(record, "destroy requested", None)
        await asyncio.to_thread(worktree_ops.check_destroy, record, lc.workspace(record), force)
        proc.release()
        workspace = lc.workspace(record)
        await asyncio.to_thread(mat_workspace.remove_trust, record.trust_entries, workspace)
        if record.work_dir is not None and record.repo is None:
            await asyncio.to_thread(mat_workspace.unexclude, workspace, name)
        await asyncio.to_thread(lc.store.destroy, name, record)
        secret_env.remove(lc.layout, name)
        shutil.rmtree(lc.layout.log_dir(name), ignore_errors=True)
        lc.forget(name)
        lc.event("instance", name, event="destroyed")
    return True


async def sync(lc: Lifecycle, name: str) -> InstanceRecord:
    """Re-materialize the workspace from the current configs (also run on hot reload)."""
    async with lc.lock(name):
        record = lc.get(name)
        resolved = lc.resolve(record.template_ref)
        workspace = lc.workspace(record)
        result = await asyncio.to_thread(materialize.materialize, workspace, resolved, record.materialized)
        if record.repo is not None:  # a worktree: keep the new set of files out of git there too
            await asyncio.to_thread(worktree.exclude, workspace, result.files)
        trusted = record.trust_entries
        if resolved.template.trust == "global" or trusted:
            trusted = await asyncio.to_thread(mat_workspace.add_trust, resolved, workspace, trusted)
        if result.files != record.materialized or trusted != record.trust_entries:
            if record.work_dir is not None and record.repo is None:
                await asyncio.to_thread(mat_workspace.exclude, workspace, name, result.files)
            record = msgspec.structs.replace(
                record, materialized=result.files, trust_entries=trusted, updated_at=utc_now()
            )
            await asyncio.to_thread(lc.store.write, record)
            lc.records[name] = record
        lc.event("instance", name, event="synced", files=result.files, written=result.written,
                 removed=result.removed, skipped=result.skipped)  # fmt: skip
        return record


# -- git worktree workspaces: reads and the Ephemeral policy -------------------------------------------------


def worktree_status(lc: Lifecycle, record: InstanceRecord) -> dict[str, Any] | None:
    """Branch, ahead/behind and changes of a worktree agent (runs git: call it in a worker thread)."""
    return worktree_ops.status_of(record, lc.workspace(record))


def diff(lc: Lifecycle, name: str, stat: bool = False) -> dict[str, Any]:
    """``agent diff``: the agent's work against its base (runs git: call it in a worker thread)."""
    record = lc.get(name)
    return worktree_ops.diff_of(record, lc.workspace(record), stat)


RUN_ENDED: frozenset[Status] = ENDED | {Status.READY}
"""Where an instance with no process stands when an ``agent run`` of it ends: never started (``Ready``), or
its service ended before. A run of an instance whose service is active (or pending a restart) does not end it."""


async def end_ephemeral(lc: Lifecycle, name: str, *, after_run: bool = False) -> dict[str, Any] | None:
    """An Ephemeral instance is removed once its work has ended: its process ended by itself and no restart
    is pending, or (``after_run``) a one-shot ``agent run`` ended while no process of it runs.

    Its branch is kept (destroy never deletes one); a worktree with uncommitted work is kept too, and an
    event says why, so no work is lost. ``agent stop`` does not end it, so ``restart`` keeps working. The
    caller keeps the instance's runs out meanwhile (``RunService.hold``). Returns ``None`` when the policy
    does not apply (``Persistent``, or the agent still has work), else ``{"removed": bool, "reason"}``.
    """
    record = lc.records.get(name)
    ended = RUN_ENDED if after_run else ENDED
    if record is None or record.workspace_policy != "Ephemeral" or record.status not in ended:
        return None
    if lc.process(name).restart_task is not None:
        return None
    blockers = await asyncio.to_thread(worktree_ops.ephemeral_blockers, record, lc.workspace(record))
    if blockers:
        lc.event("instance", name, event="ephemeralKept", reason=blockers)
        return {"removed": False, "reason": blockers}
    try:
        await destroy(lc, name)
    except ActantError as exc:  # started again meanwhile, or changed: it stays
        lc.event("instance", name, event="ephemeralKept", reason=exc.message)
        return {"removed": False, "reason": exc.message}
    return {"removed": True, "reason": None}


def check_work_dir(
    name: str, work_dir: Path, planned: Iterable[str], *, home: Path, others: Iterable[tuple[str, Path]]
) -> None:
    """A --work-dir is the user's: Actant takes over nothing in it and never shares it between instances.

    ``others`` are the (name, workspace) of every existing instance; raises :class:`WorkspaceInit` naming the
    first rule ``work_dir`` breaks.
    """
    if not work_dir.is_dir():
        raise WorkspaceInit(f"--work-dir {work_dir}: not an existing directory", agent=name, workDir=str(work_dir))
    home = home.resolve()
    if work_dir == home or home in work_dir.parents or work_dir in home.parents:
        raise WorkspaceInit(f"--work-dir {work_dir} overlaps Actant's home {home}", agent=name)
    for other, workspace in others:
        ws = workspace.resolve()
        if work_dir == ws or ws in work_dir.parents or work_dir in ws.parents:
            raise WorkspaceInit(
                f"--work-dir {work_dir} overlaps the workspace of agent {other!r}", agent=name, other=other
            )
    if (work_dir / INSTANCE_FILE).exists():
        raise WorkspaceInit(f"--work-dir {work_dir} already holds an instance (.actant.json)", agent=name)
    taken = sorted(rel for rel in planned if os.path.lexists(work_dir / rel))
    if taken:
        raise WorkspaceInit(
            f"--work-dir {work_dir} already has {', '.join(taken)}; Actant never overwrites files it did not "
            "write (move them aside, or use a workspace under Actant's home)",
            agent=name,
            files=taken,
        )
