"""The options several commands share, declared once, and the one way they become Settings.

Every command that touches the archive takes ``--db`` and ``--config`` from here and turns them
into :class:`~archiver.config.Settings` with
:func:`archiver.config.settings_from_options`, so each resolves the
database the same way: ``--db`` > ``$SENTRY_ARCHIVER_DB`` > the config file's ``[archive] db``
> ``sqlite:///sentry-archive.db``. None of these options has a click default or ``envvar``:
the settings loader owns the precedence, and a click default would hide the config file.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


class Decorator(Protocol):
    """What an option decorator is: it returns the command function it was given."""

    def __call__(self, func: F, /) -> F: ...


DB_HELP = (
    "Database URL (default: $SENTRY_ARCHIVER_DB, the config file's [archive] db, "
    "or sqlite:///sentry-archive.db)."
)
CONFIG_HELP = "TOML config file ($SENTRY_ARCHIVER_CONFIG; default ./sentry-archiver.toml)."
PROJECT_HELP = (
    "Project slug or id; repeatable ($SENTRY_PROJECT, space/comma separated). "
    "Default: every project the token can see."
)


def _stack(decorators: list[Decorator]) -> Decorator:
    """Apply ``decorators`` so the options show in ``--help`` in the order listed."""

    def apply(func: F) -> F:
        for decorator in reversed(decorators):
            func = decorator(func)
        return func

    return apply


def db_option(func: F) -> F:
    """``--db``: the archive's URL, read into ``Settings.db`` (parameter name ``db``)."""
    return click.option("--db", "db", help=DB_HELP)(func)


def config_option(func: F) -> F:
    """``--config``: the TOML file the settings loader reads (parameter ``config_file``)."""
    return click.option(
        "--config", "config_file", type=click.Path(dir_okay=False), help=CONFIG_HELP
    )(func)


def server_options(project_help: str = PROJECT_HELP) -> Decorator:
    """The options naming the server, after sentry-cli (each also read from the environment).

    ``project_help`` lets a command say what ``--project`` means to it (``archive-event`` takes
    the event's project) without declaring a second ``--project``.
    """
    return _stack(
        [
            click.option(
                "--url", help="Sentry server URL ($SENTRY_URL; default https://sentry.io/)."
            ),
            click.option("--auth-token", "token", help="Auth token ($SENTRY_AUTH_TOKEN)."),
            click.option("--org", help="Organization slug ($SENTRY_ORG)."),
            click.option("--project", "projects", multiple=True, help=project_help),
        ]
    )


def remote_options(project_help: str = PROJECT_HELP) -> Decorator:
    """Server options, then ``--db`` and ``--config``: what a command that fetches needs."""
    return _stack([server_options(project_help), db_option, config_option])


def sync_options(func: F) -> F:
    """What one sync archives and how (``sync``, ``schedule`` and ``config show`` take them)."""
    return _stack(
        [
            click.option(
                "--query",
                help="Issue search query (default: all issues, resolved and ignored too).",
            ),
            click.option(
                "--environment", "environments", multiple=True, help="Only these environments."
            ),
            click.option(
                "--earliest",
                help="Ignore events before this ISO date (default: all the server holds).",
            ),
            click.option(
                "--detail",
                type=click.Choice(["auto", "always"]),
                help="auto: detail requests only where a list lacks the full event; "
                "always: every event.",
            ),
            click.option(
                "--releases/--no-releases", default=None, help="Fetch each release object once."
            ),
            click.option("--concurrency", type=int, help="Issues walked at once (default 4)."),
            click.option(
                "--workers",
                type=int,
                help="Processes that parse and normalize pages beside the writer "
                "(default: CPU cores - 1, 1 to 4; 0: none, all in one process).",
            ),
            click.option(
                "--overlap",
                help="Re-read this much before the last bookmark, for late events (15m).",
            ),
            click.option(
                "--rescan",
                is_flag=True,
                default=None,
                help="List every issue again (about one request per 100 issues) to catch "
                "merged issues and events that arrived dated before the last bookmark.",
            ),
            click.option(
                "--timeout", help="HTTP timeout per request: 30s, 2m, or a number of seconds (30)."
            ),
            click.option(
                "--max-retries", type=int, help="Retries per request for 5xx/timeouts (6)."
            ),
        ]
    )(func)


def output_options(func: F) -> F:
    """``-q``, ``-v`` and ``--log-format``: how much a long-running command logs, and how."""
    return _stack(
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
    )(func)
