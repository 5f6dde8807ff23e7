"""Any program: ``AGENTS.md``, skills in ``.agents/skills/`` and MCP servers in ``.mcp.json`` (the Claude
shape, the most widely read). Permissions mean nothing to an arbitrary program: explicit rules are warned
about, presets are not (a preset is the default of every template)."""

from __future__ import annotations

from pathlib import Path

from actantd.config.registry import Resolved
from actantd.config.schema import PermissionRules
from actantd.materialize import claude_code, skills
from actantd.materialize.base import INSTRUCTIONS, Mode, Rendered, agents_file

NAME = "custom"
SKILLS_DIR = ".agents/skills"


def render(resolved: Resolved) -> Rendered:
    warn: list[str] = []
    files = {INSTRUCTIONS: agents_file(resolved)}
    files.update(skills.skill_files(SKILLS_DIR, resolved.skills))
    if resolved.mcp_servers:
        files[".mcp.json"] = claude_code.mcp_json(resolved.mcp_servers)
    if isinstance(resolved.template.permissions, PermissionRules):
        warn.append("permissions: the custom backend has no permission file, so the rules are not applied")
    return Rendered(files, warn)


def launch_env(workspace: Path, mode: Mode) -> dict[str, str]:
    return {}


def launch_args(mode: Mode) -> list[str]:
    return []
