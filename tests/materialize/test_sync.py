"""Derived files stay derived, through a real daemon: hot reload of a skill and an MCP server, a removed
skill deleted while a user file survives, invalid and deleted configs reported, ``.git/info/exclude``."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness import Conn, RpcError
from tests.materialize.daemon_fixture import HomeDaemon, fixture_daemon
from tests.materialize.helpers import SECRET


@pytest.fixture
def fd(short_tmp: Path) -> Iterator[HomeDaemon]:
    with fixture_daemon(short_tmp) as d:
        yield d


def _edit(d: HomeDaemon, rel: str, change: dict[str, Any]) -> None:
    path = d.configs / rel
    doc = json.loads(path.read_text())
    doc.update(change)
    path.write_text(json.dumps(doc, indent=2) + "\n")


def _synced(conn: Conn, *agents: str) -> dict[str, Any]:
    """Wait until every agent named has been re-materialized (in any order); returns the last event."""
    waiting = set(agents)
    event: dict[str, Any] = {}
    while waiting:
        event = conn.wait_event(lambda e: e["type"] == "instance" and e.get("agent") in waiting
                                and e.get("event") == "synced")  # fmt: skip
        waiting.discard(event["agent"])
    return event


def _workspace(d: HomeDaemon, name: str) -> Path:
    return Path(d.call("agent.status", {"name": name})["agent"]["workspace"])


def test_skill_and_mcp_edits_rematerialize(fd: HomeDaemon) -> None:
    fd.call("agent.create", {"name": "cc", "template": "kit-claude-code"})
    fd.call("agent.create", {"name": "gm", "template": "kit-gemini"})
    ws_cc, ws_gm = _workspace(fd, "cc"), _workspace(fd, "gm")
    conn = fd.conn()
    conn.call("events.subscribe", {"types": ["instance", "config.*"]})
    _edit(fd, "skills/alpha.json", {"content": "# Alpha\n\nEdited: always run the linter too.\n"})
    _synced(conn, "cc", "gm")
    assert "Edited: always run the linter" in (ws_cc / ".claude/skills/alpha/SKILL.md").read_text()
    assert "Edited: always run the linter" in (ws_gm / ".gemini/skills/alpha/SKILL.md").read_text()
    assert "Edited: always run the linter" in (ws_cc / "AGENTS.md").read_text()
    _edit(fd, "mcp/github.json", {"args": ["stdio", "--read-only"]})
    _synced(conn, "cc", "gm")
    assert json.loads((ws_cc / ".mcp.json").read_text())["mcpServers"]["github"]["args"] == ["stdio", "--read-only"]
    gemini = json.loads((ws_gm / ".gemini/settings.json").read_text())
    assert gemini["mcpServers"]["github"]["args"] == ["stdio", "--read-only"]
    # An invalid edit keeps the last good version: the workspace does not change and the error is reported.
    before = (ws_cc / ".mcp.json").read_bytes()
    (fd.configs / "mcp/github.json").write_text('{"version": "1.0", "name": "github", "command": 42}\n')
    event = conn.wait_event(lambda e: e["type"] == "config.error")
    assert "mcp/github.json" in json.dumps(event)
    assert (ws_cc / ".mcp.json").read_bytes() == before
    # A referenced config deleted: reported on the affected instances, the daemon keeps serving.
    (fd.configs / "mcp/github.json").unlink()
    event = conn.wait_event(lambda e: e["type"] == "config.error" and e.get("agent") in ("cc", "gm"))
    assert "github" in event["message"]
    assert fd.call("agent.status", {"name": "cc"})["agent"]["status"] == "Ready"
    conn.close()
    for rel, data in ((p.relative_to(ws_cc), p.read_bytes()) for p in ws_cc.rglob("*") if p.is_file()):
        assert SECRET.encode() not in data, rel


def test_removed_skill_is_deleted_user_file_survives(fd: HomeDaemon) -> None:
    fd.call("agent.create", {"name": "cc", "template": "kit-claude-code"})
    ws = _workspace(fd, "cc")
    user_file = ws / ".claude/skills/beta/NOTES.md"
    user_file.write_text("mine\n")
    (ws / ".claude/skills/mine").mkdir()
    (ws / ".claude/skills/mine/SKILL.md").write_text("---\nname: mine\ndescription: the user's\n---\n")
    conn = fd.conn()
    conn.call("events.subscribe", {"types": ["instance"]})
    _edit(fd, "templates/kit-claude-code.json", {"skills": ["alpha"]})
    event = _synced(conn, "cc")
    conn.close()
    assert ".claude/skills/beta/SKILL.md" in event["removed"]
    assert not (ws / ".claude/skills/beta/SKILL.md").exists()
    assert user_file.read_text() == "mine\n"  # the folder stays because the user's file is in it
    assert (ws / ".claude/skills/mine/SKILL.md").exists()
    assert (ws / ".claude/skills/alpha/SKILL.md").exists()
    record = json.loads((ws / ".actant.json").read_text())
    assert ".claude/skills/beta/SKILL.md" not in record["materialized"]
    assert "beta" not in json.dumps(record)  # references only: no copy of a config in the record


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


def test_work_dir_in_git_repo_stays_clean(fd: HomeDaemon, short_tmp: Path) -> None:
    repo = short_tmp / "repo"
    sub = repo / "service"
    sub.mkdir(parents=True)
    _git(repo, "init", "-q")
    (sub / "main.py").write_text("print('hi')\n")
    exclude = repo / ".git/info/exclude"
    original = exclude.read_bytes()
    _git(repo, "add", "-A")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    fd.call("agent.create", {"name": "cx", "template": "kit-codex", "workDir": str(sub)})
    assert (sub / ".codex/config.toml").exists()
    assert _git(repo, "status", "--porcelain") == ""
    text = exclude.read_text()
    assert "/service/.codex/config.toml" in text and "/service/.actant.json" in text
    assert exclude.read_bytes().startswith(original)
    fd.call("agent.destroy", {"name": "cx"})
    assert exclude.read_bytes() == original
    assert sorted(p.name for p in sub.iterdir()) == ["main.py"]
    assert _git(repo, "status", "--porcelain") == ""


def test_launch_spec_and_masking(fd: HomeDaemon) -> None:
    fd.call("agent.create", {"name": "gm", "template": "kit-gemini", "overrides": {"env": {"EXTRA": "v1"}}})
    spec = fd.call("agent.launchSpec", {"name": "gm", "mode": "service"})
    ws = str(_workspace(fd, "gm"))
    assert spec["cwd"] == ws
    assert spec["argv"][:2] == ["gemini", "-p"]
    assert spec["env"]["GEMINI_CLI_TRUST_WORKSPACE"] == "true"
    assert spec["env"]["KIT_API_KEY"] != SECRET and sorted(spec["masked"]) == ["EXTRA", "KIT_API_KEY"]
    assert "PATH" not in spec["env"]  # only what Actant adds
    revealed = fd.call("agent.launchSpec", {"name": "gm", "mode": "run", "prompt": "hello there", "reveal": True})
    assert revealed["env"]["KIT_API_KEY"] == SECRET and revealed["masked"] == []
    assert revealed["argv"] == ["gemini", "-p", "hello there", "--output-format", "json"]
    assert fd.call("agent.launchSpec", {"name": "gm", "mode": "open"})["argv"] == ["gemini"]
    with pytest.raises(RpcError):
        fd.call("agent.launchSpec", {"name": "gm", "mode": "sideways"})


def test_global_trust_added_and_removed(fd: HomeDaemon) -> None:
    claude_json = fd.user_home / ".claude.json"
    original = '{\n  "numStartups": 2,\n  "projects": {\n    "/elsewhere": {\n      "allowedTools": []\n    }\n  }\n}\n'
    claude_json.write_text(original)
    conn = fd.conn()
    conn.call("events.subscribe", {"types": ["config.*"]})
    _edit(fd, "templates/kit-claude-code.json", {"trust": "global"})
    conn.wait_event(lambda e: e["type"] == "config.changed")
    conn.close()
    fd.call("agent.create", {"name": "cc", "template": "kit-claude-code"})
    ws = str(_workspace(fd, "cc"))
    entry = json.loads(claude_json.read_text())["projects"][ws]
    assert entry == {"hasTrustDialogAccepted": True, "enabledMcpjsonServers": ["files", "github", "remote"]}
    fd.call("agent.destroy", {"name": "cc"})
    assert claude_json.read_text() == original
