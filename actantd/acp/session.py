"""One live ACP session with one agent process: the handshake, prompts, updates and permission requests.

Lifecycle (what the daemon does for an instance whose backend says ``"protocol": "acp"``):

1. the service argv is started with its stdin and stdout as pipes to the daemon (stderr goes to the log);
2. ``initialize`` (protocol version 1, no fs/terminal capabilities: the agent uses its own tools), then
   ``session/load`` with the instance's saved ``acpSessionId`` when there is one and the agent advertises
   ``loadSession``, else ``session/new`` with the workspace as ``cwd`` and the template's MCP servers;
3. ``agent.prompt`` sends ``session/prompt``; every ``session/update`` for the session goes to the caller and
   to event subscribers while it runs; the result is the stop reason, the usage (ACP's unstable
   ``usage`` field and ``usage_update`` notifications, when the agent sends them) and the agent's text.

Why a restart of the *agent*, not a re-adoption, after a daemon restart: the agent's stdio pipes belong to
the daemon process that started it; a new daemon cannot reopen them, so a re-adopted ACP agent could never
be talked to again. The daemon therefore stops such a process and starts a fresh one, which resumes the
conversation through ``session/load`` with the id saved on the instance (agents without ``loadSession`` get a
new session, and ``resumed`` says so).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from actantd import __version__
from actantd.acp import permissions
from actantd.acp.connection import Connection, HandlerError, RemoteError
from actantd.config.schema import McpServer, PermissionRules
from actantd.errors import AcpError, AgentBusy, InvalidParams

PROTOCOL_VERSION: Final = 1
HANDSHAKE_TIMEOUT: Final = 60.0
DEFAULT_PERMISSION_TIMEOUT: Final = 60.0
MAX_TEXT: Final = 1024 * 1024
"""The agent's reply text kept for the ``agent.prompt`` result; updates beyond it are still streamed."""

Publish = Callable[[str, dict[str, Any], bool], int]
"""``publish(type, data, journal)``: an event about this agent; returns how many subscribers received it."""
OnUpdate = Callable[[dict[str, Any]], None]
OnPermission = Callable[[dict[str, Any]], bool]
"""Offer a permission request to the prompt's caller; True if it was delivered (the caller may answer)."""

_ids = itertools.count(1)


def mcp_servers_for_acp(servers: Sequence[McpServer], capabilities: dict[str, Any]) -> list[dict[str, Any]]:
    """The template's MCP servers in ACP's ``McpServer`` shapes; remote ones only where the agent takes them."""
    out: list[dict[str, Any]] = []
    for server in servers:
        if server.is_remote:
            kind = server.type or "http"
            if not capabilities.get(kind):
                continue
            out.append({"type": kind, "name": server.name, "url": server.url,
                        "headers": [{"name": k, "value": v} for k, v in server.headers.items()]})  # fmt: skip
        else:
            out.append({"name": server.name, "command": server.command, "args": list(server.args),
                        "env": [{"name": k, "value": v} for k, v in server.env.items()]})  # fmt: skip
    return out


@dataclass
class PendingPermission:
    id: str
    session_id: str
    tool_call: dict[str, Any]
    options: list[dict[str, Any]]
    answer: asyncio.Future[dict[str, Any]]


@dataclass
class _Turn:
    on_update: OnUpdate | None
    on_permission: OnPermission | None
    permission_timeout: float
    text: list[str] = field(default_factory=list)
    text_len: int = 0
    updates: int = 0
    cost: dict[str, Any] | None = None
    context: dict[str, Any] | None = None


