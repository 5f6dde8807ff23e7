"""``actantctl events``: query the journal, or follow live events (``-f``).

With ``-f`` plus ``--since``/``--limit`` the subscription is opened *before* the backlog is queried, so no
event falls between the two; events seen in both are printed once (by their journal ``id``).
"""

from __future__ import annotations

import re
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import click

from actantctl.commands.completion import complete_agents
from actantctl.context import AppContext, json_stream_option, pass_app
from actantctl.output import print_json_line
from actantctl.views import event_line, event_table

_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(_ctx: click.Context | None, _param: click.Parameter | None, value: str | None) -> str | None:
    """``10m``, ``2h``, ``3d`` ago, or an ISO-8601 time (local if it has no offset) → ISO-8601 UTC."""
    if value is None:
        return None
    match = _RELATIVE.match(value.strip())
    if match:
        when = datetime.now(UTC) - timedelta(seconds=float(match[1]) * _UNITS[match[2]])
    else:
        try:
            when = datetime.fromisoformat(value.strip())
        except ValueError:
            raise click.BadParameter("use a duration like 10m, 2h, 3d or an ISO-8601 time") from None
        if when.tzinfo is None:
            when = when.astimezone()
    return when.astimezone(UTC).isoformat()


def _clean(event: dict[str, Any]) -> dict[str, Any]:
    """Live and queried events look the same on output: the subscription id is connection plumbing."""
    return {k: v for k, v in event.items() if k != "subscription"}


@click.command()
@click.option("-f", "--follow", is_flag=True, help="Keep printing events as they happen (Ctrl-C to stop).")
@click.option("--agent", shell_complete=complete_agents, help="Only events of this agent.")
@click.option("--type", "types", multiple=True, help="Only events of this type (repeatable), e.g. transition.")
@click.option("--since", callback=parse_since, help="Only events after this time (10m, 2h, 3d, or ISO-8601).")
@click.option("--limit", type=click.IntRange(min=1), help="At most this many events.")
@json_stream_option
@pass_app
def events(
    app: AppContext, follow: bool, agent: str | None, types: tuple[str, ...], since: str | None, limit: int | None
) -> None:
    """Show the operational history, or follow live events with -f."""
    filters: dict[str, Any] = {}
    if agent is not None:
        filters["agent"] = agent
    if types:
        filters["types"] = list(types)
    query = dict(filters)
    if since is not None:
        query["since"] = since
    if limit is not None:
        query["limit"] = limit
    if not follow:
        result = app.call("events.query", query)
        items = result.get("events") or []
        app.emit(result, event_table(items) if items else "no events")
        return
    stream = app.client().stream("events.subscribe", filters, "event")
    try:
        last_id: int | None = None
        if since is not None or limit is not None:
            for event in app.call("events.query", query).get("events") or []:
                _print_event(app, event)
                if isinstance(event.get("id"), int):
                    last_id = max(event["id"], last_id or 0)
        for event in stream:
            if last_id is not None and isinstance(event.get("id"), int) and event["id"] <= last_id:
                continue
            _print_event(app, event)
    finally:
        stream.close()


def _print_event(app: AppContext, event: dict[str, Any]) -> None:
    if app.json:
        print_json_line(_clean(event))
    else:
        click.echo(event_line(event))
        sys.stdout.flush()
