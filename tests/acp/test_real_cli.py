"""The real ACP agents answer Actant's ``initialize`` (no model needed): ``gemini --acp`` and the Zed adapters.

Each runs with a throw-away HOME, so no login, settings or trust of the user's is read or written. Only the
handshake is checked: a session or a prompt needs credentials and a model API, which tests never have.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from actantd.acp.connection import Connection
from actantd.acp.session import PROTOCOL_VERSION
from tests.real_cli import real_cli

AGENTS = [
    ("@google/gemini-cli", "gemini", ["--acp"]),
    ("@zed-industries/claude-agent-acp", "claude-agent-acp", []),
    ("@zed-industries/codex-acp", "codex-acp", []),
]


async def _no_request(method: str, params: object) -> object:
    raise AssertionError(f"unexpected request {method}")


@pytest.mark.parametrize(("package", "bin_name", "args"), AGENTS, ids=[a[1] for a in AGENTS])
async def test_real_agent_answers_initialize(tmp_path: Path, package: str, bin_name: str, args: list[str]) -> None:
    binary = real_cli(package, bin_name)
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "OPENAI_", "GEMINI_", "GOOGLE_"))}
    proc = await asyncio.create_subprocess_exec(
        str(binary), *args, cwd=tmp_path, env={**env, "HOME": str(home)}, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    assert proc.stdin is not None and proc.stdout is not None
    conn = Connection(proc.stdout, proc.stdin, on_request=_no_request, on_notification=lambda m, p: None, name=bin_name)
    conn.start()
    try:
        init = await conn.request("initialize", {
            "protocolVersion": PROTOCOL_VERSION,
            "clientCapabilities": {"fs": {"readTextFile": False, "writeTextFile": False}, "terminal": False},
            "clientInfo": {"name": "actantd", "version": "test"},
        }, timeout=90)  # fmt: skip
    finally:
        await conn.close()
        if proc.returncode is None:
            os.killpg(proc.pid, 9)
        await proc.wait()
    assert init["protocolVersion"] == PROTOCOL_VERSION
    assert init["agentCapabilities"]["loadSession"] is True  # so Actant can resume its sessions
    print(f"{bin_name}: {init.get('agentInfo')}")
