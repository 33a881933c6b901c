"""What an unsuccessful attempt means: retry it (and what to say when the budget is spent), or
raise which :class:`~archiver.errors.ApiError` at once.

Follows what Sentry really does (Sentry's source, and the README): 5xx, cut connections,
timeouts and unparsable bodies are load or bad luck and are retried; so is a 400 that is really
a Snuba timeout or a Snuba-side rate limit (Sentry's ``handle_query_errors`` turns those into
400s); 429 waits for the window; 401/403/404/410 and any other 4xx are answers, not accidents.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

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
from archiver.output import plural
from archiver.sentry.body import detail_of

_E = TypeVar("_E", bound=BaseException)

TRANSIENT_400 = re.compile(r"timeout|timed out|rate limit|too many", re.IGNORECASE)

# Shorter secrets are not redacted: replacing a one-letter token would turn every word holding
# that letter into asterisks (the same rule as archiver.output.RedactingFilter).
MIN_REDACTED = 4


def redact(text: str, secret: str | None) -> str:
    """``text`` with ``secret`` replaced: server text may echo what it was sent (a proxy's
    error page, a debug body)."""
    if secret and len(secret) >= MIN_REDACTED and secret in text:
        return text.replace(secret, "********")
    return text


@dataclass(frozen=True)
class Problem:
    """One attempt that gave no usable answer.

    ``reason`` is what the retry's log line says; ``summary`` what the error says once the
    retry budget is spent (raised as ``kind``); ``fatal``, when set, is raised at once.
    ``headers`` are the answer's, when there was one (a 429's tell how long to wait).
    ``refused``: nothing listens at the address, which a long backoff will not change.
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

    refused: bool = False

    def give_up(self, path: str, url: str, attempts: int) -> ApiError:
        """The error once ``attempts`` attempts all failed (``url`` is ``path`` in full)."""
        return self.kind(
            f"GET {url}: {self.summary}; gave up after {plural(attempts, 'attempt')}",
            path=path,
            status=self.status,
            detail=self.detail,
        )


def classify(
    path: str, url: str, response: httpx.Response, redact: Callable[[str], str], org_token: bool
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
    error = error_for(path, url, response, detail, org_token)
    return Problem(str(error), str(error), type(error), status, detail, fatal=error)


def sentence(detail: str) -> str:
    """``detail`` ending as a sentence does, so a hint can follow it ("Invalid token. Check...")."""
    detail = detail.rstrip()
    return detail if not detail or detail[-1] in ".!?" else f"{detail}."


def error_for(
    path: str, url: str, response: httpx.Response, detail: str, org_token: bool
) -> ApiError:
    """The error a final (not retried) answer of ``status >= 300`` means; it names ``url``.

    ``org_token``: the token is an organisation auth token (``sntrys_``), which explains a 403.
    """
    status = response.status_code
    if status == 401:
        return AuthError(
            f"HTTP 401 from {url}: {sentence(detail)} Check the auth token (SENTRY_AUTH_TOKEN): "
            "it is missing, invalid or expired.",
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
            f"HTTP 403 from {url}: {sentence(detail)} {hint}",
            path=path,
            status=status,
            detail=detail,
        )
    if status == 404:
        return NotFoundError(
            f"HTTP 404 from {url}: {detail}", path=path, status=status, detail=detail
        )
    if status == 410:
        return EndpointGoneError(
            f"HTTP 410 from {url}: {detail} (Sentry removed this endpoint or is browning it "
            "out; the archive itself is unchanged)",
            path=path,
            status=status,
            detail=detail,
        )
    if status == 400:
        return BadRequestError(
            f"HTTP 400 from {url}: {detail}", path=path, status=status, detail=detail
        )
    if 300 <= status < 400:
        where = response.headers.get("location", "?")
        return ApiError(
            f"HTTP {status} from {url}: the server redirects to {where}; "
            "set SENTRY_URL to the server that answers (e.g. a regional host)",
            path=path,
            status=status,
        )
    return ApiError(f"HTTP {status} from {url}: {detail}", path=path, status=status, detail=detail)


def connection_problem(
    path: str, url: httpx.URL, exc: httpx.TransportError, redact: Callable[[str], str]
) -> Problem:
    """A request that got no answer: cut or failed connections are retried; a refused one
    only a couple of times; a TLS failure (wrong scheme or port, an untrusted certificate) is
    fatal at once, with a hint, since retrying cannot mend it."""
    where = f"{url.host}:{url.port or (443 if url.scheme == 'https' else 80)}"
    tls = _cause(exc, ssl.SSLError)
    if tls is not None:
        error = TransportError(
            f"GET {url}: TLS with {where} failed: {_tls_hint(tls, url)}", path=path
        )
        return Problem(str(error), str(error), fatal=error)
    if _cause(exc, ConnectionRefusedError) is not None:
        text = f"connection refused by {where} (is the server running, at this address?)"
        return Problem(text, text, refused=True)
    text = f"connection failed ({type(exc).__name__}: {redact(_first_line(exc))})"
    return Problem(text, text)


def _tls_hint(error: ssl.SSLError, url: httpx.URL) -> str:
    reason = getattr(error, "reason", None)  # set by the ssl module, not by every raiser
    if not isinstance(reason, str):
        reason = _first_line(error)
    if isinstance(error, ssl.SSLCertVerificationError):
        why = getattr(error, "verify_message", None) or reason
        return (
            f"the server's certificate is not trusted ({why}); if your own CA signed it, "
            "point SSL_CERT_FILE at that CA's certificate"
        )
    if reason in ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "HTTP_REQUEST"):
        plain = url.copy_with(scheme="http", path="/", query=None)
        return (
            f"{reason}: the server does not speak TLS on this port; if it serves plain http, "
            f"use {plain} (the token goes over plain http only to a loopback host)"
        )
    return f"{reason}: check that the URL's scheme (http or https) and port match the server"


def _cause(exc: BaseException, kind: type[_E]) -> _E | None:
    """The first exception of ``kind`` in ``exc``'s chain of causes (httpx wraps OS errors)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, kind):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _first_line(exc: BaseException) -> str:
    """An exception's text without anything request-specific beyond the reason."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    return text[:200]
