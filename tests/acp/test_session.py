"""The ACP client (actantd/acp) against the fake ACP agent (tests/fakes/fake_acp.py) on real pipes."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from actantd.acp import permissions
from actantd.acp.session import AcpSession, mcp_servers_for_acp
from actantd.config.schema import McpServer, PermissionRules
from actantd.errors import AgentBusy, InvalidParams

FAKE = Path(__file__).resolve().parent.parent / "fakes" / "fake_acp.py"


class Harness:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.listeners = 0
        self.on_event: Callable[[str, dict[str, Any]], None] | None = None
        self.procs: list[asyncio.subprocess.Process] = []

    def publish(self, type_: str, data: dict[str, Any], journal: bool) -> int:
        self.events.append((type_, data))
        if self.on_event is not None:
            self.on_event(type_, data)
        return self.listeners

    async def session(self, policy: Any = "Standard", saved: str | None = None, **env: str) -> AcpSession:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(FAKE), cwd=self.tmp, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            env={**os.environ, "FAKE_AGENT_STATE": str(self.tmp / "state"), **env},
        )  # fmt: skip
        self.procs.append(proc)
        assert proc.stdout is not None and proc.stdin is not None
        servers = [McpServer(version="1.0", name="fs", command="npx", args=("-y", "srv"), env={"A": "1"}),
                   McpServer(version="1.0", name="remote", type="http", url="https://example.com/mcp")]  # fmt: skip
        session = AcpSession("a", cwd=str(self.tmp), mcp_servers=servers, policy=policy, publish=self.publish)
        session.connect(proc.stdout, proc.stdin)
        await session.start(saved)
        return session

    async def close(self) -> None:
        for proc in self.procs:
            if proc.stdin is not None:
                proc.stdin.close()
            try:
                await asyncio.wait_for(proc.wait(), 5)
            except TimeoutError:
                proc.kill()
                await proc.wait()


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[Harness]:
    harness = Harness(tmp_path)
    try:
        yield harness
    finally:
        await harness.close()


async def test_prompt_streams_updates_and_returns_stop_reason_and_usage(h: Harness) -> None:
    session = await h.session()
    assert session.agent_info["name"] == "fake-acp" and session.resumed is False
    stored = json.loads((h.tmp / "state" / f"{session.session_id}.json").read_text())
    assert stored["mcpServers"] == ["fs", "remote"] and stored["cwd"] == str(h.tmp)
    seen: list[dict[str, Any]] = []
    result = await session.prompt("hello", on_update=seen.append)
    assert result["stopReason"] == "end_turn" and result["usage"]["totalTokens"] == 110
    assert result["text"].startswith("turn 1 of session") and "'hello'" in result["text"]
    kinds = [u["sessionUpdate"] for u in seen]
    assert kinds == ["agent_thought_chunk", "agent_message_chunk"]
    assert [t for t, _ in h.events].count("session.update") == 2  # subscribers see them too
    await session.close()


@pytest.mark.parametrize(("policy", "expect"), [("Permissive", "allowed"), ("ReadOnly", "denied"),
                                                (PermissionRules(allow=("Edit",)), "allowed"),
                                                (PermissionRules(deny=("Edit(notes.*)",)), "denied")])  # fmt: skip
async def test_permission_answered_by_policy(h: Harness, policy: Any, expect: str) -> None:
    session = await h.session(policy)
    result = await session.prompt("please edit the notes")
    assert f"(permission: {expect})" in result["text"]
    resolved = [d for t, d in h.events if t == "permission.resolved"]
    assert resolved[-1]["by"] == "policy" and resolved[-1]["allowed"] is (expect == "allowed")
    assert (h.tmp / "notes.txt").exists() is (expect == "allowed")
    await session.close()


async def test_permission_forwarded_to_a_subscribed_client(h: Harness) -> None:
    session = await h.session("Standard")
    h.listeners = 1
    loop = asyncio.get_running_loop()

    def answer(type_: str, data: dict[str, Any]) -> None:
        if type_ == "permission.requested":
            assert data["toolCall"]["kind"] == "edit" and data["options"][0]["optionId"] == "allow-once"
            loop.call_soon(lambda: session.respond(data["permission"], option_id="allow-once"))

    h.on_event = answer
    result = await session.prompt("edit it")
    assert "(permission: allowed)" in result["text"]
    assert [d["by"] for t, d in h.events if t == "permission.resolved"] == ["client"]
    with pytest.raises(InvalidParams, match="no pending permission"):
        session.respond("perm-999", allow=True)
    await session.close()


async def test_permission_denied_when_nobody_listens_or_nobody_answers(h: Harness) -> None:
    session = await h.session("Standard")
    result = await session.prompt("edit one")
    assert "(permission: denied)" in result["text"]
    h.listeners = 1  # someone listens but never answers: the timeout denies
    result = await session.prompt("edit two", permission_timeout=0.2)
    assert "(permission: denied)" in result["text"]
    assert [d["by"] for t, d in h.events if t == "permission.resolved"] == ["nobody", "timeout"]
    await session.close()


async def test_the_prompt_caller_may_answer(h: Harness) -> None:
    session = await h.session("Standard")
    loop = asyncio.get_running_loop()

    def offer(request: dict[str, Any]) -> bool:
        loop.call_soon(lambda: session.respond(request["permission"], allow=False))
        return True

    result = await session.prompt("edit three", on_permission=offer)
    assert "(permission: denied)" in result["text"]
    await session.close()


async def test_session_load_resumes_in_a_new_process(h: Harness) -> None:
    first = await h.session()
    await first.prompt("remember me")
    saved = first.session_id
    await first.close()
    second = await h.session(saved=saved)
    assert second.resumed is True and second.session_id == saved
    replayed = [d["update"]["sessionUpdate"] for t, d in h.events if t == "session.update"][-2:]
    assert replayed == ["user_message_chunk", "agent_message_chunk"]
    result = await second.prompt("still there?")
    assert result["text"].startswith(f"turn 2 of session {saved}")
    await second.close()
    third = await h.session(saved=saved, FAKE_ACP_NO_LOAD="1")  # an agent without loadSession: a new session
    assert third.resumed is False and third.session_id != saved
    await third.close()
    fourth = await h.session(saved="unknown-id")  # an id the agent does not know: a new session as well
    assert fourth.resumed is False
    await fourth.close()


async def test_prompts_never_overlap_and_a_dead_agent_fails_them(h: Harness) -> None:
    session = await h.session(FAKE_SLEEP="2")
    first = asyncio.ensure_future(session.prompt("slow"))
    await asyncio.sleep(0.1)
    with pytest.raises(AgentBusy):
        await session.prompt("fast")
    assert await session.cancel() is True
    assert (await first)["stopReason"] == "cancelled"
    h.procs[-1].kill()
    await h.procs[-1].wait()
    await asyncio.wait_for(asyncio.shield(session.conn.closed), 5)  # type: ignore[union-attr]
    with pytest.raises(Exception, match="closed"):
        await session.prompt("anyone?")


def test_policy_table_and_option_choice() -> None:
    opts = [{"optionId": "y", "kind": "allow_always"}, {"optionId": "n", "kind": "reject_once"}]
    assert permissions.choose(opts, True) == {"outcome": "selected", "optionId": "y"}
    assert permissions.choose(opts, False) == {"outcome": "selected", "optionId": "n"}
    assert permissions.choose(opts[:1], False) == {"outcome": "cancelled"}
    assert permissions.decide("Standard", {"kind": "read"}) == "allow"
    assert permissions.decide("Standard", {"kind": "execute"}) == "ask"
    assert permissions.decide("Restricted", {"kind": "execute"}) == "deny"
    rules = PermissionRules(allow=("Bash(git diff:*)",), deny=("Bash(rm:*)",))
    assert permissions.decide(rules, {"kind": "execute", "title": "git diff HEAD"}) == "allow"
    assert permissions.decide(rules, {"kind": "execute", "title": "rm -rf /"}) == "deny"
    assert permissions.decide(rules, {"kind": "execute", "title": "make"}) == "ask"


def test_mcp_servers_in_acp_shapes() -> None:
    stdio = McpServer(version="1.0", name="fs", command="srv", args=("a",), env={"K": "V"})
    http = McpServer(version="1.0", name="gh", type="http", url="https://x/mcp", headers={"H": "1"})
    assert mcp_servers_for_acp([stdio, http], {"http": False}) == [
        {"name": "fs", "command": "srv", "args": ["a"], "env": [{"name": "K", "value": "V"}]}
    ]
    assert mcp_servers_for_acp([http], {"http": True}) == [
        {"type": "http", "name": "gh", "url": "https://x/mcp", "headers": [{"name": "H", "value": "1"}]}
    ]
