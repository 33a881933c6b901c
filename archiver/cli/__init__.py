"""The ``sentry-archiver`` command line: one clear thing per command.

This module holds the group, the mapping of our errors to one line on stderr and the documented
exit code, and :func:`main`. Each command lives in a module of its own beside it and is added
here by name and imported when first used (the command modules never import this one, so there
is no circle).
The options several commands share are declared once, in :mod:`archiver.cli.options`.
Commands parse options and print; what they do is in :mod:`archiver.operations` and
:mod:`archiver.sync`, which know nothing of click.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Mapping
from typing import Any, NoReturn

import click

from archiver import __version__
from archiver.cli import exiting
from archiver.errors import ArchiverError

__all__ = ["cli", "main"]


def fail(exc: ArchiverError) -> NoReturn:
    """Report ``exc`` as one line (unless it was already logged) and exit with its code."""
    if not exc.logged:  # already a JSON log line (--log-format json)
        click.echo(f"error: {exc}", err=True)
    sys.exit(int(exc.exit_code))


# Each command's module, imported when the command is looked up: a ``sync`` does not load the
# scheduler (APScheduler), the simulator behind ``demo`` (an HTTP server) or the other
# commands' operations, about 4 MB of the sync process's memory.
LAZY_COMMANDS: dict[str, tuple[str, str]] = {
    "db": ("archiver.cli.db", "db_group"),
    "sync": ("archiver.cli.sync", "sync_command"),
    "demo": ("archiver.cli.demo", "demo_command"),
    "purge": ("archiver.cli.purge", "purge_command"),
    "archive-event": ("archiver.cli.archive_event", "archive_event_command"),
    "export": ("archiver.cli.export", "export_command"),
    "datasette-metadata": ("archiver.cli.datasette", "datasette_metadata_command"),
    "status": ("archiver.cli.status", "status_command"),
    "schedule": ("archiver.cli.schedule", "schedule_command"),
    "config": ("archiver.cli.config", "config_group"),
}


class ArchiverGroup(click.Group):
    """Turns our errors into one clean line on stderr and the documented exit code.

    Commands are registered by name and their modules imported on first use
    (:data:`LAZY_COMMANDS`); :meth:`load_all` registers every one (``commands`` then holds
    them all).
    """

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in LAZY_COMMANDS:
            module, name = LAZY_COMMANDS[cmd_name]
            command = getattr(importlib.import_module(module), name)
            self.add_command(command, cmd_name)
        return super().get_command(ctx, cmd_name)

    def load_all(self) -> Mapping[str, click.Command]:
        """Every command, imported and registered: ``commands`` complete."""
        ctx = click.Context(self)
        for cmd_name in LAZY_COMMANDS:
            self.get_command(ctx, cmd_name)
        return self.commands

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ArchiverError as exc:
            fail(exc)


@click.group(cls=ArchiverGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="sentry-archiver")
def cli() -> None:
    """Keep a permanent, queryable copy of a Sentry organization's events.

    Every option naming the server or the archive can also come from the environment
    (names as sentry-cli's) or from a TOML config file; options win over the environment,
    the environment over the file.

    \b
    Environment:
      SENTRY_URL                  Sentry server (default https://sentry.io/)
      SENTRY_AUTH_TOKEN           auth token (never stored, never logged)
      SENTRY_ORG                  organization slug
      SENTRY_PROJECT              project slugs or ids, space or comma separated
      SENTRY_ARCHIVER_DB          database URL (default sqlite:///sentry-archive.db)
      SENTRY_ARCHIVER_CONFIG      config file (default ./sentry-archiver.toml if present)
      SENTRY_ARCHIVER_SCRUB_KEY   key of the hashes of scrubbed personal data

    \b
    Exit codes:
      0    success (schedule: stopped by SIGTERM/SIGINT; sync: also when another
           sync took a project over and finished it, "handed over")
      1    an unexpected error (a bug: please report it)
      2    bad options or configuration
      3    partial: some issues could not be archived (retried next run)
      4    the token was refused (401/403) or lacks a scope
      5    another run holds the archive's lock (or this run lost it)
      6    the server kept failing beyond the retry budget
      7    the database cannot be opened or its schema is not up to date
      130  interrupted by SIGINT/SIGTERM after committing its last page

    \b
    Examples:
      sentry-archiver demo
      SENTRY_ORG=my-org SENTRY_AUTH_TOKEN=sntrys_... sentry-archiver sync
      sentry-archiver sync --help
    """


def main() -> None:
    """The console script's entry point."""
    exiting.reset()
    try:
        cli(prog_name="sentry-archiver")
    except SystemExit as exc:
        exiting.end_now(exc)  # a sync ends here, its work saved (:mod:`.exiting`)
        raise


if __name__ == "__main__":
    main()
