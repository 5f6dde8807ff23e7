"""Cursor's terminal agent: ``AGENTS.md``, one ``.cursor/rules/<skill>.mdc`` per skill (``description``,
``alwaysApply: true``), ``.cursor/mcp.json`` and ``.cursor/cli.json`` permissions.

Cursor's CLI is not on npm, so this follows its documentation rather than a run: MCP references are
``${env:NAME}``; permissions are ``allow``/``deny`` lists of ``Shell(command)``, ``Read(glob)`` and
``Write(glob)`` with no ``ask``; a headless run needs ``--trust`` (workspace) and ``--approve-mcps``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from actantd.config.registry import Resolved
from actantd.config.schema import McpServer, PermissionRules
from actantd.materialize import envref, permissions, skills
from actantd.materialize.base import INSTRUCTIONS, Mode, Rendered, agents_file, json_text

NAME = "cursor-agent"
RULES_DIR = ".cursor/rules"

_PRESETS: dict[str, dict[str, list[str]]] = {
    "Permissive": {"allow": ["Read(**)", "Write(**)", "Shell(*)"], "deny": []},
    "Standard": {"allow": ["Read(**)", "Write(**)"], "deny": []},
    "Restricted": {"allow": ["Read(**)"], "deny": []},
    "ReadOnly": {"allow": ["Read(**)"], "deny": ["Write(**)", "Shell(*)"]},
}


def mcp_entry(server: McpServer) -> dict[str, Any]:
    if server.is_remote:
        entry: dict[str, Any] = {"url": server.url}
        if server.headers:
            entry["headers"] = envref.render_map(server.headers, envref.cursor)
        return entry
    entry = {"command": server.command, "args": list(server.args)}
    if server.env:
        entry["env"] = envref.render_map(server.env, envref.cursor)
    return entry


def _translate(rule: permissions.Rule) -> str | None:
    """A Claude-shaped rule in Cursor's tokens, or None when it has no exact equivalent."""
    spec = rule.spec.removeprefix("./") if rule.spec is not None else None
    if rule.tool == "Bash":
        prefix = rule.command_prefix
        if rule.spec is None:
            return "Shell(*)"
        return f"Shell({prefix})" if prefix is not None and " " not in prefix else None
    if rule.tool in ("Read", "Glob", "Grep", "LS"):
        return f"Read({spec or '**'})"
    if rule.tool in ("Edit", "Write", "MultiEdit", "NotebookEdit"):
        return f"Write({spec or '**'})"
    return None


def cli_json(resolved: Resolved, warn: list[str]) -> dict[str, Any]:
    perms = resolved.template.permissions
    if not isinstance(perms, PermissionRules):
        return {"permissions": _PRESETS[perms]}
    block: dict[str, list[str]] = {"allow": [], "deny": []}
    for rule in permissions.rules(perms):
        token = _translate(rule)
        if rule.decision == "ask":
            warn.append(f"permissions: Cursor has no 'ask' rules; {rule.text!r} is not applied")
        elif token is None:
            warn.append(f"permissions: Cursor cannot express {rule.decision} rule {rule.text!r}; not applied")
        else:
            block[rule.decision].append(token)
    return {"permissions": block}


def render(resolved: Resolved) -> Rendered:
    warn: list[str] = []
    files = {INSTRUCTIONS: agents_file(resolved)}
    for skill in resolved.skills:
        front = skills.front_matter({"description": skills.description(skill), "alwaysApply": True})
        files[f"{RULES_DIR}/{skill.name}.mdc"] = front + f"\n{skill.content.strip()}\n"
    if resolved.mcp_servers:
        files[".cursor/mcp.json"] = json_text({"mcpServers": {s.name: mcp_entry(s) for s in resolved.mcp_servers}})
    files[".cursor/cli.json"] = json_text(cli_json(resolved, warn))
    return Rendered(files, warn)


def launch_env(workspace: Path, mode: Mode) -> dict[str, str]:
    return {}


def launch_args(mode: Mode) -> list[str]:
    # --trust is for headless runs; the interactive agent asks once and remembers the answer itself.
    return ["--approve-mcps"] if mode == "open" else ["--trust", "--approve-mcps"]
