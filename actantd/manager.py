"""The façade the daemon and the RPC handlers use: the instance lifecycle plus its operations.

:class:`Manager` is a :class:`~actantd.instances.lifecycle.Lifecycle` (records, locks, transitions, start,
stop, attach, detach, reads) with create / destroy / sync (:mod:`actantd.instances.workspaces`) and startup
recovery (:mod:`actantd.instances.recovery`) attached, so a caller needs one object. It holds no state and
no logic of its own; docs/architecture.md shows where each part lives.
"""

from __future__ import annotations

from typing import Any

from actantd.instances import recovery, workspaces
from actantd.instances.lifecycle import Lifecycle
from actantd.instances.record import InstanceRecord


class Manager(Lifecycle):
    async def initialize(self) -> None:
        """Scan, quarantine, migrate, then recover instances whose process the last daemon left behind."""
        await recovery.initialize(self)

    async def create(
        self, name: str, template: str, work_dir: str | None = None, overrides: dict[str, Any] | None = None
    ) -> InstanceRecord:
        return await workspaces.create(self, name, template, work_dir, overrides)

    async def destroy(self, name: str, force: bool = False) -> bool:
        return await workspaces.destroy(self, name, force)

    async def sync(self, name: str) -> InstanceRecord:
        """Re-materialize the workspace from the current configs (also run on hot reload)."""
        return await workspaces.sync(self, name)
