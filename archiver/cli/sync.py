"""``sentry-archiver sync``: archive the organization's events (incremental and resumable)."""

from __future__ import annotations

import sys

import click

from archiver.cli.options import (
    output_options,
    remote_options,
    sync_options,
)
from archiver.config import settings_from_options
from archiver.sync.runner import run_sync


@click.command("sync")
@remote_options()
@sync_options
@output_options
def sync_command(quiet: bool, verbose: int, log_format: str, **options: object) -> None:
    """Archive the organization's events (incremental and resumable)."""
    settings = settings_from_options(options)
    report = run_sync(settings, quiet=quiet, verbosity=verbose, log_format=log_format)
    sys.exit(int(report.exit_code))
