"""``actantctl agent create|status|start|stop|restart|destroy|sync|attach|detach``: the instance lifecycle.

Each command is one RPC whose answer is printed as-is with ``--json`` or through :mod:`actantctl.views` for
people. Waiting happens on the daemon side (``agent.start`` with ``wait``) so the client holds no polling
loop and every client sees the same outcome. ``agent list`` lives in :mod:`actantctl.commands.agent_list`, so
the most frequent call does not build these commands.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

import click

from actantctl.commands.agent_worktree import report_worktree_create, worktree_options, worktree_params
from actantctl.commands.completion import complete_agents, complete_templates
from actantctl.context import AppContext, json_option, pass_app
from actantctl.environment import caller_env
from actantctl.output import print_json, text
from actantctl.views import STATUSES, agent_details
from actantctl.worktree_views import worktree_details

LIFECYCLE_TIMEOUT = 300.0
"""Start, stop and destroy wait for processes and templates' own timeouts, so they get longer than a query."""
MARGIN = 30.0
"""Added to a timeout the daemon enforces, so that the daemon's answer arrives before ours runs out."""

NAME = click.argument("name", shell_complete=complete_agents)
F = TypeVar("F", bound=Callable[..., Any])


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


@click.command()
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
    params: dict[str, Any] = {"name": name, "template": template, "callerEnv": caller_env()}
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
    if result.get("created") is False:
        click.echo(f"{name} already exists with these arguments; nothing changed ({text(record.get('status'))})")
        return
    click.echo(f"created {name} (template {text(record.get('templateRef', template))}, {text(record.get('status'))})")
    report_worktree_create(result)


@click.command()
@NAME
@json_option
@pass_app
def status(app: AppContext, name: str) -> None:
    """Show an agent's state, process figures and last exit."""
    result = app.call("agent.status", {"name": name})
    app.emit(result, agent_details(_agent_of(result)) + worktree_details(_agent_of(result)))


NAMES = click.argument("names", nargs=-1, metavar="[NAME]...", shell_complete=complete_agents)


def _selectors(func: F) -> F:
    """``--all``, ``--template``, ``--status``: the targets of a lifecycle command besides its names."""
    func = click.option(
        "--status",
        "status_filter",
        type=click.Choice(STATUSES, case_sensitive=False),
        help="Every agent in this status.",
    )(func)
    func = click.option(
        "--template", "template_filter", shell_complete=complete_templates, help="Every agent built from this template."
    )(func)
    return click.option("-a", "--all", "all_", is_flag=True, help="Every agent.")(func)


def _targets(
    app: AppContext, names: tuple[str, ...], all_: bool, template: str | None, status: str | None
) -> tuple[list[str], bool]:
    """The target names, and whether this is the one-agent form (one name, no selector)."""
    status = next((s for s in STATUSES if status and s.lower() == status.lower()), status)
    single = len(names) == 1 and not (all_ or template or status)
    from actantctl.commands import lifecycle  # only the lifecycle commands pay for it

    return lifecycle.select_targets(app, names, all_, template, status), single


@click.command()
@NAMES
@_selectors
@click.option("--no-wait", is_flag=True, help="Return once the start is under way instead of when it is Running.")
@json_option
@pass_app
def start(
    app: AppContext,
    names: tuple[str, ...],
    all_: bool,
    template_filter: str | None,
    status_filter: str | None,
    no_wait: bool,
) -> None:
    """Start agents and wait until each is Running (or says why not).

    Several names, --all, --template or --status start many at once, one line each; the exit status is
    non-zero if any failed. A program that exits during the start check is reported as exited.
    """
    from actantctl.commands import lifecycle
    from actantctl.commands.lifecycle import Outcome

    targets, single = _targets(app, names, all_, template_filter, status_filter)
    env = caller_env()

    def one(name: str) -> Outcome:
        params: dict[str, Any] = {"name": name, "wait": not no_wait, "callerEnv": env}
        result = app.call("agent.start", params, timeout=LIFECYCLE_TIMEOUT)
        pending = result.get("restartPending") is True
        return lifecycle.start_outcome(name, _agent_of(result), waited=not no_wait, restart_pending=pending)

    lifecycle.finish(app, "start", targets, one, single=single, limit=None)


@click.command()
@NAMES
@_selectors
@click.option("--timeout", "stop_timeout", type=click.FloatRange(min=0), help="Seconds before SIGKILL.")
@json_option
@pass_app
def stop(
    app: AppContext,
    names: tuple[str, ...],
    all_: bool,
    template_filter: str | None,
    status_filter: str | None,
    stop_timeout: float | None,
) -> None:
    """Stop agents and every process they started (several names, --all, --template, --status)."""
    from actantctl.commands import lifecycle
    from actantctl.commands.lifecycle import Outcome

    targets, single = _targets(app, names, all_, template_filter, status_filter)
    params: dict[str, Any] = {}
    if stop_timeout is not None:
        params["timeoutSeconds"] = stop_timeout
    wait = LIFECYCLE_TIMEOUT if stop_timeout is None else stop_timeout + MARGIN

    def one(name: str) -> Outcome:
        result = app.call("agent.stop", {"name": name, **params}, timeout=wait)
        record = _agent_of(result)
        return lifecycle.Outcome(name, True, f"stopped {name}", {"name": name, "ok": True, "agent": record,
                                 "raw": result})  # fmt: skip

    lifecycle.finish(app, "stop", targets, one, single=single, limit=stop_timeout)


@click.command()
@NAMES
@_selectors
@json_option
@pass_app
def restart(
    app: AppContext, names: tuple[str, ...], all_: bool, template_filter: str | None, status_filter: str | None
) -> None:
    """Stop agents if they run, then start them again (several names, --all, --template, --status)."""
    from actantctl.commands import lifecycle
    from actantctl.commands.lifecycle import Outcome

    targets, single = _targets(app, names, all_, template_filter, status_filter)
    env = caller_env()

    def one(name: str) -> Outcome:
        result = app.call("agent.restart", {"name": name, "callerEnv": env}, timeout=LIFECYCLE_TIMEOUT)
        pending = result.get("restartPending") is True
        return lifecycle.start_outcome(name, _agent_of(result), waited=True, verb="restarted", restart_pending=pending)

    lifecycle.finish(app, "restart", targets, one, single=single, limit=None)


@click.command()
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


@click.command()
@NAME
@json_option
@pass_app
def sync(app: AppContext, name: str) -> None:
    """Rebuild the agent's workspace files from the current configs."""
    result = app.call("agent.sync", {"name": name}, timeout=LIFECYCLE_TIMEOUT)
    app.emit(result, f"synced {name}")


@click.command()
@NAME
@click.option("--pid", required=True, type=click.IntRange(min=1), help="The running process to supervise.")
@json_option
@pass_app
def attach(app: AppContext, name: str, pid: int) -> None:
    """Supervise a process Actant did not start."""
    result = app.call("agent.attach", {"name": name, "pid": pid})
    app.emit(result, f"attached {name} to pid {pid}")


@click.command()
@NAME
@json_option
@pass_app
def detach(app: AppContext, name: str) -> None:
    """Stop supervising the agent's process without killing it."""
    result = app.call("agent.detach", {"name": name})
    app.emit(result, f"detached {name}")
