"""Every exception the tool raises on purpose, and the exit codes the CLI maps them to.

The whole tree (``exit`` is the process exit code the command line returns)::

    ArchiverError                 exit 1  base class: the CLI prints one line, never a traceback
    ├── ConfigError               exit 2  missing or contradictory configuration, bad options
    │   ├── InsecureTransportError        the token would travel over plain http
    │   ├── ExportError                   bad ``export`` arguments
    │   └── EventNotFoundError            ``archive-event`` names an event the server lacks
    ├── DatabaseError             exit 7  the database cannot be opened, migrated or used
    ├── LockHeldError             exit 5  another run holds the archive's run lock
    │   └── LockLostError                 this run lost its lock while running
    │       └── LeaseLostError            (PostgreSQL) another sync took one project over: that
    │                                     project's walk stops, the run goes on (exit 0)
    ├── InterruptedRun            exit 130  SIGINT/SIGTERM; the last page's checkpoint is committed
    ├── PartialRunError           exit 3  the run ended, but some issues could not be archived
    ├── WalkBroken                exit 3  (per issue) the server's answers give the walk no progress
    └── ApiError                  exit 6  an HTTP exchange with Sentry failed
        ├── AuthError             exit 4  401/403: bad token or missing scope
        ├── NotFoundError                 404
        ├── BadRequestError               400 (a transient Snuba timeout is retried first)
        ├── EndpointGoneError             410: a removed or browned-out endpoint, never "deleted"
        ├── RateLimitedError              429 beyond the retry budget
        ├── ServerError                   5xx beyond the retry budget
        └── TransportError                connection, timeout, truncated or unparsable body
            └── UnusableAnswer            a 2xx body that is not JSON on every try, or not the
                                          shape the endpoint gives (an object, a list)

    httpx.ReadTimeout (the client retries it as any timeout)
    └── AnswerTooSlow                     a whole answer outlived its deadline

    ValueError (parsing: the client retries a request whose body raises one)
    ├── InvalidBody                       a page body that is not valid JSON
    └── PaginationError                   a Link header or cursor that cannot be followed

Messages never contain the auth token: HTTP errors are built from the URL path and Sentry's
``detail`` text only, and the client redacts the token from anything a server echoes.
"""

from __future__ import annotations

from enum import IntEnum

import httpx


class ExitCode(IntEnum):
    """Process exit codes (documented in the README's table)."""

    OK = 0
    FAILURE = 1  # an unexpected error
    USAGE = 2  # bad options or configuration (click uses 2 as well)
    PARTIAL = 3  # the run finished but some issues could not be archived
    AUTH = 4  # 401/403: bad token or missing scope; nothing was written
    LOCKED = 5  # another run holds the archive's lock
    API = 6  # the server kept failing (5xx, timeouts, bad bodies) beyond the retry budget
    DATABASE = 7  # the database cannot be opened, or its schema is not up to date
    INTERRUPTED = 130  # stopped by SIGINT/SIGTERM after committing its last page


class ArchiverError(Exception):
    """Base class of the errors the tool raises on purpose."""

    exit_code: ExitCode = ExitCode.FAILURE
    # set once the error has been logged as a JSON line, so the CLI does not print it again
    logged: bool = False


class ConfigError(ArchiverError):
    """Missing or contradictory configuration."""

    exit_code = ExitCode.USAGE


class DatabaseError(ArchiverError):
    """The database cannot be used (unreachable, schema out of date, drift)."""

    exit_code = ExitCode.DATABASE


class LockHeldError(ArchiverError):
    """Another run holds the archive's run lock."""

    exit_code = ExitCode.LOCKED


class LockLostError(LockHeldError):
    """The run lost its lock while running (exit 5, as when the lock is held by another).

    On PostgreSQL the advisory lock lives as long as its session: terminated (by
    ``pg_terminate_backend``, a restart, a failover, a proxy's idle timeout), it is free for
    the next sync while this one still writes. On SQLite another process took a lock whose
    heartbeat had stopped. Either way this run may no longer be the only writer: it stops.
    Exit 5 rather than 7 because the database still works; the run's exclusive right to
    write it is what was lost, which is the lock's business.
    """


class LeaseLostError(LockLostError):
    """Another sync took this process's project over (PostgreSQL, several syncs).

    It ends that project's walk only (the page that finds it rolls back): the project is
    handed over, the other process finishes it, and this run goes on with its other projects
    and ends as if the project had been walked here (exit 0 when nothing else failed). A
    :class:`LockLostError` only if it ever escaped the run.
    """

    def __init__(self, project_id: int, message: str) -> None:
        super().__init__(message)
        self.project_id = project_id


class InterruptedRun(ArchiverError):
    """A stop was requested (signal); the last page's checkpoint is committed."""

    exit_code = ExitCode.INTERRUPTED


class PartialRunError(ArchiverError):
    """The run ended but some work items failed; the rest was archived."""

    exit_code = ExitCode.PARTIAL


class ApiError(ArchiverError):
    """An HTTP exchange with Sentry failed.

    ``path`` is the request path without host or query (never the token); ``status`` is the
    HTTP status or ``None`` for transport failures; ``detail`` is Sentry's ``detail`` text.
    """

    exit_code = ExitCode.API

    def __init__(
        self, message: str, *, path: str = "", status: int | None = None, detail: str | None = None
    ) -> None:
        super().__init__(message)
        self.path = path
        self.status = status
        self.detail = detail


class AuthError(ApiError):
    """401 or 403: the token is missing, invalid, expired, or lacks a scope."""

    exit_code = ExitCode.AUTH


class NotFoundError(ApiError):
    """404: the object does not exist (deleted issue, unknown event, expired event)."""


class BadRequestError(ApiError):
    """400: the server refused the request's parameters (invalid cursor, per_page...)."""


class EndpointGoneError(ApiError):
    """410: Sentry removed the endpoint, or browns it out (deprecated org-less URLs).

    Never read as "the issue was deleted": the resource may well exist under another URL.
    """


class RateLimitedError(ApiError):
    """429 beyond the retry budget."""


class ServerError(ApiError):
    """5xx beyond the retry budget."""


class TransportError(ApiError):
    """Connection refused or cut, timeout, or a truncated or unparsable body."""


class UnusableAnswer(TransportError):
    """The server answered 2xx, on every try, with a body that is not valid JSON or is not
    what the endpoint gives: the answer itself is at fault, not the way to the server."""


class InsecureTransportError(ConfigError):
    """Refusing to send the token over plain http to a non-loopback host."""


class ExportError(ConfigError):
    """Bad export arguments (exit 2)."""


class EventNotFoundError(ConfigError):
    """The event (or issue) named on the command line does not exist on the server."""


class WalkBroken(ArchiverError):
    """The server answered in a way the walk cannot make progress with (reported per issue)."""

    exit_code = ExitCode.PARTIAL


class InvalidBody(ValueError):
    """The body is not valid JSON (truncated on the way): the client retries the request."""


class PaginationError(ValueError):
    """The server's pagination cannot be followed (a loop, or a malformed cursor)."""


class AnswerTooSlow(httpx.ReadTimeout):
    """The whole answer took longer than its deadline (each read was within the timeout)."""
