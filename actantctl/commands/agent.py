"""``actantctl agent ...``: the group alone; every subcommand lives in a module imported when it is named.

``agent list --json`` (the call scripts make most) thus loads :mod:`actantctl.commands.agent_list` and
nothing else of the CLI: not the lifecycle commands of :mod:`actantctl.commands.agent_manage`, not the run
executor's client code, not the log follower, not the table views. ``--help`` and shell completion still see
every command (click asks :meth:`AgentGroup.get_command` for each).
"""

from __future__ import annotations

from typing import Any

import click

from actantctl.lazy import LazyGroup

LAZY: dict[str, str] = {
    "create": "actantctl.commands.agent_manage:create",
    "list": "actantctl.commands.agent_list:list_",
    "status": "actantctl.commands.agent_manage:status",
    "start": "actantctl.commands.agent_manage:start",
    "stop": "actantctl.commands.agent_manage:stop",
    "restart": "actantctl.commands.agent_manage:restart",
    "destroy": "actantctl.commands.agent_manage:destroy",
    "sync": "actantctl.commands.agent_manage:sync",
    "attach": "actantctl.commands.agent_manage:attach",
    "detach": "actantctl.commands.agent_manage:detach",
    "diff": "actantctl.commands.agent_diff:diff",  # issue #12
    "run": "actantctl.commands.agent_run:run",
    "prompt": "actantctl.commands.agent_prompt:prompt",
    "open": "actantctl.commands.agent_open:open_",
    "logs": "actantctl.commands.agent_logs:logs",
    "env": "actantctl.commands.agent_env:env",  # issue #8
}
"""Subcommand name → ``module:attribute``, as the root group's table."""


class AgentGroup(LazyGroup):
    """``agent``: every subcommand from :data:`LAZY`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, lazy=LAZY, **kwargs)


@click.group(cls=AgentGroup)
def agent() -> None:
    """Create, run and inspect agents."""
