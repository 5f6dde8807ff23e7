"""The permission model templates share, before each backend renders it natively.

A template gives a preset or explicit rules in Claude Code's shape (``{"allow": ["Bash(git diff:*)"],
"deny": [...], "ask": [...]}``, the richest of the native forms). Presets mean the same everywhere:

``Permissive``
    edits, shell commands and network use without asking;
``Standard`` (default)
    reads and edits in the workspace without asking; shell commands ask (an unattended run refuses them);
``Restricted``
    reads without asking; edits and shell commands ask;
``ReadOnly``
    reads only; edits and shell commands are refused.

Each backend module renders what its CLI can express and returns a message for every rule it cannot; the
config loader turns those into validation warnings (template and backend named), so no rule is dropped
silently.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from actantd.config.schema import PermissionPreset, PermissionRules, Template

Decision = Literal["allow", "deny", "ask"]
DECISIONS: tuple[Decision, ...] = ("allow", "deny", "ask")

_RULE = re.compile(r"^(?P<tool>[A-Za-z_][A-Za-z0-9_]*)(?:\((?P<spec>.*)\))?$", re.DOTALL)


@dataclass(frozen=True, slots=True)
class Rule:
    """One parsed rule: ``Bash(git diff:*)`` → tool ``Bash``, spec ``git diff:*``."""

    decision: Decision
    text: str
    tool: str
    spec: str | None

    @property
    def command_prefix(self) -> str | None:
        """For a Bash rule, the command it matches (``git diff`` for ``git diff:*`` or ``git diff *``)."""
        if self.tool != "Bash" or self.spec is None:
            return None
        spec = self.spec.strip()
        for suffix in (":*", " *", "*"):
            if spec.endswith(suffix):
                return spec[: -len(suffix)].strip() or None
        return spec or None


def parse(decision: Decision, text: str) -> Rule:
    match = _RULE.match(text.strip())
    if match is None:
        return Rule(decision, text, text, None)
    return Rule(decision, text, match.group("tool"), match.group("spec"))


def rules(permissions: PermissionRules) -> list[Rule]:
    out: list[Rule] = []
    for decision in DECISIONS:
        out.extend(parse(decision, text) for text in getattr(permissions, decision))
    return out


def preset(template: Template) -> PermissionPreset | None:
    return template.permissions if isinstance(template.permissions, str) else None
