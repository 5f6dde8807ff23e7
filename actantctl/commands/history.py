"""``actantctl history [NAME]``: what was done to agents (mutating commands and one-shot runs), newest last,
then per agent the totals of its runs: how many, how many failed, cost, tokens and time.

A view over ``events.query`` restricted to the journal's ``command`` and ``execution`` events, so the daemon
needs no extra method for it. Totals are summed here over the agent's last ``TOTALS_WINDOW`` runs (the
journal's retention bounds them anyway); ``--runs`` lists only the runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click

from actantctl.commands.completion import complete_agents
from actantctl.context import AppContext, json_option, pass_app
from actantctl.output import local_time, table, text
from actantctl.views import event_summary

HISTORY_TYPES = ("command", "execution")
DEFAULT_LIMIT = 50
TOTALS_WINDOW = 10_000
TOKEN_ORDER = ("input", "output", "cacheRead", "cacheWrite", "reasoning", "total")


def totals(executions: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per agent: ``runs``, ``failed``, ``costUsd`` (None when no run reported one), ``tokens``, ``durationMs``."""
    out: dict[str, dict[str, Any]] = {}
    for entry in executions:
        if entry.get("type") != "execution":
            continue
        row = out.setdefault(
            str(entry.get("agent")), {"runs": 0, "failed": 0, "costUsd": None, "tokens": {}, "durationMs": 0.0}
        )
        row["runs"] += 1
        if entry.get("exitCode") != 0:
            row["failed"] += 1
        cost = entry.get("costUsd")
        if isinstance(cost, int | float) and not isinstance(cost, bool):
            row["costUsd"] = round((row["costUsd"] or 0.0) + cost, 6)
        duration = entry.get("durationMs")
        if isinstance(duration, int | float) and not isinstance(duration, bool):
            row["durationMs"] = round(row["durationMs"] + duration, 1)
        tokens = entry.get("tokens")
        if isinstance(tokens, dict):
            for key, value in tokens.items():
                if isinstance(value, int) and not isinstance(value, bool):
                    row["tokens"][key] = row["tokens"].get(key, 0) + value
    return out


def _cost(value: Any) -> str:
    return f"${value:.4f}" if isinstance(value, int | float) and not isinstance(value, bool) else "-"


def _tokens(tokens: Any) -> str:
    if not isinstance(tokens, dict) or not tokens:
        return "-"
    return " ".join(f"{k}={tokens[k]}" for k in TOKEN_ORDER if k in tokens)


def _details(event: dict[str, Any]) -> str:
    base = event_summary(event)
    if event.get("type") != "execution":
        return base
    extra = [f"cost {_cost(event.get('costUsd'))}"]
    if event.get("tokens"):
        extra.append(f"tokens {_tokens(event.get('tokens'))}")
    if event.get("timedOut"):
        extra.append("timed out")
    return "  ".join([base, *extra])


def render(events: Sequence[dict[str, Any]], sums: dict[str, dict[str, Any]]) -> str:
    if not events:
        return "no history"
    rows = [(local_time(e.get("at")), text(e.get("agent")), text(e.get("type")), _details(e)) for e in events]
    out = table(("TIME", "AGENT", "TYPE", "DETAILS"), rows)
    if sums:
        total_rows = [
            (agent, str(s["runs"]), str(s["failed"]), _cost(s["costUsd"]), _tokens(s["tokens"]),
             f"{s['durationMs'] / 1000:.1f} s")
            for agent, s in sorted(sums.items())
        ]  # fmt: skip
        out += "\n\nTotals of runs per agent:\n" + table(("AGENT", "RUNS", "FAILED", "COST", "TOKENS", "TIME"),
                                                        total_rows)  # fmt: skip
    return out


@click.command()
@click.argument("name", required=False, shell_complete=complete_agents)
@click.option("--agent", shell_complete=complete_agents, help="Only this agent's history (same as NAME).")
@click.option("--runs", "runs_only", is_flag=True, help="Only one-shot runs (agent run), not other commands.")
@click.option(
    "--limit", type=click.IntRange(min=1), default=DEFAULT_LIMIT, show_default=True, help="At most this many entries."
)
@json_option
@pass_app
def history(app: AppContext, name: str | None, agent: str | None, runs_only: bool, limit: int) -> None:
    """Show recent commands and runs, with the cost of each run and totals per agent."""
    who = name or agent
    params: dict[str, Any] = {"types": ["execution"] if runs_only else list(HISTORY_TYPES), "limit": limit}
    if who is not None:
        params["agent"] = who
    with app.client() as client:
        result = client.call("events.query", params)
        items = result.get("events") or []
        runs = client.call("events.query", {**params, "types": ["execution"], "limit": TOTALS_WINDOW})
    sums = totals(runs.get("events") or [])
    app.emit({**result, "totals": sums}, render(items, sums))
