"""``sentry-archiver schedule``: run the sync on a cron expression or an interval, forever.

The scheduling is :class:`archiver.operations.scheduler.SyncScheduler`; this module reads the
options (every option of ``sync``, from the shared decorators) and runs it until a signal.
"""

from __future__ import annotations

import sys

import click

from archiver.cli.options import output_options, remote_options, sync_options
from archiver.errors import ExitCode
from archiver.operations.scheduler import (
    SyncScheduler,
    describe_trigger,
    make_trigger,
    schedule_settings,
    setup_schedule_logging,
    sync_run,
)


@click.command("schedule")
@click.option(
    "--cron", help="Run on this cron expression (5 fields, local time), e.g. '0 3 * * *'."
)
@click.option("--every", help="Run at this interval, e.g. 6h, 30m (at least 1s).")
@click.option("--now", "run_now", is_flag=True, help="Also run once at start.")
@remote_options()
@sync_options
@output_options
def schedule_command(
    run_now: bool, quiet: bool, verbose: int, log_format: str, **options: object
) -> None:
    """Run the sync on a schedule until SIGTERM/SIGINT (exit 0) or a refused token (exit 4).

    Takes every option of `sync`. The schedule can also come from the config file's [schedule]
    section. A run still going when the next is due is not started twice.

    \b
    Examples:
      sentry-archiver schedule --cron '0 3 * * *'
      sentry-archiver schedule --every 6h --now --log-format json
    """
    settings = schedule_settings(dict(options))
    settings.require_remote()
    trigger = make_trigger(settings.schedule_cron, settings.schedule_every)
    setup_schedule_logging(settings, quiet=quiet, verbosity=verbose, log_format=log_format)
    scheduler = SyncScheduler(
        trigger,
        sync_run(settings),
        run_now=run_now,
        description=describe_trigger(settings.schedule_cron, settings.schedule_every),
    )
    scheduler.run_forever()
    sys.exit(int(ExitCode.OK))
