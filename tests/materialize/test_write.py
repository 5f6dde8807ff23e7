"""Writing a plan: only changed files, never a file Actant does not own, never outside the workspace; the
``.git/info/exclude`` block of a linked worktree; what a backend cannot express is a validation warning."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from actantd import materialize
from actantd.config.store import load_registry
from actantd.materialize import gitexclude
from tests.materialize.helpers import fixture_configs


def test_only_owned_files_are_replaced_or_removed(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    first = materialize.write(ws, {"AGENTS.md": "a\n", "x/SKILL.md": "s\n"})
    assert first.written == ["AGENTS.md", "x/SKILL.md"]
    (ws / "USER.md").write_text("mine\n")
    again = materialize.write(ws, {"AGENTS.md": "b\n", "USER.md": "planned\n"}, first.files)
    assert again.written == ["AGENTS.md"] and again.removed == ["x/SKILL.md"] and again.skipped == ["USER.md"]
    assert (ws / "USER.md").read_text() == "mine\n"  # not Actant's: left alone and reported
    assert not (ws / "x").exists()  # the folder Actant created is gone with its file
    assert again.files == ["AGENTS.md"]


def test_never_writes_through_a_symlink_out_of_the_workspace(tmp_path: Path) -> None:
    ws, outside = tmp_path / "ws", tmp_path / "outside"
    ws.mkdir()
    outside.mkdir()
    (ws / ".claude").symlink_to(outside)
    result = materialize.write(ws, {".claude/settings.local.json": "{}\n"}, [".claude/settings.local.json"])
    assert result.skipped == [".claude/settings.local.json"]
    assert list(outside.iterdir()) == []


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], check=True, capture_output=True, text=True).stdout


def test_exclude_block_in_a_linked_worktree(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git("-C", str(repo), "init", "-q")
    _git("-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "i")
    linked = tmp_path / "linked"
    _git("-C", str(repo), "worktree", "add", "-q", str(linked))
    exclude = gitexclude.update(linked, "rev", ["AGENTS.md", ".mcp.json"])
    assert exclude == repo / ".git/info/exclude"
    (linked / "AGENTS.md").write_text("x\n")
    (linked / ".mcp.json").write_text("{}\n")
    assert _git("-C", str(linked), "status", "--porcelain") == ""
    gitexclude.update(linked, "rev", ["AGENTS.md"])  # the block is rewritten whole
    assert exclude.read_text().count("# >>> actant rev") == 1 and "/.mcp.json" not in exclude.read_text()
    gitexclude.remove(linked, "rev")
    assert "actant" not in exclude.read_text()


def test_backend_limits_are_validation_warnings(tmp_path: Path) -> None:
    configs = fixture_configs(tmp_path / "configs")
    github = configs / "mcp/github.json"
    doc = json.loads(github.read_text())
    doc["env"]["TOKEN"] = "${GITHUB_TOKEN}"  # Codex forwards a variable only under its own name
    github.write_text(json.dumps(doc))
    result = load_registry(configs)
    assert not result.errors
    texts = [str(w) for w in result.warnings]
    codex = [t for t in texts if t.startswith("templates/kit-codex.json")]
    assert any("$.permissions" in t and "template 'kit-codex', backend 'codex'" in t and "Bash(git push:*)" in t
               for t in codex), codex  # fmt: skip
    assert any("env TOKEN='${GITHUB_TOKEN}' cannot be expressed for Codex" in t for t in codex), codex
    assert any('"trust": "global"' in t for t in codex), codex
    cursor = [t for t in texts if t.startswith("templates/kit-cursor-agent.json")]
    assert any("no 'ask' rules" in t for t in cursor), cursor
    assert not [t for t in texts if t.startswith("templates/kit-claude-code.json")]  # Claude expresses all
