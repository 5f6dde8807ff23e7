"""Create, destroy and sync: an instance's directory, its workspace files, and the ``--work-dir`` rules.

Create is crash-safe through :meth:`InstanceStore.create` (staged directory, renamed into place); the
Initializing record lists the files before they are written, so whatever moment a create is interrupted,
cleanup knows exactly which files are Actant's. Each operation runs under the instance's lock.
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
from actantd.errors import ActantError, AgentAlreadyRunning, AgentExists, AgentNotFound, InvalidParams, WorkspaceInit
from actantd.instances.lifecycle import Lifecycle
from actantd.instances.record import InstanceRecord, Overrides, new_record, utc_now
from actantd.instances.state import DESTROYABLE, LIVE, Status
from actantd.instances.store import validate_name
from actantd.paths import INSTANCE_FILE

S = Status


async def create(
    lc: Lifecycle, name: str, template: str, work_dir: str | None = None, overrides: dict[str, Any] | None = None
) -> InstanceRecord:
    validate_name(name)
    try:
        ov = msgspec.convert(overrides or {}, Overrides)
    except msgspec.ValidationError as exc:
        raise InvalidParams(f"overrides: {exc}", agent=name) from exc
    if work_dir is not None:
        work_dir = str(Path(work_dir).expanduser().resolve())
    async with lc.lock(name):
        existing = lc.records.get(name)
        if existing is not None:
            if (existing.template_ref, existing.work_dir, existing.overrides) == (template, work_dir, ov):
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
            check_work_dir(name, Path(work_dir), planned, home=lc.layout.home, others=others)
        tpl: Template = resolved.template
        base = new_record(
            name=name,
            template_ref=template,
            launch_mode=tpl.launch_mode,
            workspace_policy=tpl.workspace_policy,
            work_dir=work_dir,
            overrides=ov,
        )
        # The Initializing record lists the files before they are written (see materialize.plan).
        initializing = msgspec.structs.replace(
            base, status=S.INITIALIZING, updated_at=utc_now(), materialized=sorted(planned)
        )

        def populate(workspace: Path) -> InstanceRecord:
            lc.store.write_at(workspace, initializing)
            try:
                files = materialize.write(workspace, planned)
            except ActantError:
                raise
            except OSError as exc:
                raise WorkspaceInit(f"{name}: could not write the workspace: {exc}", agent=name) from exc
            return msgspec.structs.replace(
                initializing, status=S.READY, materialized=files, updated_at=utc_now(), reason="created"
            )

        final = await asyncio.to_thread(lc.store.create, base, populate)
        lc.records[name] = final
        lc.event("instance", name, event="created", template=template, workDir=work_dir)
        for src, dst in ((S.CREATED, S.INITIALIZING), (S.INITIALIZING, S.READY)):
            lc.announce(name, src, dst, "created")
        return final


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
        if record.status not in DESTROYABLE:
            if not force:
                raise AgentAlreadyRunning(
                    f"agent {name!r} is {record.status.value}; stop it first or pass --force",
                    agent=name,
                    status=record.status.value,
                )
            if record.status in LIVE:
                record = await proc.terminate(record, "destroy requested", None)
        proc.release()
        await asyncio.to_thread(lc.store.destroy, name)
        shutil.rmtree(lc.layout.log_dir(name), ignore_errors=True)
        lc.forget(name)
        lc.event("instance", name, event="destroyed")
    return True


async def sync(lc: Lifecycle, name: str) -> InstanceRecord:
    """Re-materialize the workspace from the current configs (also run on hot reload)."""
    async with lc.lock(name):
        record = lc.get(name)
        resolved = lc.resolve(record.template_ref)
        files = await asyncio.to_thread(materialize.materialize, lc.workspace(record), resolved)
        if files != record.materialized:
            record = msgspec.structs.replace(record, materialized=files, updated_at=utc_now())
            lc.store.write(record)
            lc.records[name] = record
        lc.event("instance", name, event="synced", files=files)
        return record


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
