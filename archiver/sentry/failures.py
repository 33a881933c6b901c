"""What an unsuccessful attempt means: retry it (and what to say when the budget is spent), or
raise which :class:`~archiver.errors.ApiError` at once.

Follows what Sentry really does (Sentry's source, and the README): 5xx, cut connections,
timeouts and unparsable bodies are load or bad luck and are retried; so is a 400 that is really
a Snuba timeout or a Snuba-side rate limit (Sentry's ``handle_query_errors`` turns those into
400s); 429 waits for the window; 401/403/404/410 and any other 4xx are answers, not accidents.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from archiver.errors import (
    ApiError,
    AuthError,
    BadRequestError,
    EndpointGoneError,
    NotFoundError,
    RateLimitedError,
    ServerError,
    TransportError,
)
from archiver.sentry.body import detail_of

TRANSIENT_400 = re.compile(r"timeout|timed out|rate limit|too many", re.IGNORECASE)


@dataclass(frozen=True)
class Problem:
    """One attempt that gave no usable answer.

    ``reason`` is what the retry's log line says; ``summary`` what the error says once the
    retry budget is spent (raised as ``kind``); ``fatal``, when set, is raised at once.
    ``headers`` are the answer's, when there was one (a 429's tell how long to wait).
    """

    reason: str
    summary: str
    kind: type[ApiError] = TransportError
    status: int | None = None
    detail: str | None = None
    headers: httpx.Headers | None = None
    fatal: ApiError | None = None

    @property
    def rate_limited(self) -> bool:
        return self.status == 429

    def give_up(self, path: str, attempts: int) -> ApiError:
        """The error once ``attempts`` attempts all failed."""
        return self.kind(
            f"GET {path}: {self.summary}; gave up after {attempts} attempts",
            path=path,
            status=self.status,
            detail=self.detail,
        )


def classify(
    path: str, response: httpx.Response, redact: Callable[[str], str], org_token: bool
) -> Problem | None:
    """None for a 2xx answer; else the problem it is (``redact`` cleans the server's text)."""
    status = response.status_code
    if status < 300:
        return None
    detail = redact(detail_of(response))
    if status == 429:
        return Problem(
            f"429 rate limited: {detail}",
            f"still rate limited: {detail}",
            RateLimitedError,
            status,
            detail,
            response.headers,
        )
    if 500 <= status < 600:
        return Problem(f"HTTP {status}", f"HTTP {status} {detail}", ServerError, status, detail)
    if status == 400 and TRANSIENT_400.search(detail):
        return Problem(
            f"HTTP 400 (transient: {detail})", f"HTTP 400 {detail}", BadRequestError, status, detail
        )
    error = error_for(path, response, detail, org_token)
    return Problem(str(error), str(error), type(error), status, detail, fatal=error)


def error_for(path: str, response: httpx.Response, detail: str, org_token: bool) -> ApiError:
    """The error a final (not retried) answer of ``status >= 300`` means.

    ``org_token``: the token is an organisation auth token (``sntrys_``), which explains a 403.
    """
    status = response.status_code
    if status == 401:
        return AuthError(
            f"HTTP 401 from {path}: {detail} Check the auth token (SENTRY_AUTH_TOKEN): it is "
            "missing, invalid or expired.",
            path=path,
            status=status,
            detail=detail,
        )
    if status == 403:
        if org_token:
            # Organisation auth tokens only ever carry org:ci: no scope reads events.
            hint = (
                "This is an organization auth token (sntrys_), which only carries org:ci "
                "and cannot read events; create an internal integration with Organization: "
                "Read and Issue & Event: Read, or a user token with org:read and event:read."
            )
        else:
            hint = (
                "The token lacks a scope or access to this project: archiving needs "
                "org:read (projects) and event:read (issues and events); project:read only "
                "for releases."
            )
        return AuthError(
            f"HTTP 403 from {path}: {detail} {hint}", path=path, status=status, detail=detail
        )
    if status == 404:
        return NotFoundError(
            f"HTTP 404 from {path}: {detail}", path=path, status=status, detail=detail
        )
    if status == 410:
        return EndpointGoneError(
            f"HTTP 410 from {path}: {detail} (Sentry removed this endpoint or is browning it "
            "out; the archive itself is unchanged)",
            path=path,
            status=status,
            detail=detail,
        )
    if status == 400:
        return BadRequestError(
            f"HTTP 400 from {path}: {detail}", path=path, status=status, detail=detail
        )
    if 300 <= status < 400:
        where = response.headers.get("location", "?")
        return ApiError(
            f"HTTP {status} from {path}: the server redirects to {where}; "
            "set SENTRY_URL to the server that answers (e.g. a regional host)",
            path=path,
            status=status,
        )
    return ApiError(f"HTTP {status} from {path}: {detail}", path=path, status=status, detail=detail)
