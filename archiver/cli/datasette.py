"""``sentry-archiver datasette-metadata``: write the ``metadata.json`` Datasette shows."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import click
from sqlalchemy import make_url

from archiver.cli.options import ShownDefault, config_option, db_option
from archiver.config import settings_from_options
from archiver.errors import ConfigError
from archiver.operations.datasette import build_metadata, database_name
from archiver.storage.db import open_archive


def _write(output: str, body: str) -> None:
    """Write ``body`` to the file ``output``; a bad path is a ConfigError (exit 2)."""
    path = Path(output)
    if not path.parent.is_dir():
        raise ConfigError(f"--output {output}: the directory {path.parent} does not exist")
    try:
        path.write_text(body, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"--output {output}: cannot write ({exc.strerror})") from None


@click.command("datasette-metadata")
@db_option
@config_option
@click.option(
    "--output", "-o", default="-", show_default=True, help="File to write ('-': standard output)."
)
@click.option(
    "--database-name",
    "db_name",
    help="Database name in Datasette.",
    show_default="the file's stem",
    cls=ShownDefault,
)
def datasette_metadata_command(
    db: str | None, config_file: str | None, output: str, db_name: str | None
) -> None:
    """Write Datasette metadata (table, view and column descriptions) for the archive.

    \b
    Examples:
      sentry-archiver datasette-metadata -o metadata.json
      sentry-archiver datasette-metadata --db archive.db --database-name sentry -o meta.json
    """
    url = settings_from_options({"db": db, "config_file": config_file}).db
    engine = open_archive(url, readonly=True)
    try:
        meta = build_metadata(engine, db_name or database_name(url))
    finally:
        engine.dispose()
    body = json.dumps(meta, indent=2, ensure_ascii=False) + "\n"
    if output == "-":
        click.echo(body, nl=False)
    else:
        _write(output, body)
    hint = how_to_open(url, output)
    if hint:
        click.echo(hint, err=True)


def how_to_open(url: str, output: str) -> str | None:
    """What to run to browse the archive with this metadata, for the archive actually used.

    Datasette opens SQLite files only: for a PostgreSQL archive, say so rather than print a
    command that cannot work.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return (
            f"note: Datasette opens SQLite files only, and this archive is on "
            f"{parsed.get_backend_name()}: copy it into a SQLite file first (e.g. with "
            "db-to-sqlite --all), then give Datasette that file with --metadata"
        )
    if output == "-":
        return None
    command = f"datasette {shlex.quote(parsed.database or '')} --metadata {shlex.quote(output)}"
    return f"wrote {output}; open the archive with: {command}"
