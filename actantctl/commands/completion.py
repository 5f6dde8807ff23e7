"""``actantctl completion bash|zsh|fish`` and the dynamic completers for agent and config names.

The printed script is click's own, driven by ``_ACTANTCTL_COMPLETE``; completers ask the daemon with a short
timeout and complete nothing rather than fail when it is not running.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from actantctl.context import AppContext, json_option, pass_app
from actantctl.output import print_json
from actantd.paths import socket_path

SHELLS = ("bash", "zsh", "fish")
COMPLETE_VAR = "_ACTANTCTL_COMPLETE"
PROG_NAME = "actantctl"
COMPLETION_TIMEOUT = 1.0


def _names(ctx: click.Context, method: str, key: str, incomplete: str) -> list[str]:
    # Completion parses without running callbacks, so the root's AppContext does not exist: rebuild the socket.
    root = ctx.find_root().params
    app = AppContext(socket=socket_path(root.get("socket_path"), root.get("home")))
    try:
        result = app.call(method, {}, timeout=COMPLETION_TIMEOUT)
    except Exception:
        return []
    items = result.get(key) if isinstance(result, dict) else None
    names = [i.get("name") for i in items or [] if isinstance(i, dict)]
    return [n for n in names if isinstance(n, str) and n.startswith(incomplete)]


def complete_agents(ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[str]:
    return _names(ctx, "agent.list", "agents", incomplete)


def complete_catalog(kind: str) -> Callable[[click.Context, click.Parameter, str], list[str]]:
    def complete(ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[str]:
        return _names(ctx, f"{kind}.list", "items", incomplete)

    return complete


complete_templates = complete_catalog("template")


@click.command()
@click.argument("shell", type=click.Choice(SHELLS))
@json_option
@pass_app
@click.pass_context
def completion(ctx: click.Context, app: AppContext, shell: str) -> None:
    """Print the shell completion script for SHELL.

    Load it with: eval "$(actantctl completion bash)"
    """
    from click.shell_completion import get_completion_class

    cls = get_completion_class(shell)
    assert cls is not None  # SHELLS lists only shells click supports
    source: Any = cls(ctx.find_root().command, {}, PROG_NAME, COMPLETE_VAR).source()
    if app.json:
        print_json({"shell": shell, "script": source})
    else:
        click.echo(source, nl=False)
