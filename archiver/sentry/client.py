"""The HTTP client for Sentry's REST API: auth, retries, pagination, the endpoints we use.

One :class:`httpx.Client` is shared by every fetch thread (connection reuse, bounded pool).
Each request is a loop of two steps: :meth:`SentryClient._attempt` makes one request and
returns the parsed answer or the :class:`~archiver.sentry.failures.Problem` it was, and
:meth:`SentryClient._decide` (the retry policy, in one place) says how long to wait before the
next attempt, or raises. Failure handling follows what Sentry really does (Sentry's source;
:mod:`archiver.sentry.failures`):

* 5xx, cut connections, timeouts and truncated or unparsable bodies are retried with
  exponential backoff and full jitter, a bounded number of times, then raise
  :class:`~archiver.errors.ServerError` or :class:`~archiver.errors.TransportError`;
* 429 waits until ``Retry-After`` (a proxy may add it) or ``X-Sentry-Rate-Limit-Reset`` (what
  Sentry itself sends), and requests are paced *before* the limit by the
  ``X-Sentry-Rate-Limit-*`` headers of earlier answers of the same endpoint family
  (:mod:`archiver.sentry.ratelimit`);
* 401/403 raise :class:`~archiver.errors.AuthError` at once; 404 and 400 are not retried;
* nothing waits without bound: a single wait is capped (:data:`MAX_WAIT`; a server asking
  for more fails that request with :class:`~archiver.errors.RateLimitedError`), waits end
  at once when the run's stop event is set (:class:`~archiver.errors.InterruptedRun`), each
  exchange has a total deadline, a refused connection is retried only twice and a TLS
  failure not at all.

The token travels only in the ``Authorization`` header: it is never part of a URL, a log line
or an exception message, and it is refused over plain http to anything but a loopback host.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import httpx

from archiver import __version__
from archiver.errors import (
    AnswerTooSlow,
    InsecureTransportError,
    RateLimitedError,
    TransportError,
    UnusableAnswer,
)
from archiver.sentry.body import receive, size_of
from archiver.sentry.failures import Problem, classify, connection_problem, redact
from archiver.sentry.pagination import next_cursor
from archiver.sentry.ratelimit import RateLimiter, family_of, too_long
from archiver.sentry.stops import Stops
from archiver.sentry.urls import check_base_url, no_cookies, segment, window_params

log = logging.getLogger("archiver.sentry.client")

Params = Sequence[tuple[str, str]]
MAX_RATE_LIMIT_WAITS = 30
# The longest single wait (Retry-After, a rate-limit window): a server asking for more fails
# that request at once, so the run goes on with other issues instead of sleeping for a day.
MAX_WAIT = 15 * 60.0
# httpx's timeout bounds each read, so a body trickling in a byte at a time never times out.
# The whole exchange gets this many timeouts at most: room for a large page on a slow link,
# while a stalled trickle fails (and is retried as any timeout) in minutes, not hours.
DEADLINE_FACTOR = 3
# A refused connection is retried this many times, quickly: nothing listens at the address,
# and the full backoff (half a minute) only delays the message that says so.
REFUSED_RETRIES = 2


@dataclass
class ClientStats:
    """Thread-safe counters of what the client did."""

    requests: int = 0
    retries: int = 0
    rate_limited_waits: int = 0
    seconds_waited: float = 0.0
    bytes_received: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **counts: float) -> None:
        with self._lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)


@dataclass(frozen=True)
class Response:
    """A successful answer: ``data`` is what ``parse`` made of the body (JSON by default)."""

    status: int
    headers: httpx.Headers
    data: Any


@dataclass
class _Tally:
    """The failed attempts of one request so far: errors, and 429 waits (a budget each)."""

    failures: int = 0
    waits: int = 0
    refused: int = 0


@dataclass(frozen=True)
class Page:
    """One page of a list endpoint."""

    items: list[Any]
    next_cursor: str | None
    has_next: bool
    headers: Mapping[str, str]


class SentryClient:
    """A thread-safe client for the endpoints the archiver needs."""

    def __init__(
        self,
        base_url: str,
        token: str | None,
        *,
        timeout: float = 30.0,
        max_retries: int = 6,
        backoff_base: float = 0.5,
        backoff_max: float = 60.0,
        user_agent: str = f"sentry-archiver/{__version__}",
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        max_connections: int = 16,
        rate_limit_reserve: int = 1,
        max_wait: float = MAX_WAIT,
        stop: threading.Event | None = None,
        concurrency: int = 4,
    ) -> None:
        """``stop``: the run's stop event (set on SIGINT/SIGTERM). Waits (retry backoff, rate
        limits) wait on it and raise :class:`~archiver.errors.InterruptedRun` once it is set,
        so a signal ends a wait at once; a thread's own stop (:meth:`stopping`) ends its waits
        too. ``sleep`` replaces the waiting itself (tests); the stop events are still checked
        before and after each wait. ``concurrency``: the most requests of one endpoint family
        in flight, whatever the server allows.
        """
        check_base_url(base_url, token)
        self.base_url = base_url.rstrip("/") + "/"
        self._token = token
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.stop = stop
        self.deadline = timeout * DEADLINE_FACTOR
        self.monotonic = monotonic
        self.stops = Stops(stop)  # the run's stop, and each thread's own (:meth:`stopping`)
        self.sleep = sleep if sleep is not None else self.stops.wait
        self.clock = clock
        self.rng = rng or random.Random()
        self._rng_lock = threading.Lock()
        self.stats = ClientStats()
        self.max_wait = max_wait
        self.limiter = RateLimiter(
            reserve=rate_limit_reserve,
            clock=clock,
            pause=self._pause,
            max_wait=max_wait,
            concurrency=concurrency,
        )
        headers = {"User-Agent": user_agent, "Accept": "application/json"}
        self._http = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
            transport=transport,
            follow_redirects=False,
            cookies=no_cookies(),
        )

    def __repr__(self) -> str:
        return f"SentryClient({self.base_url!r})"

    def __enter__(self) -> SentryClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # ------------------------------------------------------------------ core

    def _backoff(self, attempt: int) -> float:
        with self._rng_lock:
            return self.rng.uniform(0, min(self.backoff_max, self.backoff_base * 2**attempt))

    def _redact(self, text: str) -> str:
        return redact(text, self._token)

    def _auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}"} if self._token else {}

    def get(
        self,
        path: str,
        params: Params | Mapping[str, Any] = (),
        *,
        parse: Callable[[Any], Any] = json.loads,
        body_path: str | None = None,
    ) -> Response:
        """GET with retries, pacing and error mapping; ``data`` is the parsed JSON body.

        ``parse`` turns a 2xx body into ``data`` (``json.loads`` by default; the sync engine
        hands pages to worker processes that parse and normalize them). A ``ValueError`` from
        it means a truncated or invalid body, which is retried like a cut connection. With
        ``body_path`` (a file path), ``parse`` is given a :class:`~archiver.sentry.body.BodyFile`
        instead of bytes: the body was streamed into that file (rewritten on each retry).
        """
        query: list[tuple[str, str | int | float | bool | None]] = [
            (str(k), str(v)) for k, v in (params.items() if isinstance(params, Mapping) else params)
        ]
        family = family_of(path)
        tally = _Tally()
        while True:
            outcome = self._attempt(path, query, family, parse, body_path)
            if isinstance(outcome, Response):
                return outcome
            self._retry(path, outcome.reason, self._decide(path, family, outcome, tally))

    def url_of(self, path: str) -> str:
        """``path`` in full (scheme, host, port), as error messages name it; no query."""
        return self.base_url + path.lstrip("/")

    def _attempt(
        self,
        path: str,
        query: list[tuple[str, str | int | float | bool | None]],
        family: str,
        parse: Callable[[Any], Any],
        body_path: str | None,
    ) -> Response | Problem:
        """One request, paced by the rate limiter: the parsed answer, or what went wrong."""
        slot = self.limiter.before(family, path, self.url_of(path))
        started = time.monotonic()
        answer: httpx.Response | None = None
        request = self._http.build_request("GET", path, params=query, headers=self._auth_headers())
        try:
            response, body = receive(
                self._http, request, body_path, self._deadline(), self.monotonic
            )
            answer = response
        except httpx.TimeoutException as exc:
            why = str(exc) if isinstance(exc, AnswerTooSlow) else type(exc).__name__
            problem = f"timeout ({why})"
            return Problem(problem, problem)
        except httpx.TransportError as exc:
            return connection_problem(path, request.url, exc, self._redact)
        finally:
            self.limiter.after(family, answer, slot)
            self.stats.add(requests=1)
        size = size_of(body)
        self.stats.add(bytes_received=size)
        status = response.status_code
        log.debug("GET %s -> %s (%.0f ms)", path, status, (time.monotonic() - started) * 1000)
        org_token = bool(self._token and self._token.startswith("sntrys_"))
        problem_ = classify(path, self.url_of(path), response, self._redact, org_token)
        if problem_ is not None:
            return problem_
        try:
            data = parse(body)
        except ValueError:
            return Problem(
                f"truncated or invalid JSON body ({size} bytes)",
                f"the body is not valid JSON ({size} bytes)",
                UnusableAnswer,
                status=status,
            )
        return Response(status, response.headers, data)

    def _deadline(self) -> Callable[[], None]:
        """A check that raises :class:`AnswerTooSlow` once this exchange outlives its deadline."""
        ends = self.monotonic() + self.deadline

        def check() -> None:
            if self.monotonic() > ends:
                raise AnswerTooSlow(f"no complete answer within {self.deadline:.0f}s")

        return check

    def _decide(self, path: str, family: str, problem: Problem, tally: _Tally) -> float:
        """The retry policy: seconds to wait before trying again, or raise the error."""
        if problem.fatal is not None:
            raise problem.fatal
        if problem.rate_limited:
            tally.waits += 1
            if tally.waits > MAX_RATE_LIMIT_WAITS:
                raise RateLimitedError(
                    f"GET {self.url_of(path)}: still rate limited after {tally.waits - 1} "
                    f"waits: {problem.detail}",
                    path=path,
                    status=429,
                )
            wait = self.limiter.refused(
                family, problem.headers, problem.detail, lambda: self._backoff(tally.waits)
            )
            if wait > self.max_wait:
                raise too_long(
                    path, self.url_of(path), wait, self.max_wait, "the server asks to wait"
                )
            self.stats.add(rate_limited_waits=1)
            return wait
        tally.failures += 1
        tally.refused += problem.refused
        if tally.failures > self.max_retries or tally.refused > REFUSED_RETRIES:
            raise problem.give_up(path, self.url_of(path), tally.failures)
        if problem.refused:  # a server restarting is back in a moment, or not soon at all
            return min(1.0, self._backoff(tally.refused))
        return self._backoff(tally.failures)

    def _retry(self, path: str, reason: str, wait: float) -> None:
        # info, not warning: a retry that recovers is counted (display, summary), not shouted;
        # -v shows each one, and one that does not recover ends as an error
        log.info("GET %s: %s; retrying in %.1fs", path, reason, wait)
        self.stats.add(retries=1)
        self._pause(wait)

    def _pause(self, seconds: float) -> None:
        """Wait ``seconds`` (a retry's backoff, a rate-limit window), counted in the stats.

        Raises :class:`~archiver.errors.InterruptedRun` when the stop event is set before or
        during the wait.
        """
        self._check_stop()
        self.stats.add(seconds_waited=seconds)
        if seconds > 0:
            self.sleep(seconds)
        self._check_stop()

    def _check_stop(self) -> None:
        self.stops.check()

    def stopping(self, stop: threading.Event) -> contextlib.AbstractContextManager[None]:
        """Within this block, this thread's waits (rate limits, retry backoff) also end, with
        :class:`~archiver.errors.InterruptedRun`, once ``stop`` is set: a project's walk stops
        without the run when another sync took the project over (:mod:`.stops`)."""
        return self.stops.stopping(stop)

    def get_page(
        self,
        path: str,
        params: Params,
        parse: Callable[[Any], Any] = json.loads,
        body_path: str | None = None,
    ) -> Page:
        response = self.get(path, params, parse=parse, body_path=body_path)
        items = response.data if isinstance(response.data, list) else []
        if not isinstance(response.data, list):
            shape = getattr(response.data, "json_type", type(response.data).__name__)
            raise TransportError(
                f"GET {self.url_of(path)}: expected a JSON list, got {shape}", path=path
            )
        cursor = next_cursor(response.headers.get("link"))
        return Page(items, cursor, cursor is not None, response.headers)

    def _object(self, path: str) -> dict[str, Any]:
        """GET an endpoint that answers one JSON object."""
        data = self.get(path).data
        if not isinstance(data, dict):
            raise UnusableAnswer(
                f"GET {self.url_of(path)}: expected a JSON object, got {type(data).__name__}",
                path=path,
            )
        return data

    # ------------------------------------------------------------------ endpoints

    def use_region(self, org: str) -> str:
        """On sentry.io, talk to the organisation's region (``links.regionUrl``) from now on.

        Org-scoped URLs on sentry.io are proxied to the region, but the proxy is one more hop
        on every request; any other host (self-hosted, a region already) is used as given.
        Returns the base URL in use. The token is never sent over plain http (checked again).
        """
        host = (urlsplit(self.base_url).hostname or "").lower()
        if host not in ("sentry.io", "www.sentry.io"):
            return self.base_url
        details = self.get_organization(org)
        links = details.get("links")
        region = links.get("regionUrl") if isinstance(links, dict) else None
        if not isinstance(region, str) or not region:
            return self.base_url
        parts = urlsplit(region)
        if parts.scheme != "https" or not parts.hostname:
            raise InsecureTransportError(f"refusing the region URL {region!r}: not https")
        self.base_url = region.rstrip("/") + "/"
        self._http.base_url = httpx.URL(self.base_url)
        log.info("organization %s lives in region %s: using it", org, self.base_url)
        return self.base_url

    def get_organization(self, org: str) -> dict[str, Any]:
        path = f"api/0/organizations/{segment(org)}/"
        return self._object(path)

    def list_organizations_page(self, cursor: str | None = None) -> Page:
        """The organisations the token can see (``GET /api/0/organizations/``)."""
        return self.get_page("api/0/organizations/", [("cursor", cursor)] if cursor else [])

    def list_projects_page(self, org: str, cursor: str | None = None) -> Page:
        params: list[tuple[str, str]] = []
        if cursor:
            params.append(("cursor", cursor))
        return self.get_page(f"api/0/organizations/{segment(org)}/projects/", params)

    def list_issues_page(
        self,
        org: str,
        *,
        project_id: int | None = None,
        query: str = "",
        sort: str = "new",
        start: dt.datetime | None = None,
        end: dt.datetime | None = None,
        environments: Iterable[str] = (),
        cursor: str | None = None,
        limit: int = 100,
    ) -> Page:
        """Organization issue search; ``query`` is always sent (Sentry's default hides issues)."""
        params: list[tuple[str, str]] = [("query", query), ("sort", sort), ("limit", str(limit))]
        if project_id is not None:
            params.append(("project", str(project_id)))
        params.extend(window_params(start, end))
        params.extend(("environment", e) for e in environments)
        if cursor:
            params.append(("cursor", cursor))
        return self.get_page(f"api/0/organizations/{segment(org)}/issues/", params)

    def list_issue_events_page(
        self,
        org: str,
        issue_id: int,
        *,
        start: dt.datetime | None = None,
        end: dt.datetime | None = None,
        environments: Iterable[str] = (),
        full: bool = True,
        cursor: str | None = None,
        per_page: int = 100,
        parse: Callable[[Any], Any] = json.loads,
        body_path: str | None = None,
        sample: bool = False,
    ) -> Page:
        params: list[tuple[str, str]] = [("per_page", str(per_page))]
        if full:
            params.append(("full", "true"))
        if sample:  # ordered by a stable hash of the event id instead of -timestamp
            params.append(("sample", "1"))
        params.extend(window_params(start, end))
        params.extend(("environment", e) for e in environments)
        if cursor:
            params.append(("cursor", cursor))
        path = f"api/0/organizations/{segment(org)}/issues/{int(issue_id)}/events/"
        return self.get_page(path, params, parse, body_path)

    def get_issue(self, org: str, issue_id: int) -> dict[str, Any]:
        path = f"api/0/organizations/{segment(org)}/issues/{int(issue_id)}/"
        return self._object(path)

    def get_issue_event(self, org: str, issue_id: int, which: str = "latest") -> dict[str, Any]:
        path = f"api/0/organizations/{segment(org)}/issues/{int(issue_id)}/events/{segment(which)}/"
        return self._object(path)

    def get_project_event(self, org: str, project_slug: str, event_id: str) -> dict[str, Any]:
        path = f"api/0/projects/{segment(org)}/{segment(project_slug)}/events/{segment(event_id)}/"
        return self._object(path)

    def resolve_event_id(self, org: str, event_id: str) -> dict[str, Any]:
        path = f"api/0/organizations/{segment(org)}/eventids/{segment(event_id)}/"
        return self._object(path)

    def get_release(self, org: str, version: str) -> dict[str, Any]:
        path = f"api/0/organizations/{segment(org)}/releases/{segment(version)}/"
        return self._object(path)
