"""Startup recovery: load every record, then settle the instances a previous daemon left mid-flight.

A process that is still the one the record names (same pid *and* create time, and our instance id in its
environment) is re-adopted; anything less is someone else's process and the instance is recorded as
stopped, its leftovers killed, and — if its policy says so — restarted. One bad instance never keeps the
daemon from starting: its failure is journaled and the others proceed.
"""

from __future__ import annotations

import logging

from actantd.acp.attach import speaks_acp
from actantd.errors import ActantError
from actantd.instances.lifecycle import Lifecycle
from actantd.instances.record import InstanceRecord, utc_now
from actantd.instances.state import ACTIVE, LIVE, NEEDS_RECOVERY, Status
from actantd.supervisor import exits, kill, procfs

log = logging.getLogger(__name__)

S = Status


async def initialize(lc: Lifecycle) -> None:
    """Scan, quarantine, migrate, then recover instances whose process the last daemon left behind."""
    result = lc.store.scan()
    for name, reason, dest in result.quarantined:
        log.warning("quarantined instances/%s: %s", name, reason)
        lc.event("instance", name, event="quarantined", reason=reason, path=dest)
    for name, version in result.too_new:
        log.warning("instances/%s: schemaVersion %s is newer than this daemon; left untouched", name, version)
        lc.too_new[name] = version
        lc.event("instance", name, event="schemaTooNew", schemaVersion=version)
    for name in result.migrated:
        lc.event("instance", name, event="migrated")
    lc.records = dict(result.records)
    for record in list(lc.records.values()):
        if record.status is S.INITIALIZING:
            await interrupted_setup(lc, record)
        elif record.status in NEEDS_RECOVERY:
            async with lc.lock(record.name):
                try:
                    await recover(lc, record)
                except Exception as exc:  # one bad instance must never keep the daemon from starting
                    message = exc.message if isinstance(exc, ActantError) else repr(exc)
                    log.error("instances/%s: recovery failed: %s", record.name, message)
                    lc.event("instance", record.name, event="recoveryFailed", reason=message)


async def interrupted_setup(lc: Lifecycle, record: InstanceRecord) -> None:
    """Only a template's setup command leaves an instance Initializing on disk (workspaces.create): the daemon
    died while it ran. Whatever of it still runs (it carries ``ACTANT_INSTANCE_ID``) is ended; the instance
    is Failed, so it can be started anyway or destroyed."""
    try:
        await kill.terminate_tree(None, instance_id=record.instance_id, timeout=2.0)
        await lc.transition(record, S.FAILED, "setup was interrupted by a daemon restart; start the agent anyway, "
                            "or destroy and create it again")  # fmt: skip
    except Exception as exc:  # one bad instance must never keep the daemon from starting
        message = exc.message if isinstance(exc, ActantError) else repr(exc)
        lc.event("instance", record.name, event="recoveryFailed", reason=message)


def is_our_process(record: InstanceRecord) -> bool:
    """The recorded process is still the one this instance ran: same pid *and* create time, and (for a
    process we spawned) our instance id in its environment. Anything less is someone else's process."""
    pid, created = record.pid, record.pid_create_time
    if pid is None or created is None or pid <= 1 or not exits.is_same_process(pid, created):
        return False
    return record.attached or procfs.has_env(pid, f"\0ACTANT_INSTANCE_ID={record.instance_id}\0".encode())


async def recover(lc: Lifecycle, record: InstanceRecord) -> None:
    """Settle one instance found in a state of :data:`NEEDS_RECOVERY`. Caller holds its lock."""
    name = record.name
    proc = lc.process(name)
    alive = is_our_process(record)
    if record.status in LIVE and _speaks_acp(lc, record):
        await _recover_acp(lc, record, alive)  # its stdio died with the last daemon: it needs a new process
        return
    if alive and record.status in LIVE:
        if record.status is S.STARTING:
            record = await lc.transition(record, S.RUNNING, "re-adopted after daemon restart")
        else:
            lc.event("instance", name, event="adopted", pid=record.pid)
        proc.adopt(record)
        return
    if alive and record.status is S.STOPPING:
        proc.adopt(record, supervise=False)
        await proc.terminate(record, "stop resumed after daemon restart", None)
        return
    # The process is gone (or its pid now belongs to someone else): make sure nothing of it lingers.
    await proc.kill_leftovers(record)
    if record.status is S.STOPPING:  # the user was stopping it: it stays stopped
        await lc.transition(record, S.STOPPED, "stopped (finished after daemon restart)", pid=None,
                            pid_create_time=None, stopped_at=utc_now())  # fmt: skip
        return
    if record.status in ACTIVE:
        record = await lc.transition(record, S.STOPPED, "process lost", pid=None, pid_create_time=None,
                                     stopped_at=utc_now())  # fmt: skip
    elif record.status is S.RESTARTING:
        record = await lc.transition(record, S.STOPPED, "daemon restarted during restart backoff")
    else:  # Crashed: a restart that was never scheduled
        record = await lc.transition(record, S.STOPPED, "daemon restarted before the crash was handled")
    template = lc.template(record)
    if template is not None and not record.attached and template.restart.policy != "Never":
        proc.reset_tracker(record)
        proc.schedule_restart(0.0, record.status)


def _speaks_acp(lc: Lifecycle, record: InstanceRecord) -> bool:
    try:
        return speaks_acp(lc.resolve(record.template_ref), record)
    except ActantError:
        return False


async def _recover_acp(lc: Lifecycle, record: InstanceRecord, alive: bool) -> None:
    """An ACP agent cannot be re-adopted: the daemon talks to it on stdio pipes, which belonged to the last
    daemon. Stop what is left of it and start a new process, whose handshake ``session/load``s the session
    saved on the instance (see actantd/acp/session.py). Caller holds the lock."""
    proc = lc.process(record.name)
    if alive:
        proc.adopt(record, supervise=False)
        record = await proc.terminate(record, "ACP agent restarted: its stdio did not survive the daemon", 5.0)
    else:
        await proc.kill_leftovers(record)
        record = await lc.transition(record, S.STOPPED, "process lost", pid=None, pid_create_time=None,
                                     stopped_at=utc_now())  # fmt: skip
    proc.reset_tracker(record)
    await proc.launch(record, "restarted after daemon restart (the ACP session resumes with session/load)")
