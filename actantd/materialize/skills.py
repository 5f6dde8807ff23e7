"""Skill folders: ``<dir>/<name>/SKILL.md`` with ``name`` and ``description`` YAML front matter.

Claude Code (``.claude/skills``), Codex (``.agents/skills``) and Gemini CLI (``.gemini/skills``) all discover
skills in this shape and refuse one without a description, so a skill config without a ``description``
gets a generated one. Strings in the front matter are written as JSON strings, which are valid YAML
double-quoted scalars whatever characters they hold.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from actantd.config.schema import Skill


def description(skill: Skill) -> str:
    return (skill.description or f"The {skill.name} skill").strip()


def front_matter(fields: dict[str, str | bool]) -> str:
    lines = ["---"]
    for key, value in fields.items():
        text = ("true" if value else "false") if isinstance(value, bool) else json.dumps(value, ensure_ascii=False)
        lines.append(f"{key}: {text}")
    lines.append("---")
    return "\n".join(lines) + "\n"


def skill_md(skill: Skill) -> str:
    return front_matter({"name": skill.name, "description": description(skill)}) + f"\n{skill.content.strip()}\n"


def skill_files(directory: str, skills: Sequence[Skill]) -> dict[str, str]:
    return {f"{directory}/{skill.name}/SKILL.md": skill_md(skill) for skill in skills}
