"""``actantctl agent list``: the most frequent call, so its module loads nothing it does not use.

With ``--json`` the daemon's answer is printed as it came; the table views (and their time formatting) are
imported only when a person asks for a table.
"""

from __future__ import annotations

from typing import Any

import click

from actantctl.commands.completion import complete_templates
from actantctl.context import AppContext, json_option, pass_app
from actantctl.output import print_json
from actantd.instances.state import STATUS_NAMES as STATUSES


@click.command("list")
@click.option("--status", type=click.Choice(STATUSES, case_sensitive=False), help="Only agents in this status.")
@click.option("--template", shell_complete=complete_templates, help="Only agents built from this template.")
@click.option("-o", "--output", "output_format", type=click.Choice(["table", "wide"]), default="table",
              help="wide: add each git worktree's branch, ahead/behind and changes.")  # fmt: skip
@json_option
@pass_app
def list_(app: AppContext, status: str | None, template: str | None, output_format: str) -> None:
    """List agents with their status, backend, pid, uptime, cpu, memory and restarts."""
    status = next((s for s in STATUSES if status and s.lower() == status.lower()), status)
    params: dict[str, Any] = {k: v for k, v in (("status", status), ("template", template)) if v is not None}
    if output_format == "wide":
        params["wide"] = True
    # Live figures are what a person reads; a script's --json gets the records alone unless it asks (-o wide).
    if not app.json or output_format == "wide":
        params["live"] = True
    result = app.call("agent.list", params)
    if app.json:
        print_json(result)
        return
    from actantctl.views import agent_table
    from actantctl.worktree_views import wide_table

    agents = result.get("agents") or []
    view = wide_table if output_format == "wide" else agent_table
    click.echo(view(agents) if agents else "no agents")
