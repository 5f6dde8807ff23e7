"""``actantctl agent env NAME``: exactly how Actant would start the agent, as shell lines a person can paste.

The daemon computes the launch (``agent.launchSpec``): argv, working directory and the environment Actant
adds to its own (trust variables, backend and template env, ``ACTANT_*``). Values that come from the
template's or instance's ``env`` are masked unless ``--reveal``; a masked variable is printed as
``"${NAME:?...}"`` so the pasted lines take it from the person's own shell, or stop and say so.
"""

from __future__ import annotations

import shlex
from typing import Any

import click

from actantctl.commands.completion import complete_agents
from actantctl.context import AppContext, json_option, pass_app


def shell_lines(spec: dict[str, Any]) -> str:
    masked = set(spec.get("masked") or [])
    lines = [f"# {spec.get('mode', 'service')} launch, as actantd runs it (paste into a POSIX shell)"]
    lines.append(f"cd {shlex.quote(str(spec['cwd']))}")
    for key, value in sorted((spec.get("env") or {}).items()):
        if key in masked:
            hint = f"{key} is a secret from the template or instance env (masked; actantctl agent env --reveal)"
            lines.append(f'export {key}="${{{key}:?{hint}}}"')
        else:
            lines.append(f"export {key}={shlex.quote(str(value))}")
    lines.append(shlex.join(str(a) for a in spec["argv"]))
    return "\n".join(lines)


@click.command("env")
@click.argument("name", shell_complete=complete_agents)
@click.option(
    "--mode",
    type=click.Choice(["service", "run", "open"]),
    default="service",
    show_default=True,
    help="Which launch: the supervised service, a one-shot run, or the interactive open.",
)
@click.option("--prompt", help="The prompt for --mode run (default: the {prompt} placeholder).")
@click.option("--reveal", is_flag=True, help="Show secret values instead of masking them.")
@json_option
@pass_app
def env(app: AppContext, name: str, mode: str, prompt: str | None, reveal: bool) -> None:
    """Print the command, directory and environment Actant uses to start the agent."""
    params: dict[str, Any] = {"name": name, "mode": mode, "reveal": reveal}
    if prompt is not None:
        params["prompt"] = prompt
    spec = app.call("agent.launchSpec", params)
    app.emit(spec, shell_lines(spec))
