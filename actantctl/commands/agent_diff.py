"""``actantctl agent diff NAME``: an agent's work in its git worktree against the base it started from."""

from __future__ import annotations

from typing import Any

import click

from actantctl.commands.completion import complete_agents
from actantctl.context import AppContext, json_option, pass_app
from actantctl.output import print_json, warn


@click.command()
@click.argument("name", shell_complete=complete_agents)
@click.option("--stat", is_flag=True, help="Only a summary of changed files (git diff --stat).")
@json_option
@pass_app
def diff(app: AppContext, name: str, stat: bool) -> None:
    """Show the agent's commits and uncommitted changes against its base (since the branch left it)."""
    result: dict[str, Any] = app.call("agent.diff", {"name": name, "stat": stat})
    if app.json:
        print_json(result)
        return
    text = str(result.get("diff") or "")
    if text:
        click.echo(text, nl=not text.endswith("\n"))
    if result.get("truncated"):
        warn("the diff was cut to fit one answer; run git diff in the workspace for all of it")
    untracked = result.get("untracked") or []
    if untracked:
        warn(f"untracked, not in the diff: {', '.join(str(u) for u in untracked)}")
