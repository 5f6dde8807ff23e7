"""The real ``claude``, ``codex`` and ``gemini`` (npm registry), started exactly the way ``agent env`` prints
(its argv, cwd and env), list what Actant wrote: MCP servers, skills, instructions.

No model is reachable, so only commands that need none are used: ``mcp list``, ``skills list``,
``codex debug prompt-input`` (the model-visible prompt), and the service argv pointed at a loopback endpoint
(``capture.py``) that records what the CLI would send and answers 400: the instructions from ``AGENTS.md`` in
the request, and Claude's ``init`` event listing skills and MCP servers. ``gemini -p "/memory show"`` is
not used: in headless mode the command goes to the model, so it cannot work without one (checked with
0.61.0). Every CLI runs with a fake ``HOME``; skipped with the reason when npm or the registry is
unreachable.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.materialize.capture import capture_server
from tests.materialize.daemon_fixture import HomeDaemon, fixture_daemon
from tests.materialize.pty_run import screen
from tests.real_cli import real_cli

PROMPT_MARK = "Review the change in this workspace."
SECRETS = {"GITHUB_TOKEN": "ghp_test", "REMOTE_TOKEN": "tok_test", "REMOTE_TEAM": "team_test"}


@pytest.fixture
def cli_daemon(short_tmp: Path) -> Iterator[HomeDaemon]:
    """The fixture configs, with the ``files`` server made instant (``true``) and global trust on."""
    from tests.materialize.helpers import fixture_configs

    configs = fixture_configs(short_tmp / "configs")
    files = configs / "mcp/files.json"
    doc = json.loads(files.read_text())
    doc.update(command="true", args=[])
    files.write_text(json.dumps(doc))
    for template in (configs / "templates").glob("*.json"):
        doc = json.loads(template.read_text())
        doc["trust"] = "global"
        template.write_text(json.dumps(doc))
    with fixture_daemon(short_tmp) as d:
        yield d


Done = subprocess.CompletedProcess[str]
Launch = tuple[dict[str, Any], dict[str, str]]


def _launch(d: HomeDaemon, name: str, template: str, binary: Path, mode: str = "service") -> Launch:
    d.call("agent.create", {"name": name, "template": template})
    spec = d.call("agent.launchSpec", {"name": name, "mode": mode, "reveal": True})
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ACTANT_", "CLAUDE", "CODEX", "GEMINI"))}
    env.update(HOME=str(d.user_home), PATH=f"{binary.parent}{os.pathsep}{env.get('PATH', '')}", **SECRETS)
    env.update(spec["env"])
    return spec, env


def _run(argv: list[str], spec: dict[str, Any], env: dict[str, str], timeout: float = 120) -> Done:
    """Run in its own session and kill whatever of it is left (MCP servers it spawned) afterwards."""
    proc = subprocess.Popen(argv, cwd=spec["cwd"], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)  # fmt: skip
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def _version(binary: Path, env: dict[str, str]) -> str:
    return subprocess.run(
        [str(binary), "--version"], env=env, capture_output=True, text=True, timeout=60
    ).stdout.strip()


def test_claude_code(cli_daemon: HomeDaemon, record_property: Any) -> None:
    binary = real_cli("@anthropic-ai/claude-code", "claude")
    spec, env = _launch(cli_daemon, "cc", "kit-claude-code", binary)
    record_property("version", _version(binary, env))
    assert spec["argv"][0] == "claude"
    listed = _run(["claude", "mcp", "list"], spec, env)
    out = listed.stdout + listed.stderr
    for name in ("files", "github", "remote"):
        assert f"{name}:" in out, out
    assert "Pending approval" not in out, out  # the ~/.claude.json entry Actant added (trust: global)
    with capture_server() as endpoint:
        env.update(ANTHROPIC_API_KEY="sk-ant-test", ANTHROPIC_BASE_URL=endpoint.url)
        ran = _run(spec["argv"], spec, env)
        sent = endpoint.text()
    init = next(json.loads(line) for line in ran.stdout.splitlines() if '"subtype":"init"' in line)
    assert {"alpha", "beta"} <= set(init["skills"]), init["skills"]
    assert {s["name"] for s in init["mcp_servers"]} == {"files", "github", "remote"}
    assert PROMPT_MARK in sent  # AGENTS.md, through CLAUDE.md's @AGENTS.md import
    run = cli_daemon.call("agent.launchSpec", {"name": "cc", "mode": "run", "prompt": "say hi", "reveal": True})
    with capture_server() as endpoint:
        env.update(ANTHROPIC_BASE_URL=endpoint.url)
        done = _run(run["argv"], run, env)
        sent = endpoint.text()
    assert "say hi" in sent and PROMPT_MARK in sent, done.stdout + done.stderr
    assert json.loads(done.stdout)["is_error"] is True  # the `--output-format json` result document
    cli_daemon.call("agent.destroy", {"name": "cc"})
    assert spec["cwd"] not in json.loads((cli_daemon.user_home / ".claude.json").read_text()).get("projects", {})


def test_codex(cli_daemon: HomeDaemon, record_property: Any) -> None:
    binary = real_cli("@openai/codex", "codex")
    spec, env = _launch(cli_daemon, "cx", "kit-codex", binary)
    record_property("version", _version(binary, env))
    assert spec["argv"][:3] == ["codex", "exec", "--skip-git-repo-check"]
    trust_file = cli_daemon.user_home / ".codex/config.toml"
    assert f'[projects."{spec["cwd"]}"]' in trust_file.read_text()
    listed = _run(["codex", "mcp", "list"], spec, env)
    out = listed.stdout
    assert "files" in out and "github" in out and "remote" in out, listed.stdout + listed.stderr
    assert "GITHUB_TOKEN" in out and "REMOTE_TOKEN" in out  # forwarded by name, not by value
    assert SECRETS["GITHUB_TOKEN"] not in out
    prompt = _run(["codex", "debug", "prompt-input"], spec, env)
    assert PROMPT_MARK in prompt.stdout
    assert "alpha: Alpha: write small, tested changes" in prompt.stdout  # the skills list
    cli_daemon.call("agent.destroy", {"name": "cx"})
    assert f'[projects."{spec["cwd"]}"]' not in trust_file.read_text()


def test_gemini(cli_daemon: HomeDaemon, record_property: Any) -> None:
    binary = real_cli("@google/gemini-cli", "gemini")
    spec, env = _launch(cli_daemon, "gm", "kit-gemini", binary)
    record_property("version", _version(binary, env))
    assert env["GEMINI_CLI_TRUST_WORKSPACE"] == "true"
    listed = _run(["gemini", "mcp", "list"], spec, env)
    out = listed.stdout + listed.stderr
    for name in ("files", "github", "remote"):
        assert f"{name}:" in out, out
    assert "Disabled" not in out, out  # trusted: the servers are in use
    skills = _run(["gemini", "skills", "list"], spec, env)
    assert "alpha" in skills.stdout and "beta" in skills.stdout, skills.stdout + skills.stderr
    settings = cli_daemon.user_home / ".gemini/settings.json"
    settings.parent.mkdir(exist_ok=True)
    settings.write_text('{"security": {"auth": {"selectedType": "gemini-api-key"}}}\n')
    with capture_server() as endpoint:
        env.update(GEMINI_API_KEY="test-key", GOOGLE_GEMINI_BASE_URL=endpoint.url)
        ran = _run(spec["argv"], spec, env)
        sent = endpoint.text()
    assert ran.returncode != 55, ran.stderr  # 55 = untrusted folder
    assert PROMPT_MARK in sent  # AGENTS.md, through GEMINI.md's @AGENTS.md import
    run = cli_daemon.call("agent.launchSpec", {"name": "gm", "mode": "run", "prompt": "say hi", "reveal": True})
    with capture_server() as endpoint:
        env.update(GOOGLE_GEMINI_BASE_URL=endpoint.url)
        done = _run(run["argv"], run, env)
        sent = endpoint.text()
    assert done.returncode != 55 and "say hi" in sent, done.stderr


def test_claude_open_starts_without_a_trust_dialog(cli_daemon: HomeDaemon) -> None:
    """``open`` (interactive ``claude``) goes straight to its prompt: the ``~/.claude.json`` entry Actant added
    (``"trust": "global"``) answers the folder-trust dialog. Onboarding and the API-key question are the fake
    user's own settings, written before Actant splices its entry in."""
    binary = real_cli("@anthropic-ai/claude-code", "claude")
    key = "sk-ant-actant-test-key-0123456789"
    user = {"hasCompletedOnboarding": True, "customApiKeyResponses": {"approved": [key[-20:]], "rejected": []}}
    (cli_daemon.user_home / ".claude.json").write_text(json.dumps(user, indent=2) + "\n")
    spec, env = _launch(cli_daemon, "cc", "kit-claude-code", binary, mode="open")
    assert spec["argv"] == ["claude"]
    with capture_server() as endpoint:
        env.update(ANTHROPIC_API_KEY=key, ANTHROPIC_BASE_URL=endpoint.url, TERM="xterm")
        drawn = screen(spec["argv"], spec["cwd"], env, 40, until=b"forshortcuts")
    flat = drawn.replace(" ", "")
    assert "trustthisfolder" not in flat and "Pendingapproval" not in flat, drawn[-2000:]
    assert "forshortcuts" in flat, drawn[-2000:]  # the prompt screen


