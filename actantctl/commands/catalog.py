"""``actantctl template|skill|prompt|workflow|mcp|backend list|show`` and ``template validate``.

The six config kinds share one protocol shape (``X.list`` → ``{items}``, ``X.get {name}`` → ``{item, file}``),
so one factory builds their groups and they cannot drift apart.
"""

from __future__ import annotations

import os

import click

from actantctl.commands.completion import complete_catalog
from actantctl.context import AppContext, json_option, pass_app
from actantctl.output import Failure, print_json
from actantctl.views import catalog_table, invalid_reason, item_details, validation_report


def catalog_group(kind: str, plural: str) -> click.Group:
    @click.group(name=kind, help=f"Browse the {plural} in the configs folder.")
    def group() -> None:
        pass

    @group.command("list", help=f"List {plural}.")
    @json_option
    @pass_app
    def list_(app: AppContext) -> None:
        result = app.call(f"{kind}.list")
        if app.json:
            print_json(result)
            return
        items = result.get("items") or []
        click.echo(catalog_table(items) if items else f"no {plural}")

    @group.command("show", help=f"Show one {kind}'s full config.")
    @click.argument("name", shell_complete=complete_catalog(kind))
    @json_option
    @pass_app
    def show(app: AppContext, name: str) -> None:
        result = app.call(f"{kind}.get", {"name": name})
        app.emit(result, item_details(result.get("item") or {}, result.get("file")))

    return group


template = catalog_group("template", "templates")
skill = catalog_group("skill", "skills")
prompt = catalog_group("prompt", "prompts")
workflow = catalog_group("workflow", "workflows")
mcp = catalog_group("mcp", "MCP servers")
backend = catalog_group("backend", "backends")


@template.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@json_option
@pass_app
def validate(app: AppContext, file: str) -> None:
    """Check a template file against the schema and the configs it references."""
    path = os.path.abspath(file)  # the daemon's working directory is not ours
    result = app.call("template.validate", {"path": path})
    app.emit(result, validation_report(result, file))
    problem = invalid_reason(result, file)
    if problem:
        raise Failure(problem)
