"""``actantctl agent ...``: the instance lifecycle and logs; `run`, `prompt` and `open` live in their own modules.

Each command is one RPC (``open`` is three) whose answer is printed as-is with ``--json`` or through
:mod:`actantctl.views` for people. Waiting happens on the daemon side (``agent.start`` with ``wait``) so
the client holds no polling loop and every client sees the same outcome.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any

import click

from actantctl.commands import agent_diff, agent_env, agent_open, agent_prompt, agent_run
from actantctl.commands.agent_worktree import report_worktree_create, worktree_options, worktree_params
from actantctl.commands.completion import complete_agents, complete_templates
from actantctl.context import AppContext, json_option, pass_app
from actantctl.output import print_json, print_json_line, progress, text
from actantctl.views import STATUSES, agent_details, agent_table
from actantctl.worktree_views import wide_table, worktree_details
from actantd.instances.state import Status

LIFECYCLE_TIMEOUT = 300.0
"""Start, stop and destroy wait for processes and templates' own timeouts, so they get longer than a query."""
MARGIN = 30.0
"""Added to a timeout the daemon enforces, so that the daemon's answer arrives before ours runs out."""

NAME = click.argument("name", shell_complete=complete_agents)


@click.group()
def agent() -> None:
    """Create, run and inspect agents."""


def _agent_of(result: Any) -> dict[str, Any]:
    record = result.get("agent") if isinstance(result, dict) else None
    return record if isinstance(record, dict) else {}


def _parse_env(pairs: tuple[str, ...]) -> dict[str, str]:
    env: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint="'--env'")
        env[key] = value
    return env


@agent.command()
@NAME
@click.option("-t", "--template", required=True, shell_complete=complete_templates, help="Template to build it from.")
@click.option(
    "--work-dir",
    type=click.Path(file_okay=False),
    help="Use this directory (e.g. an existing repo) as the workspace instead of one under the home.",
)
@click.option("-e", "--env", "env_pairs", multiple=True, metavar="KEY=VALUE", help="Extra environment (repeatable).")
@worktree_options
@json_option
@pass_app
def create(
    app: AppContext,
    name: str,
    template: str,
    work_dir: str | None,
    env_pairs: tuple[str, ...],
    repo: str | None,
    branch: str | None,
    base: str | None,
) -> None:
    """Create an agent from a template and build its workspace."""
    params: dict[str, Any] = {"name": name, "template": template}
    if work_dir is not None:
        params["workDir"] = os.path.abspath(os.path.expanduser(work_dir))
    env = _parse_env(env_pairs)
    if env:
        params["overrides"] = {"env": env}
    params.update(worktree_params({"repo": repo, "branch": branch, "base": base}))
    result = app.call("agent.create", params, timeout=LIFECYCLE_TIMEOUT)
    if app.json:
        print_json(result)
        return
    record = _agent_of(result)
    click.echo(f"created {name} (template {text(record.get('templateRef', template))}, {text(record.get('status'))})")
    report_worktree_create(result)


@agent.command("list")
@click.option("--status", type=click.Choice(STATUSES, case_sensitive=False), help="Only agents in this status.")
@click.option("--template", shell_complete=complete_templates, help="Only agents built from this template.")
@click.option("-o", "--output", "output_format", type=click.Choice(["table", "wide"]), default="table",
              help="wide: add each git worktree's branch, ahead/behind and changes.")  # fmt: skip
@json_option
@pass_app
def list_(app: AppContext, status: str | None, template: str | None, output_format: str) -> None:
    """List agents."""
    params: dict[str, Any] = {k: v for k, v in (("status", status), ("template", template)) if v is not None}
    if output_format == "wide":
        params["wide"] = True
    result = app.call("agent.list", params)
    agents = result.get("agents") or []
    view = wide_table if output_format == "wide" else agent_table
    app.emit(result, view(agents) if agents else "no agents")


@agent.command()
@NAME
@json_option
@pass_app
def status(app: AppContext, name: str) -> None:
    """Show an agent's state, process figures and last exit."""
    result = app.call("agent.status", {"name": name})
    app.emit(result, agent_details(_agent_of(result)) + worktree_details(_agent_of(result)))


@agent.command()
@NAME
@click.option("--no-wait", is_flag=True, help="Return once the start is under way instead of when it is Running.")
@json_option
@pass_app
def start(app: AppContext, name: str, no_wait: bool) -> None:
    """Start an agent and wait until it is Running."""
    if not no_wait:
        progress(f"starting {name}…")
    result = app.call("agent.start", {"name": name, "wait": not no_wait}, timeout=LIFECYCLE_TIMEOUT)
    if app.json:
        print_json(result)
        return
    record = _agent_of(result)
    if record.get("status") == Status.RUNNING:
        click.echo(f"started {name} (pid {text(record.get('pid'))})")
    else:
        click.echo(f"starting {name} ({text(record.get('status'))})")


