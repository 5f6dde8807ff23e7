"""``actantctl agent run NAME PROMPT``: one prompt, one answer, with what it cost.

The daemon runs the backend's one-shot argv in the workspace and streams the agent's output as ``log``
notifications while it works; on a terminal the latest line is shown as a transient progress line on stderr
(overwritten in place), so a long run is visibly alive without burying the answer. The answer goes to stdout,
the figures (exit, duration, cost, tokens, session) to stderr, so ``agent run x "..." > answer.md`` keeps only
the answer. ``--json`` prints the daemon's result as one document.
"""

from __future__ import annotations

import shutil
import sys
from typing import Any

import click

from actantctl.client import call_streaming
from actantctl.commands.completion import complete_agents
from actantctl.context import AppContext, json_option, pass_app
from actantctl.output import Failure, print_json, text

MARGIN = 30.0
"""Added to the run's timeout: the daemon's own answer (with "timed out") must arrive before ours gives up."""
DEFAULT_RUN_TIMEOUT = 600.0
"""The daemon's default when ``--timeout`` is not given (``actantd.runs.service.DEFAULT_TIMEOUT_SECONDS``)."""


class _ProgressLine:
    """The agent's latest output line, rewritten in place on a terminal's stderr; nothing elsewhere."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.enabled = sys.stderr.isatty()
        self.shown = False

    def show(self, line: str) -> None:
        if not self.enabled or not line.strip():
            return
        width = max(20, shutil.get_terminal_size((80, 24)).columns - 1)
        message = f"{self.name}: {line.strip()}"[:width]
        sys.stderr.write("\r\x1b[2K" + message)
        sys.stderr.flush()
        self.shown = True

    def clear(self) -> None:
        if self.shown:
            sys.stderr.write("\r\x1b[2K")
            sys.stderr.flush()
            self.shown = False


def tokens_text(tokens: Any) -> str:
    if not isinstance(tokens, dict) or not tokens:
        return "-"
    order = ("input", "output", "cacheRead", "cacheWrite", "reasoning", "total")
    names = {"cacheRead": "cache read", "cacheWrite": "cache write"}
    return ", ".join(f"{names.get(k, k)} {tokens[k]}" for k in order if k in tokens)


def cost_text(cost: Any) -> str:
    return f"${cost:.4f}" if isinstance(cost, int | float) and not isinstance(cost, bool) else "-"


def summary(result: dict[str, Any]) -> str:
    """``exit 0 · 2.10 s · $0.0125 · tokens input 10, output 7 · session 0c49…``"""
    parts = [f"exit {text(result.get('exitCode'))}"]
    duration = result.get("durationMs")
    if isinstance(duration, int | float):
        parts.append(f"{duration / 1000:.2f} s")
    parts.append(f"cost {cost_text(result.get('costUsd'))}")
    parts.append(f"tokens {tokens_text(result.get('tokens'))}")
    if result.get("sessionId"):
        parts.append(f"session {result['sessionId']}" + (" (continued)" if result.get("continued") else ""))
    return " · ".join(parts)


@click.command("run")
@click.argument("name", shell_complete=complete_agents)
@click.argument("prompt")
@click.option(
    "--timeout", "run_timeout", type=click.FloatRange(min=0, min_open=True), help="Seconds before it is killed."
)
@click.option("-c", "--continue", "continue_", is_flag=True, help="Continue the conversation of the last run.")
@json_option
@pass_app
def run(app: AppContext, name: str, prompt: str, run_timeout: float | None, continue_: bool) -> None:
    """Run the agent once on PROMPT ('-' reads it from stdin) and print what it answered."""
    if prompt == "-":
        prompt = sys.stdin.read()
    params: dict[str, Any] = {"name": name, "prompt": prompt}
    if run_timeout is not None:
        params["timeoutSeconds"] = run_timeout
    if continue_:
        params["continue"] = True
    line = _ProgressLine(name)

    def on_note(method: str, note: Any) -> None:
        if method == "log" and isinstance(note, dict) and not app.json:
            for item in note.get("lines") or []:
                line.show(str(item))

    limit = (run_timeout or DEFAULT_RUN_TIMEOUT) + MARGIN
    try:
        with app.client() as client:
            result = call_streaming(client, "agent.run", params, on_note, timeout=app.timeout or limit)
    finally:
        line.clear()
    if app.json:
        print_json(result)
    else:
        answer = result.get("result")
        if answer:
            click.echo(str(answer).rstrip("\n"))
        click.echo(summary(result), err=True)
        if result.get("exitCode") not in (0, None) and result.get("stderr"):
            click.echo(str(result["stderr"]).rstrip("\n"), err=True)
    if result.get("timedOut"):
        raise Failure(
            f"{name} did not finish within {text(result.get('timeoutSeconds'))}s; it was stopped (whole process tree)"
        )
    code = result.get("exitCode")
    if code != 0:
        signal = result.get("signal")
        raise Failure(f"{name} killed by signal {signal}" if signal else f"{name} exited with code {text(code)}")
