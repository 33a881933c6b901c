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


class ShownDefault(click.Option):
    """An option whose ``show_default`` text reads like click's own ``[default: 4]``.

    Most defaults here are not click defaults (the settings loader owns the precedence), so
    ``--help`` gets them as ``show_default="4"``; click would print a text in parentheses,
    ``[default: (4)]``, and the help would write defaults two ways.
    """

    def get_help_extra(self, ctx: click.Context) -> Any:
        extra = super().get_help_extra(ctx)
        if isinstance(self.show_default, str):
            extra["default"] = self.show_default
        return extra


def option(*param_decls: str, **attrs: Any) -> Decorator:
    """``click.option`` with :class:`ShownDefault`: every shared option shows defaults alike."""
    return click.option(*param_decls, cls=ShownDefault, **attrs)


class Decorator(Protocol):
    """What an option decorator is: it returns the command function it was given."""

    def __call__(self, func: F, /) -> F: ...


DB_HELP = "Database URL ($SENTRY_ARCHIVER_DB, else the config file's [archive] db)."
DB_DEFAULT = "sqlite:///sentry-archive.db"
CONFIG_HELP = "TOML config file ($SENTRY_ARCHIVER_CONFIG)."
PROJECT_HELP = "Project slug or id; repeatable ($SENTRY_PROJECT, space/comma separated)."
PROJECT_DEFAULT = "every project the token can see"


def _stack(decorators: list[Decorator]) -> Decorator:
    """Apply ``decorators`` so the options show in ``--help`` in the order listed."""

    def apply(func: F) -> F:
        for decorator in reversed(decorators):
            func = decorator(func)
        return func

    return apply


def db_option(func: F) -> F:
    """``--db``: the archive's URL, read into ``Settings.db`` (parameter name ``db``)."""
    return option("--db", "db", help=DB_HELP, show_default=DB_DEFAULT)(func)


def config_option(func: F) -> F:
    """``--config``: the TOML file the settings loader reads (parameter ``config_file``)."""
    return option(
        "--config",
        "config_file",
        type=click.Path(dir_okay=False),
        help=CONFIG_HELP,
        show_default="./sentry-archiver.toml if present",
    )(func)


def server_options(
    project_help: str = PROJECT_HELP, project_default: str | None = PROJECT_DEFAULT
) -> Decorator:
    """The options naming the server, after sentry-cli (each also read from the environment).

    ``project_help`` lets a command say what ``--project`` means to it (``archive-event`` takes
    the event's project) without declaring a second ``--project``; ``project_default`` is
    what ``--help`` shows as its default (None: nothing).
    """
    return _stack(
        [
            option(
                "--url",
                help="Sentry server URL ($SENTRY_URL).",
                show_default="https://sentry.io/",
            ),
            option("--auth-token", "token", help="Auth token ($SENTRY_AUTH_TOKEN)."),
            option("--org", help="Organization slug ($SENTRY_ORG)."),
            option(
                "--project",
                "projects",
                multiple=True,
                help=project_help,
                show_default=project_default or False,
            ),
        ]
    )


def remote_options(
    project_help: str = PROJECT_HELP, project_default: str | None = PROJECT_DEFAULT
) -> Decorator:
    """Server options, then ``--db`` and ``--config``: what a command that fetches needs."""
    return _stack([server_options(project_help, project_default), db_option, config_option])


def sync_options(func: F) -> F:
    """What one sync archives and how (``sync``, ``schedule`` and ``config show`` take them)."""
    return _stack(
        [
            option(
                "--query",
                help="Issue search query.",
                show_default="all issues, resolved and ignored too",
            ),
            option(
                "--environment",
                "environments",
                multiple=True,
                help="Only this environment; repeatable.",
                show_default="all",
            ),
            option(
                "--earliest",
                help="Ignore events before this ISO date.",
                show_default="all the server holds",
            ),
            option(
                "--detail",
                type=click.Choice(["auto", "always"]),
                help="auto: detail requests only where a list lacks the full event; "
                "always: every event.",
                show_default="auto",
            ),
            option(
                "--releases/--no-releases",
                default=None,
                help="Fetch each release object once.",
                show_default="releases",
            ),
            option(
                "--concurrency",
                type=int,
                help="Issues walked at once: the most requests in flight. Fewer of one "
                "endpoint when the server's X-Sentry-Rate-Limit-ConcurrentLimit says so.",
                show_default="8",
            ),
            option(
                "--workers",
                type=int,
                help="Processes that parse and normalize pages beside the writer "
                "(0: none, all in one process).",
                show_default="one per CPU core, 1 to 4",
            ),
            option(
                "--overlap",
                help="Re-read this much before the last bookmark, for late events.",
                show_default="15m",
            ),
            option(
                "--rescan",
                is_flag=True,
                default=None,
                help="List every issue again (about one request per 100 issues) to catch "
                "merged issues and events that arrived dated before the last bookmark.",
            ),
            option(
                "--timeout",
                help="HTTP timeout per request: 30s, 2m, or a number of seconds.",
                show_default="30s",
            ),
            option(
                "--max-retries",
                type=int,
                help="Retries per request for 5xx/timeouts.",
                show_default="6",
            ),
        ]
    )(func)


def output_options(func: F) -> F:
    """``-q``, ``-v`` and ``--log-format``: how much a long-running command logs, and how."""
    return _stack(
        [
            option("-q", "--quiet", is_flag=True, help="Print nothing but errors."),
            option("-v", "--verbose", count=True, help="More log output (-vv: debug)."),
            option(
                "--log-format",
                type=click.Choice(["text", "json"]),
                default="text",
                show_default=True,
                help="Log line format (json: one object per line).",
            ),
        ]
    )(func)
