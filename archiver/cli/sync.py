"""``sentry-archiver sync``: archive the organization's events (incremental and resumable)."""

from __future__ import annotations

import sys

import click

from archiver.cli import exiting
from archiver.cli.options import (
    output_options,
    remote_options,
    sync_options,
)
from archiver.config import settings_from_options
from archiver.sync.prestart import start_archive_upgrade, start_fork_server


@click.command("sync")
@remote_options()
@sync_options
@output_options
def sync_command(quiet: bool, verbose: int, log_format: str, **options: object) -> None:
    """Archive the organization's events (incremental and resumable).

    The first run archives everything the server still holds; later runs fetch only what is
    new. Stopped at any moment, the next run resumes where it was.

    \b
    Examples:
      sentry-archiver sync --org my-org --db postgresql://archiver@db.internal/sentry
      sentry-archiver sync --project backend --project frontend --earliest 2024-01-01
      sentry-archiver sync -q --log-format json    # under cron: JSON lines, errors only
    """
    settings = settings_from_options(options)
    exiting.allow()  # the run saves all it does before it returns or raises
    # before the engine's imports: the workers' server imports on the other core meanwhile
    start_fork_server(settings.workers)
    start_archive_upgrade(settings)  # a first run's schema: built while the rest imports
    from archiver.sync.runner import run_sync

    report = run_sync(settings, quiet=quiet, verbosity=verbose, log_format=log_format)
    sys.exit(int(report.exit_code))
