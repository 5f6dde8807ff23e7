"""State shared by every command: where the daemon is and how to print.

Kept apart from ``cli.py`` so command modules can import it without importing the root group (which loads
them lazily).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click

from actantctl.client import DEFAULT_TIMEOUT, Client
from actantctl.output import print_json

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class AppContext:
    socket: Path
    home: Path | None = None
    configs: Path | None = None
    json: bool = False
    timeout: float | None = None
    """``--timeout`` from the command line; when unset each command picks a default suited to its work."""

    def client(self, timeout: float | None = DEFAULT_TIMEOUT) -> Client:
        return Client(self.socket, self.timeout if self.timeout is not None else timeout)

    def call(
        self, method: str, params: dict[str, Any] | None = None, *, timeout: float | None = DEFAULT_TIMEOUT
    ) -> Any:
        """One request on a fresh connection: what almost every command needs."""
        with self.client(timeout) as client:
            return client.call(method, params)

    def emit(self, result: Any, human: str) -> None:
        """The one output rule of a command: its result as one JSON document with --json, else ``human``."""
        if self.json:
            print_json(result)
        else:
            click.echo(human)


pass_app = click.make_pass_decorator(AppContext)


def _set_json(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    app = ctx.find_object(AppContext)
    if value and app is not None:
        app.json = True


JSON_HELP = "Print the result as one JSON document instead of a table."
JSON_STREAM_HELP = "Print JSON: one document; with -f, one object per line as they come."


def _json_flag(func: F, help_text: str) -> F:
    return click.option("--json", "json_output", is_flag=True, expose_value=False, callback=_set_json, help=help_text)(
        func
    )


def json_option(func: F) -> F:
    """``--json`` on a command; the root group accepts it too, so either position works."""
    return _json_flag(func, JSON_HELP)


def json_stream_option(func: F) -> F:
    """``--json`` on a command that follows (``-f``): only these print one object per line."""
    return _json_flag(func, JSON_STREAM_HELP)
