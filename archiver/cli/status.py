"""``sentry-archiver status``: what the archive holds and how its syncs are going."""

from __future__ import annotations

import json
import sys

import click

from archiver.cli.options import config_option, db_option
from archiver.config import settings_from_options
from archiver.operations.status import collect_status, format_status
from archiver.storage.db import open_archive


@click.command("status")
@db_option
@config_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object, for scripts.")
def status_command(db: str | None, config_file: str | None, as_json: bool) -> None:
    """Show what the archive holds per project and how its syncs are going.

    \b
    Examples:
      sentry-archiver status
      sentry-archiver status --db postgresql://archiver@db.internal/sentry
      sentry-archiver status --json | jq .last_success
    """
    settings = settings_from_options({"db": db, "config_file": config_file})
    engine = open_archive(settings.db, readonly=True)
    try:
        status = collect_status(engine)
    finally:
        engine.dispose()
    if as_json:
        json.dump(status, sys.stdout, indent=2, sort_keys=False)
        sys.stdout.write("\n")
    else:
        click.echo(format_status(status))
