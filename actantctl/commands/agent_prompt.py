"""``actantctl agent prompt NAME TEXT``: one turn of a running agent's live ACP session.

The agent's message is printed on stdout as it streams in (``prompt.update`` notifications of
``agent.prompt``); its thoughts and tool calls appear as one-line notes on stderr when stderr is a terminal;
the stop reason and usage follow on stderr. Permission requests the template's policy leaves open are put to
the user when stdin and stderr are a terminal (``y``/``n``; answered on a second connection with
``agent.permission.respond``); otherwise they go to other subscribed clients (an editor) or are denied.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from actantctl.client import call_streaming
from actantctl.commands.completion import complete_agents
from actantctl.context import AppContext, json_option, pass_app
from actantctl.output import print_json, text, warn

DEFAULT_PROMPT_TIMEOUT = 1800.0


def _note(message: str) -> None:
    if sys.stderr.isatty():
        click.echo(click.style(message, dim=True), err=True)


def usage_text(usage: Any) -> str:
    if not isinstance(usage, dict) or not usage:
        return "-"
    return ", ".join(f"{k} {v}" for k, v in usage.items() if v is not None)


@click.command("prompt")
@click.argument("name", shell_complete=complete_agents)
@click.argument("prompt_text", metavar="TEXT")
@click.option("--timeout", "turn_timeout", type=click.FloatRange(min=0, min_open=True),
              help="Seconds before the turn is cancelled.")  # fmt: skip
@click.option("--permission-timeout", type=click.FloatRange(min=0, min_open=True),
              help="Seconds a permission request waits for an answer before it is denied.")  # fmt: skip
@json_option
@pass_app
def prompt(
    app: AppContext, name: str, prompt_text: str, turn_timeout: float | None, permission_timeout: float | None
) -> None:
    """Send TEXT ('-' reads stdin) to the agent's live ACP session and print its answer as it streams."""
    if prompt_text == "-":
        prompt_text = sys.stdin.read()
    interactive = not app.json and sys.stdin.isatty() and sys.stderr.isatty()
    params: dict[str, Any] = {"name": name, "text": prompt_text, "answerPermissions": interactive}
    if turn_timeout is not None:
        params["timeoutSeconds"] = turn_timeout
    if permission_timeout is not None:
        params["permissionTimeoutSeconds"] = permission_timeout
    streamed = {"text": False}

    def on_note(method: str, note: Any) -> None:
        if not isinstance(note, dict) or app.json:
            return
        if method == "prompt.update":
            update = note.get("update") or {}
            kind = update.get("sessionUpdate")
            raw = update.get("content")
            content: dict[str, Any] = raw if isinstance(raw, dict) else {}
            if kind == "agent_message_chunk" and content.get("type") == "text":
                click.echo(content.get("text", ""), nl=False)
                sys.stdout.flush()
                streamed["text"] = True
            elif kind == "agent_thought_chunk":
                _note(f"… {content.get('text', '')}")
            elif kind == "tool_call":
                _note(f"tool: {update.get('title')} ({update.get('kind')}, {update.get('status')})")
            elif kind == "tool_call_update" and update.get("status"):
                _note(f"tool {update.get('toolCallId')}: {update.get('status')}")
            elif kind == "permission_resolved":
                verdict = "allowed" if update.get("allowed") else "denied"
                _note(f"permission {verdict} (by {update.get('by')})")
        elif method == "prompt.permission" and interactive:
            call = note.get("toolCall") or {}
            ok = click.confirm(f"\n{name} asks to run {call.get('title')!r} ({call.get('kind')}). Allow?",
                               default=False, err=True)  # fmt: skip
            try:
                app.call("agent.permission.respond", {"name": name, "permission": note.get("permission"), "allow": ok})
            except Exception as exc:  # too late (timed out) or the turn ended: say so, the turn goes on
                warn(f"could not answer the permission request: {getattr(exc, 'message', exc)}")

    limit = (turn_timeout or DEFAULT_PROMPT_TIMEOUT) + 30.0
    with app.client() as client:
        result = call_streaming(client, "agent.prompt", params, on_note, timeout=app.timeout or limit)
    if app.json:
        print_json(result)
        return
    if not streamed["text"] and result.get("text"):
        click.echo(result["text"], nl=False)
    click.echo()
    parts = [f"stop {text(result.get('stopReason'))}", f"usage {usage_text(result.get('usage'))}"]
    if result.get("resumed"):
        parts.append("resumed session")
    parts.append(f"session {text(result.get('sessionId'))}")
    click.echo(" · ".join(parts), err=True)
