"""Wiring an agent process to its ACP session (:mod:`actantd.acp.session`), for
:class:`~actantd.supervisor.process.AgentProcess`.

A backend with ``"protocol": "acp"`` speaks the Agent Client Protocol on the service process's stdio: the
process is spawned with pipes (:func:`speaks_acp` says when), :func:`open_session` turns them into an
:class:`AcpSession`, and :func:`handshake` (run in the background) opens or loads the session and saves its
id on the record through the owner, the instance lifecycle, which stays the one way to change state.
"""

from __future__ import annotations

import asyncio
import os
from subprocess import Popen
from typing import TYPE_CHECKING, Any, Protocol

from actantd.config.registry import Resolved
from actantd.errors import ActantError
from actantd.instances.record import InstanceRecord, workspace_path
from actantd.paths import Layout

if TYPE_CHECKING:  # the session code loads with the first ACP agent: most daemons never run one (RSS)
    from actantd.acp.session import AcpSession


class SessionOwner(Protocol):
    """What the session wiring needs of the instance lifecycle (a part of the process's ``Owner``)."""

    layout: Layout

    def lock(self, name: str) -> asyncio.Lock: ...

    def event(self, type_: str, agent: str | None, **data: Any) -> None: ...

    def emit(self, type_: str, agent: str | None, data: dict[str, Any], *, journal: bool) -> int: ...

    async def update(self, name: str, instance_id: str, **changes: Any) -> InstanceRecord | None: ...


def speaks_acp(resolved: Resolved, record: InstanceRecord) -> bool:
    """The instance's service process is an ACP agent the daemon talks to on its stdio."""
    return resolved.backend is not None and resolved.backend.protocol == "acp" and not record.attached


async def open_session(
    owner: SessionOwner, name: str, record: InstanceRecord, resolved: Resolved, popen: Popen[bytes]
) -> AcpSession:
    """Talk ACP on the new process's stdio: the pipes become the session's connection. The caller runs
    :func:`handshake` in the background."""
    from actantd.acp.connection import open_pipes
    from actantd.acp.session import AcpSession

    assert popen.stdin is not None and popen.stdout is not None
    stdin_fd, stdout_fd = os.dup(popen.stdin.fileno()), os.dup(popen.stdout.fileno())
    popen.stdin.close()
    popen.stdout.close()
    reader, writer = await open_pipes(stdin_fd, stdout_fd)

    def publish(type_: str, data: dict[str, Any], journal: bool) -> int:
        return owner.emit(type_, name, data, journal=journal)

    session = AcpSession(name, cwd=str(workspace_path(record, owner.layout)), mcp_servers=resolved.mcp_servers,
                         policy=resolved.template.permissions, publish=publish)  # fmt: skip
    session.connect(reader, writer)
    return session


async def handshake(owner: SessionOwner, name: str, session: AcpSession, instance_id: str, saved: str | None) -> None:
    """``initialize``, then ``session/load`` of ``saved`` or ``session/new``; the session id is saved on the
    record and announced (``sessionReady``), or the failure announced (``handshakeFailed``)."""
    try:
        session_id = await session.start(saved)
    except ActantError as exc:
        owner.event("acp", name, event="handshakeFailed", reason=exc.message)
        return
    async with owner.lock(name):
        await owner.update(name, instance_id, acp_session_id=session_id)
    loads = bool(session.capabilities.get("loadSession"))
    owner.event("acp", name, event="sessionReady", sessionId=session_id, resumed=session.resumed,
                agentInfo=session.agent_info, loadSession=loads)  # fmt: skip


def close_session(session: AcpSession | None) -> None:
    """Drop a session (the process is gone or being replaced): pending requests fail, the pipes close."""
    if session is not None:
        session.abort()
