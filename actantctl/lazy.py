"""Click groups whose subcommands are imported when named: the pattern click documents for fast start-up.

Each group holds a table of name → ``module:attribute``; ``list_commands`` answers from the table, so
``--help`` and shell completion list every command (loading each to read its help), while running one
command imports that command's module and no other.
"""

from __future__ import annotations

import importlib
from typing import Any

import click


def load_command(target: str) -> click.Command:
    """The command at ``module:attribute``, importing its module."""
    module, attr = target.split(":")
    command = getattr(importlib.import_module(module), attr)
    assert isinstance(command, click.Command)
    return command


class LazyGroup(click.Group):
    """A group with ``lazy`` subcommands besides any added eagerly (``@group.command``)."""

    def __init__(self, *args: Any, lazy: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy: dict[str, str] = dict(lazy or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = self.lazy.get(cmd_name)
        if target is None:
            return super().get_command(ctx, cmd_name)
        return load_command(target)
