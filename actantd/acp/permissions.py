"""Who answers an agent's ``session/request_permission``: the template's policy, else a client, else "no".

The policy is the template's ``permissions`` (the same setting the materializers write into each CLI's own
files), read for ACP's tool kinds (``read``, ``edit``, ``delete``, ``move``, ``search``, ``execute``, ``think``,
``fetch``, ``switch_mode``, ``other``):

- ``Permissive``: allow everything;
- ``ReadOnly`` / ``Restricted``: allow what only reads (``read``, ``search``, ``think``), deny the rest;
- ``Standard``: allow what only reads, ask about the rest;
- explicit rules (``allow`` / ``deny`` / ``ask`` in Claude Code's ``Tool(pattern)`` form): the tool kind is
  named as Claude Code names its tools (``edit`` → ``Edit``/``Write``, ``execute`` → ``Bash``, ``read`` →
  ``Read``, ``fetch`` → ``WebFetch``, ...); a matching ``deny`` wins, then ``allow``, then ``ask``; no match asks.

"Ask" means: offer the request to clients (subscribers of ``permission.*`` events and the caller of
``agent.prompt``), take the first answer (``agent.permission.respond``), and deny when nobody answers
within the timeout, or at once when nobody is listening.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from typing import Any, Final, Literal

from actantd.config.schema import PermissionRules

Decision = Literal["allow", "deny", "ask"]

READ_ONLY_KINDS: Final = frozenset({"read", "search", "think"})
CLAUDE_TOOLS: Final[dict[str, tuple[str, ...]]] = {
    "read": ("Read",),
    "edit": ("Edit", "Write", "MultiEdit"),
    "delete": ("Edit", "Bash"),
    "move": ("Edit", "Bash"),
    "search": ("Grep", "Glob"),
    "execute": ("Bash",),
    "fetch": ("WebFetch",),
    "think": ("Task",),
}


def _rule_matches(rule: str, tools: Sequence[str], title: str) -> bool:
    name, _, rest = rule.partition("(")
    if name not in tools and name != "*":
        return False
    if not rest:
        return True
    pattern = rest.rstrip(")").replace(":*", "*")
    return fnmatch.fnmatchcase(title, pattern) or fnmatch.fnmatchcase(title, f"*{pattern}")


def decide(policy: str | PermissionRules, tool_call: dict[str, Any]) -> Decision:
    """The policy's answer for one tool call (``toolCall`` of the request: ``kind``, ``title``, ...)."""
    kind = str(tool_call.get("kind") or "other")
    if isinstance(policy, str):
        if policy == "Permissive":
            return "allow"
        if kind in READ_ONLY_KINDS:
            return "allow"
        return "deny" if policy in ("ReadOnly", "Restricted") else "ask"
    tools = CLAUDE_TOOLS.get(kind, ("*",))
    title = str(tool_call.get("title") or "")
    if any(_rule_matches(r, tools, title) for r in policy.deny):
        return "deny"
    if any(_rule_matches(r, tools, title) for r in policy.allow):
        return "allow"
    return "ask"


def choose(options: Sequence[dict[str, Any]], allow: bool) -> dict[str, Any]:
    """The ``RequestPermissionOutcome`` for a yes or a no, preferring the "once" options.

    A "no" when the agent offered no reject option is ``cancelled``: the only refusal the protocol has then.
    """
    wanted = ("allow_once", "allow_always") if allow else ("reject_once", "reject_always")
    for kind in wanted:
        for option in options:
            if isinstance(option, dict) and option.get("kind") == kind and isinstance(option.get("optionId"), str):
                return {"outcome": "selected", "optionId": option["optionId"]}
    return {"outcome": "cancelled"}


def outcome_for_option(options: Sequence[dict[str, Any]], option_id: str) -> dict[str, Any] | None:
    """A client's pick, if it is one of the options offered."""
    if any(isinstance(o, dict) and o.get("optionId") == option_id for o in options):
        return {"outcome": "selected", "optionId": option_id}
    return None


def allowed(options: Sequence[dict[str, Any]], outcome: dict[str, Any]) -> bool:
    if outcome.get("outcome") != "selected":
        return False
    for option in options:
        if isinstance(option, dict) and option.get("optionId") == outcome.get("optionId"):
            return str(option.get("kind", "")).startswith("allow")
    return False
