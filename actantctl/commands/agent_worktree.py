"""``agent create --repo PATH [--branch B] [--base REF]``: the options, their params, and what create prints.

Kept in its own module so ``agent.py``'s create command carries one decorator and two calls for it. The
repository path is resolved here, on the client side, like ``--work-dir``: the daemon may run with another
working directory.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import click

from actantctl.output import Failure, text, warn

F = TypeVar("F", bound=Callable[..., Any])


def worktree_options(func: F) -> F:
    func = click.option(
        "--base", metavar="REF", help="Branch, tag or commit the new branch starts from (default: the repo's HEAD)."
    )(func)
    func = click.option("--branch", metavar="B", help="Branch for the agent's worktree (default: actant/NAME).")(func)
    func = click.option(
        "--repo",
        type=click.Path(file_okay=False),
        help="Make the workspace a new git worktree of this repository (one branch per agent).",
    )(func)
    return func


def worktree_params(options: Mapping[str, str | None]) -> dict[str, Any]:
    repo, branch, base = options.get("repo"), options.get("branch"), options.get("base")
    if repo is None:
        if branch is not None or base is not None:
            raise click.UsageError("--branch and --base need --repo")
        return {}
    params: dict[str, Any] = {"repo": os.path.abspath(os.path.expanduser(repo))}
    if branch is not None:
        params["branch"] = branch
    if base is not None:
        params["base"] = base
    return params


def report_worktree_create(result: Mapping[str, Any]) -> None:
    """Warnings (a dirty HEAD), the branch line, and a failed setup command as the command's failure."""
    for message in result.get("warnings") or []:
        warn(str(message))
    record = result.get("agent") if isinstance(result.get("agent"), dict) else {}
    assert isinstance(record, dict)
    if record.get("repo"):
        click.echo(f"  branch {text(record.get('branch'))} from {text(record.get('base'))} of {record['repo']}")
    setup = record.get("setup")
    if record.get("status") == "Failed" and isinstance(setup, dict):
        tail = str(setup.get("outputTail") or "").rstrip("\n")
        if tail:
            click.echo(tail, err=True)
        what = "timed out" if setup.get("timedOut") else f"exited with code {text(setup.get('exitCode'))}"
        raise Failure(f"setup command {text(setup.get('argv'))} {what}; the agent is Failed (see agent status)")
