"""Global trust entries on real files in a temp HOME: one entry added, the rest of the file byte-identical,
removal restores the exact bytes, a user's own entry is never claimed, a file that cannot be spliced
verifiably is left alone."""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path

import pytest

from actantd.materialize import trust

WS = "/home/u/.local/state/actant/instances/rev"
CLAUDE = """{
  "numStartups": 12,
  "theme": "dark",
  "projects": {
    "/home/u/src/app": {
      "allowedTools": [],
      "hasTrustDialogAccepted": true,
      "lastCost": 0.25
    }
  },
  "oauthAccount": {"emailAddress": "u@example.com"},
  "tipsHistory": {"memory": 3}
}
"""
CODEX = """model = "gpt-5"
approval_policy = "on-request"   # keep my comment

[projects."/home/u/src/app"]
trust_level = "trusted"

[mcp_servers.docs]
command = "docs-mcp"
"""
GEMINI = '{\n  "/home/u/src/app": "TRUST_FOLDER",\n  "/home/u/tmp": "DO_NOT_TRUST"\n}\n'


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.chmod(path, 0o600)


@pytest.mark.parametrize(
    ("materializer", "rel", "original"),
    [("claude-code", ".claude.json", CLAUDE), ("codex", ".codex/config.toml", CODEX),
     ("gemini", ".gemini/trustedFolders.json", GEMINI)],
)  # fmt: skip
def test_add_then_remove_is_byte_identical(tmp_path: Path, materializer: str, rel: str, original: str) -> None:
    path = tmp_path / rel
    _write(path, original)
    added = trust.add(materializer, WS, home=tmp_path, env={}, mcp_servers=["files", "github"])
    assert added == path
    text = path.read_text()
    if materializer == "codex":
        doc = tomllib.loads(text)
        assert doc["projects"][WS] == {"trust_level": "trusted"}
        assert text.startswith(original)  # appended; nothing before it moved
        assert "# keep my comment" in text
    else:
        doc = json.loads(text)
        before = json.loads(original)
        if materializer == "claude-code":
            assert doc["projects"][WS] == {"hasTrustDialogAccepted": True, "enabledMcpjsonServers": ["files", "github"]}
            del doc["projects"][WS]
        else:
            assert doc[WS] == "TRUST_FOLDER"
            del doc[WS]
        assert doc == before
        assert list(doc) == list(before)  # key order kept
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert trust.add(materializer, WS, home=tmp_path, env={}) is None  # already there: nothing more
    assert trust.remove(materializer, WS, home=tmp_path, env={})
    assert path.read_text() == original
    assert not trust.remove(materializer, WS, home=tmp_path, env={})


def test_users_own_entry_is_not_claimed(tmp_path: Path) -> None:
    _write(tmp_path / ".claude.json", CLAUDE)
    assert trust.add("claude-code", "/home/u/src/app", home=tmp_path, env={}) is None
    assert (tmp_path / ".claude.json").read_text() == CLAUDE


def test_missing_files_are_created(tmp_path: Path) -> None:
    for materializer in ("claude-code", "codex", "gemini"):
        path = trust.add(materializer, WS, home=tmp_path, env={}, mcp_servers=[])
        assert path is not None and path.exists()
        assert os.stat(path).st_mode & 0o777 == 0o600
    assert json.loads((tmp_path / ".claude.json").read_text())["projects"][WS]["hasTrustDialogAccepted"] is True
    assert json.loads((tmp_path / ".gemini/trustedFolders.json").read_text()) == {WS: "TRUST_FOLDER"}
    assert tomllib.loads((tmp_path / ".codex/config.toml").read_text())["projects"][WS]["trust_level"] == "trusted"


def test_config_dir_variables_are_honoured(tmp_path: Path) -> None:
    env = {"CLAUDE_CONFIG_DIR": str(tmp_path / "cc"), "CODEX_HOME": str(tmp_path / "cx")}
    assert trust.add("claude-code", WS, home=tmp_path, env=env) == tmp_path / "cc/.claude.json"
    assert trust.add("codex", WS, home=tmp_path, env=env) == tmp_path / "cx/config.toml"


def test_unparsable_or_unspliceable_files_are_left_alone(tmp_path: Path) -> None:
    broken = '{"projects": {,}\n'
    _write(tmp_path / ".claude.json", broken)
    with pytest.raises(trust.TrustFileError):
        trust.add("claude-code", WS, home=tmp_path, env={})
    assert (tmp_path / ".claude.json").read_text() == broken
    inline = 'projects = { "/a" = { trust_level = "trusted" } }\n'
    _write(tmp_path / ".codex/config.toml", inline)
    with pytest.raises(trust.TrustFileError):
        trust.add("codex", WS, home=tmp_path, env={})
    assert (tmp_path / ".codex/config.toml").read_text() == inline


def test_other_backends_write_nothing(tmp_path: Path) -> None:
    assert trust.add("custom", WS, home=tmp_path, env={}) is None
    assert trust.add("cursor-agent", WS, home=tmp_path, env={}) is None
    assert list(tmp_path.iterdir()) == []


def test_claude_servers_follow_the_template(tmp_path: Path) -> None:
    _write(tmp_path / ".claude.json", CLAUDE)
    trust.add("claude-code", WS, home=tmp_path, env={}, mcp_servers=["files"])
    assert trust.update_claude_servers(WS, ["files", "github"], home=tmp_path, env={})
    assert json.loads((tmp_path / ".claude.json").read_text())["projects"][WS]["enabledMcpjsonServers"] == [
        "files",
        "github",
    ]
    assert not trust.update_claude_servers(WS, ["files", "github"], home=tmp_path, env={})
    assert not trust.update_claude_servers("/not/ours", ["x"], home=tmp_path, env={})
    trust.remove("claude-code", WS, home=tmp_path, env={})
    assert (tmp_path / ".claude.json").read_text() == CLAUDE
