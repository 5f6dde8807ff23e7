"""Claude Code: ``CLAUDE.md`` importing ``AGENTS.md``, ``.claude/skills/``, ``.mcp.json`` and
``.claude/settings.local.json`` (permissions and the MCP servers it may use without asking).

``claude -p`` uses the project's servers and rules with no prompt. Interactive ``claude`` lists them as
"pending approval" and ignores ``allow`` rules until the folder is trusted, which only an entry in
``~/.claude.json`` does (:mod:`actantd.materialize.trust`, with ``"trust": "global"``); there is no
per-launch flag for it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from actantd.config.registry import Resolved
from actantd.config.schema import McpServer, PermissionRules
from actantd.materialize import envref, permissions, skills
from actantd.materialize.base import IMPORT_INSTRUCTIONS, INSTRUCTIONS, Mode, Rendered, agents_file, json_text

NAME = "claude-code"
SKILLS_DIR = ".claude/skills"

_PRESETS: dict[str, dict[str, Any]] = {
    "Permissive": {
        "defaultMode": "acceptEdits",
        "allow": ["Bash", "Edit", "Write", "NotebookEdit", "WebFetch", "WebSearch"],
    },
    "Standard": {"defaultMode": "acceptEdits"},
    "Restricted": {"defaultMode": "default"},
    "ReadOnly": {"defaultMode": "default", "deny": ["Bash", "Edit", "Write", "NotebookEdit"]},
}


def mcp_entry(server: McpServer) -> dict[str, Any]:
    if server.is_remote:
        entry: dict[str, Any] = {"type": server.type, "url": server.url}
        if server.headers:
            entry["headers"] = envref.render_map(server.headers, envref.claude)
        return entry
    entry = {"type": "stdio", "command": server.command, "args": list(server.args)}
    if server.env:
        entry["env"] = envref.render_map(server.env, envref.claude)
    return entry


def mcp_json(servers: tuple[McpServer, ...]) -> str:
    return json_text({"mcpServers": {s.name: mcp_entry(s) for s in servers}})


def settings(resolved: Resolved) -> dict[str, Any]:
    perms = resolved.template.permissions
    if isinstance(perms, PermissionRules):
        block: dict[str, Any] = {d: list(getattr(perms, d)) for d in permissions.DECISIONS if getattr(perms, d)}
    else:
        block = {key: list(v) if isinstance(v, list) else v for key, v in _PRESETS[perms].items()}
    out: dict[str, Any] = {"permissions": block}
    if resolved.mcp_servers:
        out["enabledMcpjsonServers"] = [s.name for s in resolved.mcp_servers]
    return out


def render(resolved: Resolved) -> Rendered:
    files = {INSTRUCTIONS: agents_file(resolved), "CLAUDE.md": IMPORT_INSTRUCTIONS}
    files.update(skills.skill_files(SKILLS_DIR, resolved.skills))
    if resolved.mcp_servers:
        files[".mcp.json"] = mcp_json(resolved.mcp_servers)
    files[".claude/settings.local.json"] = json_text(settings(resolved))
    return Rendered(files)


def launch_env(workspace: Path, mode: Mode) -> dict[str, str]:
    return {}


def launch_args(mode: Mode) -> list[str]:
    return []
