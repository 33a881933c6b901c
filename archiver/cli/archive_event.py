"""``sentry-archiver archive-event``: archive one event with full detail (incident evidence).

The fetching and writing is :func:`archiver.operations.one_event.execute_archive_event`.
"""

from __future__ import annotations

import click

from archiver.cli.options import remote_options
from archiver.config import settings_from_options
from archiver.errors import ConfigError
from archiver.operations.one_event import execute_archive_event

PROJECT_HELP = "The event's project slug: fetch it directly, without the event-ID lookup."


@click.command("archive-event")
@click.argument("event_id", required=False)
@click.option("--issue", "issue_id", type=int, help="Archive an event of this issue.")
@click.option("--latest", is_flag=True, help="With --issue: archive the issue's latest event.")
@click.option("--releases/--no-releases", default=None, help="Fetch the event's release.")
@remote_options(project_help=PROJECT_HELP)
def archive_event_command(
    event_id: str | None,
    issue_id: int | None,
    latest: bool,
    projects: tuple[str, ...],
    **options: object,
) -> None:
    """Archive one event (by EVENT_ID, or --issue ID --latest) with full detail."""
    if len(projects) > 1:
        raise ConfigError("archive-event takes at most one --project")
    settings = settings_from_options(options)
    done = execute_archive_event(
        settings,
        event_id,
        project=projects[0] if projects else None,
        issue_id=issue_id,
        latest=latest,
    )
    where = f"project {done.project_slug or done.project_id}"
    if done.issue_id is not None:
        where += f", issue {done.issue_id}"
    click.echo(
        f"event {done.event_id} ({where}): {done.outcome}"
        + ("" if done.has_detail else " (lookup copy, no detail)")
    )
    if done.scrubbed_paths:
        click.echo(f"scrubbed {done.scrubbed_paths} values (see events.scrubbed)")
