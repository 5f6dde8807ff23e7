"""The façade the daemon and the RPC handlers use: the instance lifecycle plus its operations.

:class:`Manager` is a :class:`~actantd.instances.lifecycle.Lifecycle` (records, locks, transitions, start,
stop, attach, detach, reads) with create / destroy / sync (:mod:`actantd.instances.workspaces`) and startup
recovery (:mod:`actantd.instances.recovery`) attached, so a caller needs one object. It holds no state and
no logic of its own; docs/architecture.md shows where each part lives.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from actantd.instances import recovery, talk, workspaces
from actantd.instances.lifecycle import Lifecycle
from actantd.instances.record import InstanceRecord
from actantd.launch import LaunchMode, LaunchSpec

if TYPE_CHECKING:  # ACP sessions and one-shot runs load when first used, not at daemon start (RSS)
    from actantd.acp.session import AcpSession, OnPermission, OnUpdate
    from actantd.runs.executor import OnLine
    from actantd.runs.service import RunService


class Manager(Lifecycle):
    async def initialize(self) -> None:
        """Scan, quarantine, migrate, then recover instances whose process the last daemon left behind."""
        await recovery.initialize(self)

    async def create(
        self,
        name: str,
        template: str,
        work_dir: str | None = None,
        overrides: dict[str, Any] | None = None,
        repo: str | None = None,
        branch: str | None = None,
        base: str | None = None,
        warnings: list[str] | None = None,
    ) -> InstanceRecord:
        return await workspaces.create(self, name, template, work_dir, overrides, repo, branch, base, warnings)

    async def destroy(self, name: str, force: bool = False) -> bool:
        self.runs.refuse_if_busy(name)  # a run works in the workspace: it would lose it mid-run
        return await workspaces.destroy(self, name, force)

    async def sync(self, name: str) -> InstanceRecord:
        """Re-materialize the workspace from the current configs (also run on hot reload)."""
        return await workspaces.sync(self, name)

    # -- git worktree workspaces (blocking reads: the RPC layer runs them in a worker thread) ---------------

    def worktree_status(self, record: InstanceRecord) -> dict[str, Any] | None:
        return workspaces.worktree_status(self, record)

    def diff(self, name: str, stat: bool = False) -> dict[str, Any]:
        return workspaces.diff(self, name, stat)

    async def process_ended(self, name: str) -> None:
        if self.runs.busy(name):
            return  # a run works in the workspace; its end applies the policy (talk.run_once)
        with self.runs.hold(name, "removing its ephemeral workspace"):
            await workspaces.end_ephemeral(self, name)

    # -- giving an agent work (actantd/instances/talk.py) ---------------------------------------------

    @functools.cached_property
    def runs(self) -> RunService:
        """The one-shot runs in progress (one per instance at most)."""
        from actantd.runs.service import RunService

        return RunService(record_execution=lambda name, fields: self.event("execution", name, **fields))

    async def run_once(
        self, name: str, prompt: str, timeout: float | None, *, continue_session: bool = False,
        on_line: OnLine | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        return await talk.run_once(self, self.runs, name, prompt, timeout, continue_session=continue_session,
                                   on_line=on_line)  # fmt: skip

    def launch_spec(self, name: str, mode: LaunchMode, prompt: str | None = None) -> tuple[LaunchSpec, list[str]]:
        return talk.launch_spec(self, name, mode, prompt)

    async def prompt(
        self, name: str, text: str, *, timeout: float | None = None, permission_timeout: float | None = None,
        on_update: OnUpdate | None = None, on_permission: OnPermission | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        return await talk.prompt(self, name, text, timeout=timeout, permission_timeout=permission_timeout,
                                 on_update=on_update, on_permission=on_permission)  # fmt: skip

    def acp_session(self, name: str) -> AcpSession:
        return talk.acp_session(self, name)

    def acp_status(self, name: str) -> dict[str, Any] | None:
        return talk.acp_status(self, name)
