"""The ``.actant.json`` record and its schema migrations.

The record holds references and runtime facts only, never a copy of a config: the template is resolved by
name at read time, so an edited config reaches every instance and no copy can go stale. Field names are
camelCase on disk and the enum values PascalCase because outside tools read these files directly.

Schema history, oldest first (``MIGRATIONS`` maps each version to the step that lifts it one version):

* 1 — the format of Actant's TypeScript daemon: ``template`` instead of ``templateRef``, lower-case status
  values (``"running"``), ``launchMode`` in kebab-case (``"service"``, ``"one-shot"``), no ``instanceId`` on
  some very old files.
* 2 — this daemon: ``templateRef``, PascalCase enums, supervision fields (``pidCreateTime``, ``lastExit``...).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import msgspec

from actantd.errors import InstanceCorrupted, SchemaTooNew
from actantd.instances.state import Status
from actantd.paths import Layout

SCHEMA_VERSION = 2


def utc_now() -> str:
    """ISO-8601 UTC with milliseconds and a ``Z``: sortable as text, unambiguous for outside tools."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class LastExit(msgspec.Struct, rename="camel", frozen=True):
    code: int | None
    signal: int | None
    at: str


class SetupResult(msgspec.Struct, rename="camel", frozen=True):
    """A template's setup command as it ran once in the new workspace; the output is a bounded tail."""

    argv: list[str]
    exit_code: int | None
    at: str
    output_tail: str = ""
    timed_out: bool = False


class Overrides(msgspec.Struct, rename="camel", frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """Instance-level settings given at create time; never a copy of the template."""

    env: dict[str, str] = {}


class InstanceRecord(msgspec.Struct, rename="camel", frozen=True, kw_only=True):
    schema_version: int = SCHEMA_VERSION
    instance_id: str
    name: str
    template_ref: str
    status: Status
    launch_mode: str
    workspace_policy: str
    pid: int | None = None
    pid_create_time: float | None = None
    created_at: str
    updated_at: str
    launched_at: str | None = None
    stopped_at: str | None = None
    restart_count: int = 0
    last_exit: LastExit | None = None
    work_dir: str | None = None
    overrides: Overrides = Overrides()
    reason: str | None = None
    """Why the instance entered its current status (shown by ``agent status``)."""
    attached: bool = False
    """True when the process was not started by Actant (``agent attach``); it is never restarted."""
    port: int | None = None
    health: str | None = None
    materialized: list[str] = []
    """Workspace-relative files Actant wrote; destroy of a ``--work-dir`` instance removes exactly these."""
    # -- a workspace that is a git worktree (instances/worktree.py); all by reference, None otherwise ----------
    repo: str | None = None
    """The repository (its main worktree) this instance's workspace is a linked worktree of."""
    branch: str | None = None
    base: str | None = None
    """The base as a name (branch, tag, or a commit when HEAD was detached); ahead/behind are counted from it."""
    base_commit: str | None = None
    """The commit the branch was created from (the fallback when ``base`` no longer exists)."""
    setup: SetupResult | None = None
    """The outcome of the template's ``setup`` command, run once after create."""
    run_session_id: str | None = None
    """The backend's conversation id from the last ``agent run`` (``agent run --continue`` resumes it)."""
    acp_session_id: str | None = None
    """The ACP session of a ``protocol: "acp"`` agent, ``session/load``ed when the agent is started again."""
    trust_entries: list[str] = []
    """Global trust files in which Actant added this workspace's entry (``"trust": "global"``), as
    ``"<materializer>:<path>"``; destroy removes exactly these entries (actantd/materialize/trust.py)."""
    workspace_dev: int | None = None
    workspace_ino: int | None = None
    """Identity (``st_dev``, ``st_ino``) of the workspace directory at create: destroy removes nothing from a
    directory that is not this one (a symlink or another directory swapped in since). None for records
    written before it was recorded."""


_encoder = msgspec.json.Encoder()


class Step(NamedTuple):
    """One transition of a chain that shares one durable write (``Lifecycle.transitions``): the status moved
    to, the reason the journal and the event carry, and the record fields it changes."""

    to: Status
    reason: str
    changes: dict[str, Any] = {}  # never mutated: the shared default is read, never written


def encode(record: InstanceRecord) -> bytes:
    """Pretty JSON with a trailing newline: people and ``jq`` read these files too."""
    return msgspec.json.format(_encoder.encode(record), indent=2) + b"\n"


def _v1_to_v2(doc: dict[str, Any]) -> dict[str, Any]:
    out = dict(doc)
    if "template" in out and "templateRef" not in out:
        out["templateRef"] = out.pop("template")
    status = str(out.get("status", "stopped"))
    out["status"] = status[:1].upper() + status[1:]
    mode = str(out.get("launchMode", "service")).replace("-", "")
    out["launchMode"] = "OneShot" if mode.lower() == "oneshot" else "Service"
    policy = str(out.get("workspacePolicy", "persistent"))
    out["workspacePolicy"] = policy[:1].upper() + policy[1:]
    out.setdefault("instanceId", str(uuid.uuid4()))
    now = utc_now()
    out.setdefault("createdAt", out.get("launchedAt") or now)
    out.setdefault("updatedAt", out["createdAt"])
    out["schemaVersion"] = 2
    return out


MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {1: _v1_to_v2}

_decoder = msgspec.json.Decoder()


def decode(raw: bytes, *, where: str = "") -> tuple[InstanceRecord, bool]:
    """Parse a record, migrating older schemas; returns ``(record, migrated)``.

    Raises :class:`SchemaTooNew` for a file from a newer daemon (to be left untouched) and
    :class:`InstanceCorrupted` for anything unreadable.
    """
    try:
        doc = _decoder.decode(raw)
    except msgspec.DecodeError as exc:
        raise InstanceCorrupted(f"{where}: not valid JSON: {exc}", file=where) from exc
    if not isinstance(doc, dict):
        raise InstanceCorrupted(f"{where}: expected a JSON object", file=where)
    version = doc.get("schemaVersion", 1)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise InstanceCorrupted(f"{where}: $.schemaVersion: expected a positive integer", file=where)
    if version > SCHEMA_VERSION:
        raise SchemaTooNew(
            f"{where}: schemaVersion {version} is newer than this daemon's {SCHEMA_VERSION}; left untouched",
            file=where,
            schemaVersion=version,
        )
    migrated = False
    while version < SCHEMA_VERSION:
        doc = MIGRATIONS[version](doc)
        version = doc["schemaVersion"]
        migrated = True
    try:
        record = msgspec.convert(doc, InstanceRecord)
    except msgspec.ValidationError as exc:
        raise InstanceCorrupted(f"{where}: {exc}", file=where) from exc
    return record, migrated


def new_record(
    *,
    name: str,
    template_ref: str,
    launch_mode: str,
    workspace_policy: str,
    work_dir: str | None,
    overrides: Overrides,
) -> InstanceRecord:
    now = utc_now()
    return InstanceRecord(
        instance_id=str(uuid.uuid4()),
        name=name,
        template_ref=template_ref,
        status=Status.CREATED,
        launch_mode=launch_mode,
        workspace_policy=workspace_policy,
        created_at=now,
        updated_at=now,
        work_dir=work_dir,
        overrides=overrides,
    )


def workspace_path(record: InstanceRecord, layout: Layout) -> Path:
    """Where the agent runs: its ``--work-dir`` if it was given one, else ``instances/{name}`` in the home."""
    return Path(record.work_dir) if record.work_dir else layout.instance_dir(record.name)
