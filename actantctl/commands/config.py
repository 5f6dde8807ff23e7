"""``actantctl config validate|migrate``: checks and upgrades of the whole configs folder, done by the daemon
(it owns the schemas and the migration steps; the client only shows the outcome)."""

from __future__ import annotations

import click

from actantctl.context import AppContext, json_option, pass_app
from actantctl.output import Failure, print_json, text
from actantctl.views import invalid_reason, validation_report

MIGRATE_TIMEOUT = 120.0
SUBJECT = "configs"


@click.group()
def config() -> None:
    """Validate and migrate the configs folder."""


@config.command()
@json_option
@pass_app
def validate(app: AppContext) -> None:
    """Check every config file; exit 1 if any is invalid."""
    result = app.call("config.validate")
    app.emit(result, validation_report(result, SUBJECT))
    problem = invalid_reason(result, SUBJECT)
    if problem:
        raise Failure(problem)


@config.command()
@click.option("--dry-run", is_flag=True, help="Show what would change without writing anything.")
@json_option
@pass_app
def migrate(app: AppContext, dry_run: bool) -> None:
    """Upgrade config files written for older versions (backing them up first)."""
    result = app.call("config.migrate", {"dryRun": dry_run}, timeout=MIGRATE_TIMEOUT)
    if app.json:
        print_json(result)
        return
    changes = result.get("changes") or []
    for change in changes:
        click.echo(f"{text(change.get('file'))}: {text(change.get('from'))} → {text(change.get('to'))}")
    if not changes:
        click.echo("nothing to migrate")
    elif dry_run:
        click.echo(f"would migrate {len(changes)} file(s) (dry run, nothing written)")
    else:
        backup = result.get("backup")
        click.echo(f"migrated {len(changes)} file(s)" + (f", originals backed up to {backup}" if backup else ""))
