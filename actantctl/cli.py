"""The ``actantctl`` root group: global options, lazy sub-groups, and the one place failures become exit codes.

Sub-groups are imported only when named, so ``actantctl agent list`` loads the agent module and nothing else;
every command raises (typed daemon errors, :class:`ClientError`, :class:`Failure`) and :meth:`RootGroup.invoke`
turns that into the stderr line, the ``--json`` error document and the exit status.

What every command pays before its own module loads is kept to click, ``json``, ``socket`` and the stdlib-only
daemon modules: no ``pathlib`` or ``dataclasses`` (``python -X importtime -m actantctl ...`` shows the rest,
and the README's benchmark notes say what the floor is).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from actantctl.client import ClientError
from actantctl.context import AppContext
from actantctl.lazy import LazyGroup
from actantctl.output import EXIT_INTERRUPTED, Failure, fail, report_error
from actantd import __version__
from actantd.errors import ActantError
from actantd.paths import socket_path as socket_path_of

if TYPE_CHECKING:
    from pathlib import Path

COMMANDS: dict[str, str] = {
    "daemon": "actantctl.commands.daemon:daemon",
    "agent": "actantctl.commands.agent:agent",
    "template": "actantctl.commands.catalog:template",
    "skill": "actantctl.commands.catalog:skill",
    "prompt": "actantctl.commands.catalog:prompt",
    "workflow": "actantctl.commands.catalog:workflow",
    "mcp": "actantctl.commands.catalog:mcp",
    "backend": "actantctl.commands.catalog:backend",
    "config": "actantctl.commands.config:config",
    "events": "actantctl.commands.events:events",
    "history": "actantctl.commands.history:history",
    "top": "actantctl.commands.top:top",
    "completion": "actantctl.commands.completion:completion",
}
"""Command name → ``module:attribute``; the module is imported on first use."""


class RootGroup(LazyGroup):
    """The sub-groups of :data:`COMMANDS`, listed in that order (not sorted), and the exit-status rules."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, lazy=COMMANDS, **kwargs)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (ActantError, ClientError) as exc:
            app = ctx.find_object(AppContext)
            ctx.exit(report_error(exc, app.json if app is not None else False))
        except KeyboardInterrupt:
            # Ctrl-C: the conventional 128 + SIGINT, silently (the user knows why), before click turns it into
            # "Aborted!" and 1.
            ctx.exit(EXIT_INTERRUPTED)
        except Failure as exc:
            if exc.message:
                fail(exc.message)
            ctx.exit(exc.exit_code)


def _path(value: str | None) -> Path | None:
    if not value:
        return None
    from pathlib import Path  # only with --home or --configs

    return Path(value).expanduser().absolute()


@click.group(cls=RootGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--socket",
    "socket_path",
    metavar="PATH",
    help="Daemon socket (default: $ACTANT_SOCKET, $XDG_RUNTIME_DIR/actant/actantd.sock, or HOME/actantd.sock).",
)
@click.option(
    "--home",
    metavar="DIR",
    help="Actant state directory (default: $ACTANT_HOME, else $XDG_STATE_HOME/actant, else ~/.local/state/actant).",
)
@click.option("--configs", metavar="DIR", help="Configs folder, passed to the daemon by `daemon start`.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), help="Seconds to wait for each answer.")
@click.option(
    "--json", "json_output", is_flag=True, help="Print JSON instead of tables (each command's --help says the shape)."
)
@click.version_option(__version__, "-V", "--version", prog_name="actantctl")
@click.pass_context
def cli(
    ctx: click.Context,
    socket_path: str | None,
    home: str | None,
    configs: str | None,
    timeout: float | None,
    json_output: bool,
) -> None:
    """Control actantd, the supervisor of AI coding agents."""
    ctx.obj = AppContext(
        socket=socket_path_of(socket_path, home),
        home=_path(home),
        configs=_path(configs),
        json=json_output,
        timeout=timeout,
    )


def main() -> None:
    cli.main(prog_name="actantctl")