@agent.command()
@NAME
@click.option("--timeout", "stop_timeout", type=click.FloatRange(min=0), help="Seconds before SIGKILL.")
@json_option
@pass_app
def stop(app: AppContext, name: str, stop_timeout: float | None) -> None:
    """Stop an agent and every process it started."""
    params: dict[str, Any] = {"name": name}
    if stop_timeout is not None:
        params["timeoutSeconds"] = stop_timeout
    wait = LIFECYCLE_TIMEOUT if stop_timeout is None else stop_timeout + MARGIN
    result = app.call("agent.stop", params, timeout=wait)
    app.emit(result, f"stopped {name}")


@agent.command()
@NAME
@json_option
@pass_app
def restart(app: AppContext, name: str) -> None:
    """Stop an agent if it runs, then start it again."""
    progress(f"restarting {name}…")
    result = app.call("agent.restart", {"name": name}, timeout=LIFECYCLE_TIMEOUT)
    app.emit(result, f"restarted {name} (pid {text(_agent_of(result).get('pid'))})")


@agent.command()
@NAME
@click.option("--force", is_flag=True, help="Stop it first if it runs; succeed if it does not exist.")
@json_option
@pass_app
def destroy(app: AppContext, name: str, force: bool) -> None:
    """Remove an agent and the files Actant made for it (never your own files in --work-dir)."""
    result = app.call("agent.destroy", {"name": name, "force": force}, timeout=LIFECYCLE_TIMEOUT)
    if app.json:
        print_json(result)
    elif result.get("destroyed", True):
        click.echo(f"destroyed {name}")
    else:
        click.echo(f"{name} does not exist")


def _echo_lines(lines: Any) -> None:
    for line in lines if isinstance(lines, list) else []:
        click.echo(str(line).removesuffix("\n"))
    sys.stdout.flush()


@agent.command()
@NAME
@click.option("-n", "--lines", type=click.IntRange(min=0), help="How many of the last lines to show.")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines as they are written (Ctrl-C to stop).")
@click.option("--stderr", "use_stderr", is_flag=True, help="Show the agent's stderr instead of its stdout.")
@json_option
@pass_app
def logs(app: AppContext, name: str, lines: int | None, follow: bool, use_stderr: bool) -> None:
    """Print an agent's output log."""
    stream_name = "stderr" if use_stderr else "stdout"
    params: dict[str, Any] = {"name": name, "stream": stream_name}
    if lines is not None:
        params["lines"] = lines
    if not follow:
        result = app.call("agent.logs", params)
        if app.json:
            print_json(result)
        else:
            _echo_lines(result.get("lines"))
        return
    params["follow"] = True
    with contextlib.suppress(KeyboardInterrupt):
        stream = app.client().stream("agent.logs", params, "log")
        first = stream.result if isinstance(stream.result, dict) else {}
        if app.json:
            print_json_line({"agent": name, "stream": stream_name, "lines": first.get("lines") or []})
        else:
            _echo_lines(first.get("lines"))
        for note in stream:
            if app.json:
                print_json_line({k: v for k, v in note.items() if k != "subscription"})
            else:
                _echo_lines(note.get("lines"))


@agent.command()
@NAME
@json_option
@pass_app
def sync(app: AppContext, name: str) -> None:
    """Rebuild the agent's workspace files from the current configs."""
    result = app.call("agent.sync", {"name": name}, timeout=LIFECYCLE_TIMEOUT)
    app.emit(result, f"synced {name}")


@agent.command()
@NAME
@click.option("--pid", required=True, type=click.IntRange(min=1), help="The running process to supervise.")
@json_option
@pass_app
def attach(app: AppContext, name: str, pid: int) -> None:
    """Supervise a process Actant did not start."""
    result = app.call("agent.attach", {"name": name, "pid": pid})
    app.emit(result, f"attached {name} to pid {pid}")


@agent.command()
@NAME
@json_option
@pass_app
def detach(app: AppContext, name: str) -> None:
    """Stop supervising the agent's process without killing it."""
    result = app.call("agent.detach", {"name": name})
    app.emit(result, f"detached {name}")


agent.add_command(agent_diff.diff)  # issue #12: `agent diff`, in its own module
agent.add_command(agent_run.run)  # `agent run`, in its own module
agent.add_command(agent_prompt.prompt)  # `agent prompt`, in its own module
agent.add_command(agent_open.open_)  # `agent open`, in its own module
agent.add_command(agent_env.env)  # `agent env` (issue #8), in its own module
