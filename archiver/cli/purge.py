"""``sentry-archiver purge``: delete archived events older than a cutoff, audited in ``purges``.

The deleting is :func:`archiver.operations.purge.purge`; this module asks for confirmation,
takes the run lock and reports.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Sequence

import click
from sqlalchemy import Engine

from archiver.cli.options import ShownDefault, config_option, db_option
from archiver.config import Settings, parse_retention, settings_from_options
from archiver.errors import ConfigError
from archiver.operations.purge import (
    DEFAULT_BATCH,
    database_size,
    describe,
    project_slugs,
    purge,
)
from archiver.storage import lock as run_lock
from archiver.storage.db import open_archive


def _command_line(
    older_than: str, projects: Sequence[str], dry_run: bool, vacuum: bool, batch_size: int
) -> str:
    """The purge as typed, for the ``purges`` row's ``command``."""
    parts = ["purge", "--older-than", older_than]
    for p in projects:
        parts += ["--project", p]
    if dry_run:
        parts.append("--dry-run")
    if vacuum:
        parts.append("--vacuum")
    if batch_size != DEFAULT_BATCH:
        parts += ["--batch-size", str(batch_size)]
    return " ".join(parts)


def _stdin_is_tty() -> bool:
    """Whether a person can answer a prompt (a seam for the tests)."""
    return sys.stdin.isatty()


def _confirmed(
    engine: Engine, age: dt.timedelta, settings: Settings, projects: Sequence[str]
) -> bool:
    """Ask a person at a terminal, showing how many events would go.

    Off a terminal (cron, a script, a pipe) nobody can answer, and deleting silently is what
    destroys archives by mistake: without ``--yes`` the purge is refused (exit 2) before it
    deletes anything, so a crontab line must say ``--yes`` on purpose.
    """
    counted = purge(
        engine,
        age,
        retention_minimum=settings.retention_minimum,
        projects=projects,
        dry_run=True,
    )
    if not _stdin_is_tty():
        raise ConfigError(
            f"refusing to delete {counted.events} events without confirmation: stdin is not a "
            "terminal; pass --yes (for cron and scripts) or --dry-run"
        )
    return click.confirm(
        f"delete {counted.events} events dated before {counted.cutoff.isoformat()}?",
        default=False,
    )


@click.command("purge")
@click.option(
    "--older-than",
    required=True,
    help="Delete events created longer ago than this: days, weeks, months or years "
    "(400d, 60w, 6mo, 1y).",
)
@click.option(
    "--project",
    "projects",
    multiple=True,
    help="Only this project (slug or id, as archived); repeatable.",
    show_default="all",
    cls=ShownDefault,
)
@click.option("--dry-run", is_flag=True, help="Only count what would be deleted; change nothing.")
@click.option(
    "--vacuum", is_flag=True, help="Afterwards reclaim the space (SQLite: VACUUM shrinks the file)."
)
@click.option(
    "--batch-size",
    type=int,
    default=DEFAULT_BATCH,
    show_default=True,
    help="Events deleted per transaction.",
)
@click.option(
    "--yes",
    "-y",
    is_flag=True,
    help="Delete without asking (required when stdin is not a terminal: cron, scripts).",
)
@db_option
@config_option
def purge_command(
    older_than: str,
    projects: tuple[str, ...],
    dry_run: bool,
    vacuum: bool,
    batch_size: int,
    yes: bool,
    db: str | None,
    config_file: str | None,
) -> None:
    """Delete archived events older than a cutoff, with their child rows; audited in `purges`.

    The config file's [retention] minimum is enforced.

    \b
    Examples:
      sentry-archiver purge --older-than 400d --dry-run
      sentry-archiver purge --older-than 1y --project web --yes --vacuum
    """
    settings = settings_from_options({"db": db, "config_file": config_file})
    age = parse_retention(older_than)
    engine = open_archive(settings.db, missing="nothing to purge")
    try:
        if not dry_run and not yes and not _confirmed(engine, age, settings, projects):
            click.echo("nothing deleted")
            return
        before = database_size(settings.db)
        result = purge(
            engine,
            age,
            retention_minimum=settings.retention_minimum,
            projects=projects,
            dry_run=dry_run,
            batch_size=batch_size,
            vacuum=vacuum and not dry_run,
            command=_command_line(older_than, projects, dry_run, vacuum, batch_size),
            lock=run_lock.acquire(engine, "purge"),  # never while a sync writes
        )
        slugs = project_slugs(engine)
    finally:
        engine.dispose()
    click.echo(describe(result, slugs))
    if result.purge_id is not None:
        click.echo(f"recorded as purge #{result.purge_id} in the purges table")
    if result.vacuumed:
        after = database_size(settings.db)
        if before is not None and after is not None:
            click.echo(f"vacuumed: {before:,} -> {after:,} bytes")
        else:
            click.echo("vacuumed the event tables")