def test_gemini_open_uses_the_workspace(cli_daemon: HomeDaemon) -> None:
    """Interactive ``gemini`` started as ``agent env --mode open`` prints it: the folder counts as trusted
    (``GEMINI_CLI_TRUST_WORKSPACE``), so no "untrusted folder" notice, no trust dialog, and the workspace's
    MCP servers are started."""
    binary = real_cli("@google/gemini-cli", "gemini")
    settings = cli_daemon.user_home / ".gemini/settings.json"
    settings.parent.mkdir(exist_ok=True)
    settings.write_text('{"security": {"auth": {"selectedType": "gemini-api-key"}}}\n')
    spec, env = _launch(cli_daemon, "gm", "kit-gemini", binary, mode="open")
    assert spec["argv"] == ["gemini"]
    with capture_server() as endpoint:
        env.update(GEMINI_API_KEY="test-key", GOOGLE_GEMINI_BASE_URL=endpoint.url, TERM="xterm")
        drawn = screen(spec["argv"], spec["cwd"], env, 40, until=b"MCPissuesdetected")
    assert "untrusted" not in drawn and "Do you trust" not in drawn, drawn[-2000:]
    # The workspace's MCP servers are in use: it tried them (github-mcp-server is not installed here).
    assert "MCP issues detected" in drawn, drawn[-2000:]
