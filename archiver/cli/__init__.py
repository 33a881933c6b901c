"""The ``sentry-archiver`` command line: one clear thing per command."""

from __future__ import annotations

import sys
from typing import Any

import click

from archiver import __version__
from archiver.errors import ArchiverError, ExitCode
from archiver.storage import db

DB_OPTION_HELP = "Database URL (default: $SENTRY_ARCHIVER_DB or sqlite:///sentry-archive.db)."


def db_option(func: Any) -> Any:
    return click.option(
        "--db",
        "db_url",
        envvar="SENTRY_ARCHIVER_DB",
        default=db.DEFAULT_DB_URL,
        show_default=False,
        help=DB_OPTION_HELP,
    )(func)


def fail(exc: ArchiverError) -> None:
    if not exc.logged:  # already a JSON log line (--log-format json)
        click.echo(f"error: {exc}", err=True)
    sys.exit(int(exc.exit_code))


class ArchiverGroup(click.Group):
    """Turns our errors into one clean line on stderr and the documented exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ArchiverError as exc:
            fail(exc)


@click.group(cls=ArchiverGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="sentry-archiver")
def cli() -> None:
    """Keep a permanent, queryable copy of a Sentry organisation's events."""


@cli.group("db")
def db_group() -> None:
    """Create and inspect the archive's schema."""


@db_group.command("upgrade")
@db_option
@click.option("--revision", default="head", show_default=True, help="Target revision.")
def db_upgrade(db_url: str, revision: str) -> None:
    """Create the archive or bring its schema up to date."""
    engine = db.make_engine(db_url)
    before = db.current_revision(engine)
    db.upgrade(engine, revision)
    after = db.current_revision(engine)
    if before == after:
        click.echo(f"{db.safe_url(db_url)}: already at revision {after}")
    else:
        click.echo(f"{db.safe_url(db_url)}: upgraded {before or 'empty'} -> {after}")


@db_group.command("downgrade")
@db_option
@click.argument("revision")
def db_downgrade(db_url: str, revision: str) -> None:
    """Step the schema back to REVISION ('base' drops every table: the archive is lost)."""
    engine = db.make_engine(db_url)
    db.downgrade(engine, revision)
    click.echo(f"{db.safe_url(db_url)}: now at revision {db.current_revision(engine) or 'base'}")


@db_group.command("current")
@db_option
def db_current(db_url: str) -> None:
    """Print the database's schema revision and the newest this version knows."""
    engine = db.make_engine(db_url)
    current = db.current_revision(engine)
    head = db.head_revision()
    state = "up to date" if current == head else "needs: sentry-archiver db upgrade"
    click.echo(f"current: {current or 'none'}\nhead:    {head}\n{state}")


@db_group.command("check")
@db_option
def db_check(db_url: str) -> None:
    """Fail (exit 7) unless the database matches the models exactly."""
    engine = db.make_engine(db_url)
    current = db.current_revision(engine)
    head = db.head_revision()
    problems: list[str] = []
    if current != head:
        problems.append(f"schema revision is {current or 'none'}, expected {head}")
    problems.extend(str(d) for d in db.schema_diff(engine))
    if problems:
        for p in problems:
            click.echo(f"drift: {p}", err=True)
        sys.exit(int(ExitCode.DATABASE))
    click.echo(f"ok: schema at {head} matches the models")


# --------------------------------------------------------------------------- sync


def remote_options(func: Any) -> Any:
    """Options naming the server, after sentry-cli (each also read from the environment)."""
    for decorator in reversed(
        [
            click.option(
                "--url", help="Sentry server URL ($SENTRY_URL; default https://sentry.io/)."
            ),
            click.option("--auth-token", "token", help="Auth token ($SENTRY_AUTH_TOKEN)."),
            click.option("--org", help="Organization slug ($SENTRY_ORG)."),
            click.option(
                "--project",
                "projects",
                multiple=True,
                help="Project slug or id; repeatable ($SENTRY_PROJECT, space/comma separated). "
                "Default: every project the token can see.",
            ),
            click.option("--db", "db", help=DB_OPTION_HELP),
            click.option(
                "--config",
                "config_file",
                type=click.Path(dir_okay=False),
                help="TOML config file ($SENTRY_ARCHIVER_CONFIG; default ./sentry-archiver.toml).",
            ),
        ]
    ):
        func = decorator(func)
    return func


def output_options(func: Any) -> Any:
    for decorator in reversed(
        [
            click.option("-q", "--quiet", is_flag=True, help="Print nothing but errors."),
            click.option("-v", "--verbose", count=True, help="More log output (-vv: debug)."),
            click.option(
                "--log-format",
                type=click.Choice(["text", "json"]),
                default="text",
                show_default=True,
                help="Log line format (json: one object per line).",
            ),
        ]
    ):
        func = decorator(func)
    return func


@cli.command("sync")
@remote_options
@click.option("--query", help="Issue search query (default: all issues, resolved and ignored too).")
@click.option("--environment", "environments", multiple=True, help="Only these environments.")
@click.option(
    "--earliest", help="Ignore events before this ISO date (default: all the server holds)."
)
@click.option(
    "--detail",
    type=click.Choice(["auto", "always"]),
    help="auto: detail requests only where a list lacks the full event; always: every event.",
)
@click.option("--releases/--no-releases", default=None, help="Fetch each release object once.")
@click.option("--concurrency", type=int, help="Issues walked at once (default 4).")
@click.option(
    "--workers",
    type=int,
    help="Processes that parse and normalize pages beside the writer "
    "(default: CPU cores - 1, 1 to 4; 0: none, all in one process).",
)
@click.option(
    "--overlap", help="Re-read this much before the last bookmark, for late events (15m)."
)
@click.option(
    "--rescan",
    is_flag=True,
    default=None,
    help="List every issue again (about one request per 100 issues) to catch merged "
    "issues and events that arrived dated before the last bookmark.",
)
@click.option("--timeout", type=float, help="HTTP timeout in seconds (30).")
@click.option("--max-retries", type=int, help="Retries per request for 5xx/timeouts (6).")
@output_options
def sync_command(quiet: bool, verbose: int, log_format: str, **options: Any) -> None:
    """Archive the organization's events (incremental and resumable)."""
    from archiver.sync.runner import run_sync

    settings = load_cli_settings(options)
    report = run_sync(settings, quiet=quiet, verbosity=verbose, log_format=log_format)
    sys.exit(int(report.exit_code))


def load_cli_settings(options: dict[str, Any]) -> Any:
    from archiver.config import load_settings

    config_file = options.pop("config_file", None)
    return load_settings(options, config_file=config_file)


def _register() -> None:
    from archiver.cli import config_cmd
    from archiver.operations import scheduler
    from archiver.operations.datasette import datasette_metadata_command
    from archiver.operations.demo import demo_command
    from archiver.operations.export import export_command
    from archiver.operations.one_event import make_command as make_archive_event_command
    from archiver.operations.purge import purge_command
    from archiver.operations.status import status_command

    cli.add_command(demo_command)
    cli.add_command(purge_command)
    cli.add_command(make_archive_event_command())
    cli.add_command(export_command)
    cli.add_command(datasette_metadata_command)
    cli.add_command(status_command)
    scheduler.register(cli)
    config_cmd.register(cli)


_register()


def main() -> None:
    cli(prog_name="sentry-archiver")


if __name__ == "__main__":
    main()
