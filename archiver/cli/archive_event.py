"""``sentry-archiver archive-event``: archive one event with full detail (incident evidence).

The fetching and writing is :func:`archiver.operations.one_event.execute_archive_event`. It
takes the server options and the output options of ``sync`` (``-q``, ``-v``, ``--log-format``),
so a script or a log shipper handles it like a sync: with ``--log-format json`` the result, or
the error, is one JSON line on stderr.
"""

from __future__ import annotations

import logging

import click

from archiver.cli.options import ShownDefault, output_options, remote_options
from archiver.config import settings_from_options
from archiver.errors import ArchiverError, ConfigError
from archiver.operations.one_event import ArchivedEvent, execute_archive_event
from archiver.output import SUMMARY_LOGGER, setup_logging

PROJECT_HELP = (
    "The event's project slug (at most one): fetch it directly, without the event-ID lookup."
)

log = logging.getLogger(SUMMARY_LOGGER)


def _describe(done: ArchivedEvent) -> list[str]:
    """The result as the text lines ``archive-event`` prints."""
    where = f"project {done.project_slug or done.project_id}"
    if done.issue_id is not None:
        where += f", issue {done.issue_id}"
    lines = [
        f"event {done.event_id} ({where}): {done.outcome}"
        + ("" if done.has_detail else " (lookup copy, no detail)")
    ]
    if done.scrubbed_paths:
        lines.append(f"scrubbed {done.scrubbed_paths} values (see events.scrubbed)")
    return lines


@click.command("archive-event")
@click.argument("event_id", required=False)
@click.option("--issue", "issue_id", type=int, help="Archive an event of this issue.")
@click.option("--latest", is_flag=True, help="With --issue: archive the issue's latest event.")
@click.option(
    "--releases/--no-releases",
    default=None,
    help="Fetch the event's release.",
    show_default="releases",
    cls=ShownDefault,
)
@remote_options(project_help=PROJECT_HELP, project_default=None)
@output_options
def archive_event_command(
    event_id: str | None,
    issue_id: int | None,
    latest: bool,
    projects: tuple[str, ...],
    quiet: bool,
    verbose: int,
    log_format: str,
    **options: object,
) -> None:
    """Archive one event (by EVENT_ID, or --issue ID --latest) with full detail.

    \b
    Examples:
      sentry-archiver archive-event 9999aaaaca8b46d797c23c6077c6ff01
      sentry-archiver archive-event 9999aaaaca8b46d797c23c6077c6ff01 --project web
      sentry-archiver archive-event --issue 1234567 --latest --log-format json
    """
    if len(projects) > 1:
        raise ConfigError("archive-event takes at most one --project")
    settings = settings_from_options(options)
    setup_logging(
        log_format=log_format,
        verbosity=verbose,
        quiet=quiet,
        secrets=[settings.token, settings.scrub_key],
    )
    try:
        done = execute_archive_event(
            settings,
            event_id,
            project=projects[0] if projects else None,
            issue_id=issue_id,
            latest=latest,
        )
    except ArchiverError as exc:
        if log_format == "json":
            # a log shipper reads JSON lines only: the error must be one as well
            log.error(
                str(exc), extra={"outcome": "failed", "counts": {"exit_code": int(exc.exit_code)}}
            )
            exc.logged = True
        raise
    if log_format == "json":
        log.info(
            "; ".join(_describe(done)),
            extra={
                "outcome": "success",
                "event": {
                    "event_id": done.event_id,
                    "project_id": done.project_id,
                    "project": done.project_slug,
                    "issue_id": done.issue_id,
                    "stored": done.outcome,
                    "has_detail": done.has_detail,
                    "scrubbed_paths": done.scrubbed_paths,
                },
            },
        )
    elif not quiet:
        for line in _describe(done):
            click.echo(line)
