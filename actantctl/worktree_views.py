"""How a git-worktree workspace shows in ``agent status`` and ``agent list -o wide`` (issue #12).

Pure functions from the daemon's ``worktree`` object (``branch``, ``base``, ``ahead``, ``behind``, ``dirty``,
``modified``, ``untracked``) to text, kept apart from :mod:`actantctl.views` so the two evolve separately.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from actantctl.output import NONE, table, text
from actantctl.views import agent_table


def _wt(record: dict[str, Any]) -> dict[str, Any] | None:
    value = record.get("worktree")
    return value if isinstance(value, dict) else None


def ahead_behind(wt: dict[str, Any] | None) -> str:
    if not wt or wt.get("ahead") is None:
        return NONE
    return f"+{wt['ahead']}/-{wt.get('behind', 0)}"


def changes(wt: dict[str, Any] | None) -> str:
    if not wt or not wt.get("exists", True):
        return NONE if not wt else "worktree missing"
    if not wt.get("dirty"):
        return "clean"
    return f"{wt.get('modified', 0)} modified, {wt.get('untracked', 0)} untracked"


def worktree_details(record: dict[str, Any]) -> str:
    """Extra ``key: value`` lines for ``agent status``; empty for an agent without a repository."""
    if not record.get("repo"):
        return ""
    wt = _wt(record)
    pairs = [
        ("repository", text(record.get("repo"))),
        ("branch", text((wt or {}).get("branch") or record.get("branch"))),
        ("base", f"{text(record.get('base'))} ({text((record.get('baseCommit') or '')[:12])})"),
        ("ahead/behind", ahead_behind(wt)),
        ("changes", changes(wt)),
    ]
    setup = record.get("setup")
    if isinstance(setup, dict):
        argv = " ".join(str(a) for a in setup.get("argv") or [])
        pairs.append(("setup", f"{argv or '-'} → exit {text(setup.get('exitCode'))}"))
    width = 17  # the width agent_details aligns to ("workspace policy:")
    return "\n" + "\n".join(f"{(k + ':').ljust(width)} {v}".rstrip() for k, v in pairs)


def wide_table(agents: Sequence[dict[str, Any]]) -> str:
    """``agent list -o wide``: the default columns, then BRANCH, AHEAD/BEHIND and CHANGES."""
    base = agent_table(agents).splitlines()
    extra = [("BRANCH", "AHEAD/BEHIND", "CHANGES")]
    for a in agents:
        wt = _wt(a)
        extra.append((text((wt or {}).get("branch") or a.get("branch")), ahead_behind(wt), changes(wt)))
    right = table(extra[0], extra[1:]).splitlines()
    width = max(len(line) for line in base)
    return "\n".join(f"{left.ljust(width)}  {r}".rstrip() for left, r in zip(base, right, strict=True))
