"""``sentry-archiver demo``: archive the built-in simulator's organization, then query it.

Its ``--db`` is deliberately not the shared one (:func:`archiver.cli.options.db_option`): the
demo must never write simulated events into the archive that ``$SENTRY_ARCHIVER_DB`` or the
config file name, so it has its own default file and reads neither.
"""

from __future__ import annotations

import datetime as dt

import click

from archiver.config import check_db_url
from archiver.operations.demo import (
    DEMO_DB,
    DEMO_EVENTS,
    DEMO_SEED,
    DemoCounts,
    build_demo_archive,
    format_table,
    run_queries,
)
from archiver.output import plural
from archiver.storage.db import safe_url


def _counts(plan: DemoCounts) -> str:
    """``3 projects, 16 issues and 1,864 events``."""
    return (
        f"{plural(plan.projects, 'project')}, {plural(plan.issues, 'issue')} and "
        f"{plural(plan.events, 'event')}"
    )


@click.command("demo")
@click.option("--db", "db_url", default=DEMO_DB, show_default=True, help="Where to archive.")
@click.option("--seed", default=DEMO_SEED, show_default=True, help="Simulator data seed.")
@click.option("--events", default=DEMO_EVENTS, show_default=True, help="Events to simulate.")
def demo_command(db_url: str, seed: int, events: int) -> None:
    """Archive the built-in simulator's organization and show what you can ask of it.

    \b
    Examples:
      sentry-archiver demo
      sentry-archiver demo --db sqlite:///demo.db --events 20000 --seed 7
    """
    db_url = check_db_url(db_url)  # a file, never memory: the demo ends pointing at it
    started = dt.datetime.now(dt.timezone.utc)

    def announce(plan: DemoCounts) -> None:
        click.echo(
            f"Started the built-in Sentry simulator (seed {seed}): {_counts(plan)} to archive..."
        )

    result = build_demo_archive(db_url, seed=seed, events=events, on_start=announce)
    r = result.outcome.report
    seconds = (dt.datetime.now(dt.timezone.utc) - started).total_seconds()
    holds = result.holds or DemoCounts(r.projects, r.issues_walked, result.archived)
    click.echo(
        f"{safe_url(db_url)} holds {plural(holds.events, 'event')} of "
        f"{plural(holds.issues, 'issue')} in {plural(holds.projects, 'project')} "
        f"(this run: {plural(r.events_new, 'event')} new, {r.events_updated:,} updated, "
        f"{plural(r.issues_walked, 'issue')} walked, in {seconds:.1f}s with "
        f"{plural(result.outcome.requests, 'request')})."
    )
    click.echo(
        f"The simulator's truth holds {plural(result.truth, 'event')}: "
        + (
            "the archive is complete."
            if result.archived == result.truth
            else "MISMATCH, please report this."
        )
    )
    for title, sql, columns, rows in run_queries(db_url):
        click.echo(f"\n-- {title}\n{sql};\n")
        click.echo(format_table(columns, rows))
    click.echo(
        "\nRun it again: only what is new is fetched. Explore with any SQL client, e.g.\n"
        f"  sqlite3 {db_url.removeprefix('sqlite:///')} 'SELECT count(*) FROM events'"
    )