class AcpSession:
    """The daemon's side of one ACP connection (see the module docstring)."""

    def __init__(
        self,
        agent: str,
        *,
        cwd: str,
        mcp_servers: Sequence[McpServer],
        policy: str | PermissionRules,
        publish: Publish,
    ) -> None:
        self.agent = agent
        self.cwd = cwd
        self.mcp_servers = tuple(mcp_servers)
        self.policy = policy
        self._publish = publish
        self.conn: Connection | None = None
        self.session_id: str | None = None
        self.resumed = False
        self.agent_info: dict[str, Any] = {}
        self.capabilities: dict[str, Any] = {}
        self.ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        """The session id once the handshake is done; an exception when it failed."""
        self.pending: dict[str, PendingPermission] = {}
        self._turn: _Turn | None = None

    # -- connection -----------------------------------------------------------------------------------

    def connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Connection:
        self.conn = Connection(reader, writer, on_request=self._on_request, on_notification=self._on_notification,
                               name=self.agent)  # fmt: skip
        self.conn.start()
        self.conn.closed.add_done_callback(self._on_closed)
        return self.conn

    def _on_closed(self, fut: asyncio.Future[str]) -> None:
        reason = fut.result()
        if not self.ready.done():
            self.ready.set_exception(AcpError(f"agent {self.agent!r}: {reason} before the session started"))
            self.ready.exception()  # retrieved: nobody may be waiting
        for pending in self.pending.values():
            if not pending.answer.done():
                pending.answer.set_result({"outcome": "cancelled"})

    @property
    def alive(self) -> bool:
        return self.conn is not None and not self.conn.closed.done()

    async def close(self) -> None:
        if self.conn is not None:
            await self.conn.close()

    def abort(self) -> None:
        """Close without waiting (the process is being replaced or the daemon is closing)."""
        if self.conn is not None:
            self.conn.abort()

    # -- handshake ------------------------------------------------------------------------------------

    async def start(self, saved_session_id: str | None) -> str:
        """initialize, then session/load (when possible) or session/new; resolves :attr:`ready`."""
        try:
            session_id = await self._handshake(saved_session_id)
        except BaseException as exc:
            if not self.ready.done():
                error = exc if isinstance(exc, AcpError) else AcpError(f"agent {self.agent!r}: handshake failed: {exc}")
                self.ready.set_exception(error)
                self.ready.exception()
            raise
        if not self.ready.done():
            self.ready.set_result(session_id)
        return session_id

    async def _handshake(self, saved: str | None) -> str:
        assert self.conn is not None
        init = await self.conn.request("initialize", {
            "protocolVersion": PROTOCOL_VERSION,
            "clientCapabilities": {"fs": {"readTextFile": False, "writeTextFile": False}, "terminal": False},
            "clientInfo": {"name": "actantd", "title": "Actant", "version": __version__},
        }, timeout=HANDSHAKE_TIMEOUT)  # fmt: skip
        if not isinstance(init, dict):
            raise AcpError(f"agent {self.agent!r} answered initialize with {init!r}")
        self.agent_info = init.get("agentInfo") or {}
        self.capabilities = init.get("agentCapabilities") or {}
        if init.get("protocolVersion") != PROTOCOL_VERSION:
            raise AcpError(f"agent {self.agent!r} speaks ACP version {init.get('protocolVersion')!r}, not 1")
        servers = mcp_servers_for_acp(self.mcp_servers, self.capabilities.get("mcpCapabilities") or {})
        if saved and self.capabilities.get("loadSession"):
            try:
                # Replayed history arrives as updates before the answer; nobody is prompting, so they are
                # published only (an editor attached to events sees the conversation so far).
                await self.conn.request("session/load", {"sessionId": saved, "cwd": self.cwd, "mcpServers": servers},
                                        timeout=HANDSHAKE_TIMEOUT)  # fmt: skip
                self.session_id, self.resumed = saved, True
                return saved
            except RemoteError:
                pass  # unknown to this agent (its store was wiped): a new session, and `resumed` says so
        created = await self.conn.request("session/new", {"cwd": self.cwd, "mcpServers": servers},
                                          timeout=HANDSHAKE_TIMEOUT)  # fmt: skip
        session_id = created.get("sessionId") if isinstance(created, dict) else None
        if not isinstance(session_id, str) or not session_id:
            raise AcpError(f"agent {self.agent!r} answered session/new without a sessionId")
        self.session_id, self.resumed = session_id, False
        return session_id

    # -- prompts --------------------------------------------------------------------------------------

    async def prompt(
        self,
        text: str,
        *,
        on_update: OnUpdate | None = None,
        on_permission: OnPermission | None = None,
        permission_timeout: float = DEFAULT_PERMISSION_TIMEOUT,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        if self._turn is not None:
            raise AgentBusy(f"agent {self.agent!r} is already answering a prompt; prompts never overlap",
                            agent=self.agent)  # fmt: skip
        turn = _Turn(on_update, on_permission, permission_timeout)
        self._turn = turn
        try:
            session_id = await asyncio.wait_for(asyncio.shield(self.ready), HANDSHAKE_TIMEOUT)
            assert self.conn is not None
            started = time.monotonic()
            request = self.conn.request(
                "session/prompt", {"sessionId": session_id, "prompt": [{"type": "text", "text": text}]}
            )
            try:
                answer = await asyncio.wait_for(request, timeout)
            except TimeoutError:
                await self.conn.notify("session/cancel", {"sessionId": session_id})
                raise AcpError(f"agent {self.agent!r} did not finish the prompt within {timeout:g}s (cancelled)",
                               agent=self.agent) from None  # fmt: skip
            except asyncio.CancelledError:
                if self.alive:  # the caller went away: the turn is cancelled, as an editor would
                    await self.conn.notify("session/cancel", {"sessionId": session_id})
                raise
        finally:
            self._turn = None
        answer = answer if isinstance(answer, dict) else {}
        return {
            "sessionId": session_id,
            "stopReason": answer.get("stopReason"),
            "usage": answer.get("usage") or turn.context,
            "cost": turn.cost,
            "text": "".join(turn.text),
            "updates": turn.updates,
            "durationMs": round((time.monotonic() - started) * 1000, 1),
        }

    async def cancel(self) -> bool:
        if self._turn is None or self.session_id is None or self.conn is None:
            return False
        await self.conn.notify("session/cancel", {"sessionId": self.session_id})
        return True

    # -- what the agent sends -------------------------------------------------------------------------

    def _on_notification(self, method: str, params: Any) -> None:
        if method != "session/update" or not isinstance(params, dict):
            return
        update = params.get("update")
        if not isinstance(update, dict):
            return
        turn = self._turn
        if turn is not None:
            turn.updates += 1
            kind = update.get("sessionUpdate")
            content = update.get("content")
            if kind == "agent_message_chunk" and isinstance(content, dict) and content.get("type") == "text":
                piece = str(content.get("text", ""))
                if turn.text_len < MAX_TEXT:
                    turn.text.append(piece[: MAX_TEXT - turn.text_len])
                    turn.text_len += len(piece)
            elif kind == "usage_update":
                turn.context = {k: update.get(k) for k in ("used", "size") if k in update} or turn.context
                if isinstance(update.get("cost"), dict):
                    turn.cost = update["cost"]
            if turn.on_update is not None:
                turn.on_update(update)
        self._publish("session.update", {"sessionId": params.get("sessionId"), "update": update}, False)

    async def _on_request(self, method: str, params: Any) -> Any:
        if method == "session/request_permission" and isinstance(params, dict):
            return {"outcome": await self._permission(params)}
        raise HandlerError(-32601, f"Method not found: {method} (the client offered no such capability)")

    async def _permission(self, params: dict[str, Any]) -> dict[str, Any]:
        raw_call = params.get("toolCall")
        tool_call: dict[str, Any] = raw_call if isinstance(raw_call, dict) else {}
        options = [o for o in params.get("options") or [] if isinstance(o, dict)]
        summary = {"toolCall": {k: tool_call.get(k) for k in ("toolCallId", "title", "kind") if k in tool_call},
                   "options": options}  # fmt: skip
        decision = permissions.decide(self.policy, tool_call)
        if decision != "ask":
            outcome = permissions.choose(options, decision == "allow")
            self._resolved(None, summary, outcome, options, by="policy")
            return outcome
        pid = f"perm-{next(_ids)}"
        turn = self._turn
        timeout = turn.permission_timeout if turn is not None else DEFAULT_PERMISSION_TIMEOUT
        pending = PendingPermission(pid, str(params.get("sessionId")), tool_call, options,
                                    asyncio.get_running_loop().create_future())  # fmt: skip
        self.pending[pid] = pending
        try:
            request = {"permission": pid, **summary, "timeoutSeconds": timeout}
            delivered = self._publish("permission.requested", request, True)
            if turn is not None and turn.on_permission is not None and turn.on_permission(request):
                delivered += 1
            if delivered == 0:
                outcome, by = permissions.choose(options, False), "nobody"
            else:
                try:
                    outcome, by = await asyncio.wait_for(asyncio.shield(pending.answer), timeout), "client"
                except TimeoutError:
                    outcome, by = permissions.choose(options, False), "timeout"
        finally:
            self.pending.pop(pid, None)
        self._resolved(pid, summary, outcome, options, by=by)
        return outcome

    def _resolved(
        self, pid: str | None, summary: dict[str, Any], outcome: dict[str, Any], options: list[dict[str, Any]], by: str
    ) -> None:
        data = {"permission": pid, "toolCall": summary["toolCall"], "outcome": outcome,
                "allowed": permissions.allowed(options, outcome), "by": by}  # fmt: skip
        self._publish("permission.resolved", data, True)
        turn = self._turn
        if turn is not None and turn.on_update is not None:
            turn.on_update({"sessionUpdate": "permission_resolved", **data})

    def respond(self, permission_id: str, *, option_id: str | None = None, allow: bool | None = None) -> dict[str, Any]:
        """A client's answer to a pending request: an ``optionId`` it was offered, or plain allow / deny."""
        pending = self.pending.get(permission_id)
        if pending is None or pending.answer.done():
            raise InvalidParams(f"no pending permission request {permission_id!r} for agent {self.agent!r} "
                                "(answered already, timed out, or never asked)", permission=permission_id)  # fmt: skip
        if option_id is not None:
            outcome = permissions.outcome_for_option(pending.options, option_id)
            if outcome is None:
                offered = [o.get("optionId") for o in pending.options]
                raise InvalidParams(f"option {option_id!r} was not offered (offered: {offered})", options=offered)
        elif allow is not None:
            outcome = permissions.choose(pending.options, allow)
        else:
            raise InvalidParams("give optionId or allow")
        pending.answer.set_result(outcome)
        return {"permission": permission_id, "outcome": outcome,
                "allowed": permissions.allowed(pending.options, outcome)}  # fmt: skip
