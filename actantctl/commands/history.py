"""``actantctl history``: what was done to agents (mutating commands and one-shot runs), newest last.

A view over ``events.query`` restricted to the journal's ``command`` and ``execution`` events, so the daemon
needs no extra method for it.
"""

from __future__ import annotations

from typing import Any

import click

from actantctl.commands.completion import complete_agents
from actantctl.context import AppContext, json_option, pass_app
from actantctl.views import event_table

HISTORY_TYPES = ("command", "execution")
DEFAULT_LIMIT = 50


@click.command()
@click.option("--agent", shell_complete=complete_agents, help="Only this agent's history.")
@click.option(
    "--limit", type=click.IntRange(min=1), default=DEFAULT_LIMIT, show_default=True, help="At most this many entries."
)
@json_option
@pass_app
def history(app: AppContext, agent: str | None, limit: int) -> None:
    """Show recent commands and runs."""
    params: dict[str, Any] = {"types": list(HISTORY_TYPES), "limit": limit}
    if agent is not None:
        params["agent"] = agent
    result = app.call("events.query", params)
    items = result.get("events") or []
    app.emit(result, event_table(items) if items else "no history")
