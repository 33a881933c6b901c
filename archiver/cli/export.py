"""``sentry-archiver export``: stream archived events as JSON lines or CSV.

The reading and writing is :func:`archiver.operations.export.export_events`; this module
parses the options, has the output checked before the archive is opened, and writes a file
output through :func:`~archiver.operations.export.atomic_output`.
"""

from __future__ import annotations

import sys

import click

from archiver.cli.options import config_option, db_option
from archiver.config import settings_from_options
from archiver.errors import ExportError
from archiver.operations.export import (
    FORMATS,
    ExportFilter,
    atomic_output,
    check_output,
    export_events,
    parse_when,
)
from archiver.storage.db import open_archive


@click.command("export")
@db_option
@config_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    required=True,
    help="jsonl: the raw JSON of each event, one per line; csv: a flat row per event.",
)
@click.option(
    "--project", "projects", multiple=True, help="Only this project (slug or id); repeatable."
)
@click.option("--since", help="Only events created at or after this date (YYYY-MM-DD or ISO, UTC).")
@click.option("--until", help="Only events created before this date (exclusive).")
@click.option(
    "--output",
    "-o",
    default="-",
    show_default=True,
    help="File to write ('-': standard output); replaced only when the export succeeds.",
)
@click.option(
    "--escape-formulas/--no-escape-formulas",
    default=True,
    show_default=True,
    help="CSV: prefix cells starting with = + - @ tab or CR with ' so a spreadsheet shows "
    "them instead of running them; --no-escape-formulas keeps the exact text for pipelines.",
)
def export_command(
    db: str | None,
    config_file: str | None,
    fmt: str,
    projects: tuple[str, ...],
    since: str | None,
    until: str | None,
    output: str,
    escape_formulas: bool,
) -> None:
    """Stream archived events (oldest archived first) for an auditor or another system.

    \b
    Examples:
      sentry-archiver export --format jsonl --since 2024-05-01 --until 2024-06-01 -o may.jsonl
      sentry-archiver export --format csv --project web | gzip > web.csv.gz
    """
    flt = ExportFilter(
        projects=projects,
        since=parse_when(since, "--since") if since else None,
        until=parse_when(until, "--until") if until else None,
    )
    if flt.since and flt.until and flt.since >= flt.until:
        raise ExportError("--since must be before --until")
    settings = settings_from_options({"db": db, "config_file": config_file})
    path = None if output == "-" else check_output(output, settings.db)
    engine = open_archive(settings.db, readonly=True)
    try:
        if path is None:
            count = export_events(engine, sys.stdout, fmt, flt, escape_formulas=escape_formulas)
            sys.stdout.flush()
        else:
            with atomic_output(path) as out:
                count = export_events(engine, out, fmt, flt, escape_formulas=escape_formulas)
    finally:
        engine.dispose()
    if output != "-":
        click.echo(f"exported {count} events to {output}", err=True)
