"""``sentry-archiver db upgrade | downgrade | current | check``: the archive's schema."""

from __future__ import annotations

import sys

import click
from sqlalchemy import Engine

from archiver.cli.options import config_option, db_option
from archiver.config import settings_from_options
from archiver.errors import ExitCode
from archiver.storage.db import (
    current_revision,
    downgrade,
    head_revision,
    make_engine,
    open_existing,
    safe_url,
    schema_diff,
    upgrade,
)
from archiver.storage.orphans import describe, find_orphans


def _db_url(db: str | None, config_file: str | None) -> str:
    """The archive's URL as every command resolves it (``--db``, env, config file, default)."""
    return settings_from_options({"db": db, "config_file": config_file}).db


def _revisions(db: str | None, config_file: str | None) -> tuple[Engine, str | None, str | None]:
    """The existing archive, its schema revision and the newest this version knows (what
    ``current`` prints and ``check`` compares)."""
    engine = open_existing(_db_url(db, config_file))
    return engine, current_revision(engine), head_revision()


@click.group("db")
def db_group() -> None:
    """Create and inspect the archive's schema.

    \b
    Examples:
      sentry-archiver db upgrade
      sentry-archiver db current --db postgresql://archiver@db.internal/sentry
    """


@db_group.command("upgrade")
@db_option
@config_option
@click.option("--revision", default="head", show_default=True, help="Target revision.")
@click.option(
    "--adopt",
    is_flag=True,
    help="Add the archive's tables to a database that already holds other tables.",
)
def db_upgrade(db: str | None, config_file: str | None, revision: str, adopt: bool) -> None:
    """Create the archive or bring its schema up to date.

    \b
    Examples:
      sentry-archiver db upgrade
      sentry-archiver db upgrade --db postgresql://archiver@db.internal/sentry
      sentry-archiver db upgrade --db other-app.db --adopt
    """
    url = _db_url(db, config_file)
    engine = make_engine(url)
    before = current_revision(engine)
    upgrade(engine, revision, adopt=adopt)
    after = current_revision(engine)
    if before == after:
        click.echo(f"{safe_url(url)}: already at revision {after}")
    else:
        click.echo(f"{safe_url(url)}: upgraded {before or 'empty'} -> {after}")


@db_group.command("downgrade")
@db_option
@config_option
@click.argument("revision")
def db_downgrade(db: str | None, config_file: str | None, revision: str) -> None:
    """Step the schema back to REVISION ('base' drops every table: the archive is lost).

    \b
    Examples:
      sentry-archiver db current
      sentry-archiver db downgrade -1    # one revision back
    """
    url = _db_url(db, config_file)
    engine = make_engine(url)
    downgrade(engine, revision)
    click.echo(f"{safe_url(url)}: now at revision {current_revision(engine) or 'base'}")


@db_group.command("current")
@db_option
@config_option
def db_current(db: str | None, config_file: str | None) -> None:
    """Print the database's schema revision and the newest this version knows.

    \b
    Examples:
      sentry-archiver db current
    """
    _, current, head = _revisions(db, config_file)
    state = "up to date" if current == head else "needs: sentry-archiver db upgrade"
    click.echo(f"current: {current or 'none'}\nhead:    {head}\n{state}")


@db_group.command("check")
@db_option
@config_option
def db_check(db: str | None, config_file: str | None) -> None:
    """Fail (exit 7) unless the schema matches the models and no row lost its event.

    Rows of the per-event tables whose event is gone (PostgreSQL has no foreign key to delete
    them with it) are counted per table, with the SQL that deletes them.

    \b
    Examples:
      sentry-archiver db check
    """
    engine, current, head = _revisions(db, config_file)
    problems: list[str] = []
    if current != head:
        problems.append(f"schema revision is {current or 'none'}, expected {head}")
    problems.extend(str(d) for d in schema_diff(engine))
    if problems:
        for p in problems:
            click.echo(f"drift: {p}", err=True)
        click.echo("rows without their event: not checked until the schema matches", err=True)
        sys.exit(int(ExitCode.DATABASE))
    with engine.connect() as conn:
        found = find_orphans(conn)
    if found:
        for line in describe(found):
            click.echo(line, err=True)
        sys.exit(int(ExitCode.DATABASE))
    click.echo(f"ok: schema at {head} matches the models; no row without its event")
