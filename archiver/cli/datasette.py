"""``sentry-archiver datasette-metadata``: write the ``metadata.json`` Datasette shows."""

from __future__ import annotations

import json
from pathlib import Path

import click

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
      sentry-archiver datasette-metadata --db sqlite:///archive.db --database-name sentry -o meta.json
    """
    url = settings_from_options({"db": db, "config_file": config_file}).db
    engine = open_archive(url)
    try:
        meta = build_metadata(engine, db_name or database_name(url))
    finally:
        engine.dispose()
    body = json.dumps(meta, indent=2, ensure_ascii=False) + "\n"
    if output == "-":
        click.echo(body, nl=False)
        return
    _write(output, body)
    click.echo(
        f"wrote {output}; open the archive with: datasette <file.db> --metadata {output}", err=True
    )
