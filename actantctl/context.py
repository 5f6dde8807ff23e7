"""State shared by every command: where the daemon is and how to print.

Kept apart from ``cli.py`` so command modules can import it without importing the root group (which loads
them lazily). A plain class, and the socket kept as the string the client connects to: every command pays
for this module, and ``dataclasses`` or ``pathlib`` would add milliseconds to each ``actantctl`` call.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from actantctl.client import DEFAULT_TIMEOUT, Client
from actantctl.output import print_json

if TYPE_CHECKING:
    from pathlib import Path

F = TypeVar("F", bound=Callable[..., Any])


class AppContext:
    """Where the daemon is (``socket_path``; ``socket`` is the same as a ``Path``), ``--home``/``--configs``
    as given, ``--json``, and ``--timeout`` (when unset each command picks a default suited to its work)."""

    __slots__ = ("configs", "home", "json", "socket_path", "timeout")

    def __init__(
        self,
        socket: str | os.PathLike[str],
        home: Path | None = None,
        configs: Path | None = None,
        json: bool = False,
        timeout: float | None = None,
    ) -> None:
        self.socket_path = os.fspath(socket)
        self.home = home
        self.configs = configs
        self.json = json
        self.timeout = timeout

    @property
    def socket(self) -> Path:
        from pathlib import Path  # only the daemon commands need one

        return Path(self.socket_path)

    def __repr__(self) -> str:
        return (
            f"AppContext(socket={self.socket_path!r}, home={self.home!r}, configs={self.configs!r}, "
            f"json={self.json!r}, timeout={self.timeout!r})"
        )

    def client(self, timeout: float | None = DEFAULT_TIMEOUT) -> Client:
        return Client(self.socket_path, self.timeout if self.timeout is not None else timeout)

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
