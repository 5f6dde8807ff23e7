"""Skill folders: ``<dir>/<name>/SKILL.md`` with ``name`` and ``description`` YAML front matter.

Claude Code (``.claude/skills``), Codex (``.agents/skills``) and Gemini CLI (``.gemini/skills``) all discover
skills in this shape and refuse one without a description, so a skill config without a ``description``
gets a generated one. Strings in the front matter are written as JSON strings, which are valid YAML
double-quoted scalars whatever characters they hold.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

from actantd.config.schema import Skill


def description(skill: Skill) -> str:
    return (skill.description or f"The {skill.name} skill").strip()


_PLAIN = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
"""Values YAML reads the same unquoted (config names are kebab-case file stems)."""


def front_matter(fields: dict[str, str | bool]) -> str:
    lines = ["---"]
    for key, value in fields.items():
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif _PLAIN.match(value) and value not in ("true", "false", "null", "yes", "no", "on", "off"):
            text = value
        else:
            text = json.dumps(value, ensure_ascii=False)
        lines.append(f"{key}: {text}")
    lines.append("---")
    return "\n".join(lines) + "\n"


def skill_md(skill: Skill) -> str:
    return front_matter({"name": skill.name, "description": description(skill)}) + f"\n{skill.content.strip()}\n"


def skill_files(directory: str, skills: Sequence[Skill]) -> dict[str, str]:
    return {f"{directory}/{skill.name}/SKILL.md": skill_md(skill) for skill in skills}
