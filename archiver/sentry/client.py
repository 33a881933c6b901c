"""The HTTP client for Sentry's REST API: auth, retries, rate limits, pagination.

One :class:`httpx.Client` is shared by every fetch thread (connection reuse, bounded pool).
Failure handling follows what Sentry really does (``docs/sentry-api.md``):

* 5xx, cut connections, timeouts and truncated or unparsable bodies are retried with
  exponential backoff and full jitter, a bounded number of times, then raise
  :class:`~archiver.errors.ServerError` or :class:`~archiver.errors.TransportError`;
* 429 waits until ``Retry-After`` (a proxy may add it) or ``X-Sentry-Rate-Limit-Reset`` (what
  Sentry itself sends), and requests are paced *before* the limit by the
  ``X-Sentry-Rate-Limit-*`` headers of earlier answers of the same endpoint family;
* 401/403 raise :class:`~archiver.errors.AuthError` at once; 404 and 400 are not retried.

The token travels only in the ``Authorization`` header: it is never part of a URL, a log line
or an exception message, and it is refused over plain http to anything but a loopback host.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import ipaddress
import json
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from archiver import __version__
from archiver.errors import (
    ApiError,
    AuthError,
    BadRequestError,
    EndpointGoneError,
    InsecureTransportError,
    NotFoundError,
    RateLimitedError,
    ServerError,
    TransportError,
)
from archiver.sentry.pagination import next_cursor
from archiver.sync.spool import BodyFile

log = logging.getLogger("archiver.sentry.client")

Params = Sequence[tuple[str, str]]
MAX_RATE_LIMIT_WAITS = 30
# Sentry turns Snuba timeouts and Snuba-side rate limits into 400s (``handle_query_errors``):
# such a 400 is load, not a bad request, and is retried like a 5xx.
TRANSIENT_400 = re.compile(r"timeout|timed out|rate limit|too many", re.IGNORECASE)


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
    status: int
    headers: httpx.Headers
    data: Any


@dataclass(frozen=True)
class Page:
    """One page of a list endpoint."""

    items: list[Any]
    next_cursor: str | None
    has_next: bool
    headers: Mapping[str, str]


def family_of(path: str) -> str:
    """The rate-limit family of a path: ids, slugs and versions collapsed."""
    parts = [p for p in path.split("/") if p]
    out: list[str] = []
    for i, part in enumerate(parts):
        prev = parts[i - 1] if i else ""
        prev2 = parts[i - 2] if i > 1 else ""
        if prev == "organizations" or (prev == "projects" and prev2 == "0"):
            out.append("{org}")
        elif prev2 == "projects" and parts[1:2] == ["0"] and i == 3:
            out.append("{project}")
        elif prev in ("releases", "eventids"):
            out.append("{key}")
        elif part.isdigit():
            out.append("{id}")
        elif re.fullmatch(r"[0-9a-fA-F-]{32,36}", part) or (
            prev == "events" and part in ("latest", "oldest", "recommended")
        ):
            out.append("{event}")
        else:
            out.append(part)
    return "/" + "/".join(out) + "/"


def is_loopback(host: str) -> bool:
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def format_time(value: dt.datetime) -> str:
    """ISO 8601 in UTC, as Sentry parses it: ``2024-01-01T00:00:00Z``."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    value = value.astimezone(dt.timezone.utc)
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    if value.microsecond:
        text += f".{value.microsecond:06d}"
    return text + "Z"


def _detail(response: httpx.Response) -> str:
    """Sentry's error text: ``{"detail": ...}``, a bare JSON string, or the body's start."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:200].strip()
    if isinstance(body, dict):
        detail = body.get("detail")
        return detail if isinstance(detail, str) else json.dumps(body)[:200]
    if isinstance(body, str):
        return body
    return json.dumps(body)[:200]


@dataclass
class _FamilyState:
    limit: int | None = None
    remaining: int | None = None
    reset: float | None = None
    inflight: int = 0
    semaphore: threading.BoundedSemaphore | None = None


class RateLimiter:
    """Paces requests per endpoint family from the ``X-Sentry-Rate-Limit-*`` headers."""

    def __init__(
        self,
        *,
        reserve: int,
        clock: Callable[[], float],
        sleep: Callable[[float], None],
        stats: ClientStats,
    ) -> None:
        self.reserve = reserve
        self.clock = clock
        self.sleep = sleep
        self.stats = stats
        self._states: dict[str, _FamilyState] = {}
        self._lock = threading.Lock()

    def _state(self, family: str) -> _FamilyState:
        with self._lock:
            return self._states.setdefault(family, _FamilyState())

    def before(self, family: str) -> threading.BoundedSemaphore | None:
        """Wait when the window's remaining budget (minus requests in flight) is spent.

        Returns the concurrency slot taken (to hand back to :meth:`after`), if any.
        """
        state = self._state(family)
        slot = state.semaphore
        if slot is not None:
            slot.acquire()
        while True:
            with self._lock:
                now = self.clock()
                wait = 0.0
                if state.reset is not None and state.reset <= now:
                    state.remaining, state.reset = None, None
                if (
                    state.remaining is not None
                    and state.reset is not None
                    and state.remaining - state.inflight <= self.reserve
                ):
                    wait = state.reset - now + 0.01
                if wait <= 0:
                    state.inflight += 1
                    return slot
            log.debug("pacing %s: waiting %.2fs for the rate-limit window", family, wait)
            self.stats.add(seconds_waited=wait)
            self.sleep(wait)
            with self._lock:
                if state.reset is not None and state.reset <= self.clock():
                    state.remaining, state.reset = None, None

    def after(
        self,
        family: str,
        headers: httpx.Headers | None,
        slot: threading.BoundedSemaphore | None = None,
    ) -> None:
        state = self._state(family)
        with self._lock:
            state.inflight = max(0, state.inflight - 1)
            if headers is not None:
                limit = _int(headers.get("x-sentry-rate-limit-limit"))
                remaining = _int(headers.get("x-sentry-rate-limit-remaining"))
                reset = _float(headers.get("x-sentry-rate-limit-reset"))
                concurrent = _int(headers.get("x-sentry-rate-limit-concurrentlimit"))
                if remaining is not None and reset is not None:
                    if state.reset is None or reset >= state.reset:
                        state.limit, state.remaining, state.reset = limit, remaining, reset
                    else:
                        state.remaining = min(state.remaining or remaining, remaining)
                if concurrent is not None and concurrent > 0 and state.semaphore is None:
                    state.semaphore = threading.BoundedSemaphore(concurrent)
        if slot is not None:
            slot.release()

    def exhausted(self, family: str, reset: float | None) -> None:
        """A 429 arrived: nothing is left until ``reset``."""
        state = self._state(family)
        with self._lock:
            state.remaining = 0
            if reset is not None:
                state.reset = reset


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


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
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        max_connections: int = 16,
        rate_limit_reserve: int = 1,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InsecureTransportError(f"not an http(s) URL: {base_url!r}")
        if token and parts.scheme == "http" and not is_loopback(parts.hostname):
            raise InsecureTransportError(
                f"refusing to send the auth token over plain http to {parts.hostname}; "
                "use https:// (plain http is allowed only to a loopback host)"
            )
        self.base_url = base_url.rstrip("/") + "/"
        self._token = token
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.sleep = sleep
        self.clock = clock
        self.rng = rng or random.Random()
        self._rng_lock = threading.Lock()
        self.stats = ClientStats()
        self.limiter = RateLimiter(
            reserve=rate_limit_reserve, clock=clock, sleep=sleep, stats=self.stats
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
        """Server text may echo what it was sent (a proxy's error page, a debug body)."""
        if self._token and self._token in text:
            return text.replace(self._token, "********")
        return text

    def _auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}"} if self._token else {}

    def get(
        self,
        path: str,
        params: Params | Mapping[str, Any] = (),
        *,
        parse: Callable[[Any], Any] = json.loads,
        spool: str | None = None,
    ) -> Response:
        """GET with retries, pacing and error mapping; ``data`` is the parsed JSON body.

        ``parse`` turns a 2xx body into ``data`` (``json.loads`` by default; the sync engine
        hands pages to worker processes that parse and normalize them). A ``ValueError`` from
        it means a truncated or invalid body, which is retried like a cut connection. With
        ``spool`` (a file path), ``parse`` is given a :class:`~archiver.sync.spool.BodyFile`
        instead of bytes: the body was streamed into that file (rewritten on each retry).
        """
        query: list[tuple[str, str | int | float | bool | None]] = [
            (str(k), str(v)) for k, v in (params.items() if isinstance(params, Mapping) else params)
        ]
        family = family_of(path)
        failures = 0
        waits = 0
        while True:
            slot = self.limiter.before(family)
            started = time.monotonic()
            headers: httpx.Headers | None = None
            try:
                response, body = self._fetch(path, query, spool)
                headers = response.headers
                size = body.size if isinstance(body, BodyFile) else len(body)
            except httpx.TimeoutException as exc:
                problem: str = f"timeout ({type(exc).__name__})"
            except httpx.TransportError as exc:
                problem = f"connection failed ({type(exc).__name__}: {self._redact(_safe(exc))})"
            else:
                problem = ""
            finally:
                self.limiter.after(family, headers, slot)
            self.stats.add(requests=1)
            if problem:
                failures += 1
                if failures > self.max_retries:
                    raise TransportError(
                        f"GET {path}: {problem}; gave up after {failures} attempts", path=path
                    ) from None
                self._retry(path, problem, self._backoff(failures))
                continue
            self.stats.add(bytes_received=size)
            status = response.status_code
            log.debug("GET %s -> %s (%.0f ms)", path, status, (time.monotonic() - started) * 1000)
            if status == 429:
                waits += 1
                if waits > MAX_RATE_LIMIT_WAITS:
                    raise RateLimitedError(
                        f"GET {path}: still rate limited after {waits - 1} "
                        f"waits: {self._redact(_detail(response))}",
                        path=path,
                        status=429,
                    )
                reset = _float(response.headers.get("x-sentry-rate-limit-reset"))
                self.limiter.exhausted(family, reset)
                wait = self._rate_limit_wait(response, reset, waits)
                self.stats.add(rate_limited_waits=1)
                self._retry(path, f"429 rate limited: {self._redact(_detail(response))}", wait)
                continue
            if 500 <= status < 600:
                failures += 1
                if failures > self.max_retries:
                    raise ServerError(
                        f"GET {path}: HTTP {status} {self._redact(_detail(response))}; gave up "
                        f"after {failures} attempts",
                        path=path,
                        status=status,
                        detail=self._redact(_detail(response)),
                    ) from None
                self._retry(path, f"HTTP {status}", self._backoff(failures))
                continue
            if status == 400 and TRANSIENT_400.search(detail := self._redact(_detail(response))):
                failures += 1
                if failures > self.max_retries:
                    raise BadRequestError(
                        f"GET {path}: HTTP 400 {detail}; gave up after {failures} attempts",
                        path=path,
                        status=status,
                        detail=detail,
                    ) from None
                self._retry(path, f"HTTP 400 (transient: {detail})", self._backoff(failures))
                continue
            if status >= 300:
                raise self._error(path, response)
            try:
                data = parse(body)
            except ValueError:
                failures += 1
                if failures > self.max_retries:
                    raise TransportError(
                        f"GET {path}: the body is not valid JSON "
                        f"({size} bytes); gave up after {failures} "
                        "attempts",
                        path=path,
                        status=status,
                    ) from None
                self._retry(
                    path, f"truncated or invalid JSON body ({size} bytes)", self._backoff(failures)
                )
                continue
            return Response(status, response.headers, data)

    def _fetch(
        self,
        path: str,
        query: list[tuple[str, str | int | float | bool | None]],
        spool: str | None = None,
    ) -> tuple[httpx.Response, bytes | BodyFile]:
        """One GET, read whole, as a response that holds its body outside any reference cycle.

        httpx's own response and its stream refer to each other, so a body read into it is
        freed only by the cyclic garbage collector: pages of several MB outlived their use by
        many pages (three 6 MB bodies alive at once in a sync that fetched one page at a
        time). Streaming the body out and wrapping it in a plain response frees each body as
        soon as nothing uses it. With ``spool`` (a file path), a 2xx body is streamed into
        that file chunk by chunk instead and never held whole (:mod:`archiver.sync.spool`); error
        bodies are always read into memory, for their message.
        """
        request = self._http.build_request("GET", path, params=query, headers=self._auth_headers())
        streamed = self._http.send(request, stream=True)
        body: bytes | BodyFile
        try:
            if spool is not None and 200 <= streamed.status_code < 300:
                size = 0
                with open(spool, "wb") as out:
                    for chunk in streamed.iter_bytes():
                        out.write(chunk)
                        size += len(chunk)
                body = BodyFile(spool, size)
                content = b""
            else:
                body = content = b"".join(streamed.iter_bytes())
        finally:
            streamed.close()
        headers = streamed.headers.copy()
        for decoded in ("content-encoding", "content-length"):  # the body is decoded already
            headers.pop(decoded, None)
        return httpx.Response(
            streamed.status_code, headers=headers, content=content, request=request
        ), body

    def _retry(self, path: str, reason: str, wait: float) -> None:
        log.warning("GET %s: %s; retrying in %.1fs", path, reason, wait)
        self.stats.add(retries=1, seconds_waited=wait)
        if wait > 0:
            self.sleep(wait)

    def _rate_limit_wait(self, response: httpx.Response, reset: float | None, waits: int) -> float:
        retry_after = response.headers.get("retry-after")
        if retry_after:
            seconds = _float(retry_after)
            if seconds is None:
                try:
                    when = email.utils.parsedate_to_datetime(retry_after)
                    seconds = when.timestamp() - self.clock()
                except (TypeError, ValueError):
                    seconds = None
            if seconds is not None:
                return max(0.0, seconds)
        if reset is not None:
            return max(0.05, reset - self.clock() + 0.05)
        return self._backoff(waits)

    def _error(self, path: str, response: httpx.Response) -> ApiError:
        status = response.status_code
        detail = self._redact(_detail(response))
        if status == 401:
            return AuthError(
                f"HTTP 401 from {path}: {detail} Check the auth token (SENTRY_AUTH_TOKEN): it is "
                "missing, invalid or expired.",
                path=path,
                status=status,
                detail=detail,
            )
        if status == 403:
            if self._token and self._token.startswith("sntrys_"):
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
                f"HTTP 403 from {path}: {detail} {hint}",
                path=path,
                status=status,
                detail=detail,
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
        return ApiError(
            f"HTTP {status} from {path}: {detail}", path=path, status=status, detail=detail
        )

    def get_page(
        self,
        path: str,
        params: Params,
        parse: Callable[[Any], Any] = json.loads,
        spool: str | None = None,
    ) -> Page:
        response = self.get(path, params, parse=parse, spool=spool)
        items = response.data if isinstance(response.data, list) else []
        if not isinstance(response.data, list):
            shape = getattr(response.data, "json_type", type(response.data).__name__)
            raise TransportError(f"GET {path}: expected a JSON list, got {shape}", path=path)
        cursor = next_cursor(response.headers.get("link"))
        return Page(items, cursor, cursor is not None, response.headers)

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
        path = f"api/0/organizations/{_q(org)}/"
        return _as_dict(self.get(path), path)

    def list_projects_page(self, org: str, cursor: str | None = None) -> Page:
        params: list[tuple[str, str]] = []
        if cursor:
            params.append(("cursor", cursor))
        return self.get_page(f"api/0/organizations/{_q(org)}/projects/", params)

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
        params.extend(_window(start, end))
        params.extend(("environment", e) for e in environments)
        if cursor:
            params.append(("cursor", cursor))
        return self.get_page(f"api/0/organizations/{_q(org)}/issues/", params)

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
        spool: str | None = None,
        sample: bool = False,
    ) -> Page:
        params: list[tuple[str, str]] = [("per_page", str(per_page))]
        if full:
            params.append(("full", "true"))
        if sample:  # ordered by a stable hash of the event id instead of -timestamp
            params.append(("sample", "1"))
        params.extend(_window(start, end))
        params.extend(("environment", e) for e in environments)
        if cursor:
            params.append(("cursor", cursor))
        path = f"api/0/organizations/{_q(org)}/issues/{int(issue_id)}/events/"
        return self.get_page(path, params, parse, spool)

    def list_project_events_page(
        self, org: str, project_slug: str, *, full: bool = True, cursor: str | None = None
    ) -> Page:
        params: list[tuple[str, str]] = [("full", "true")] if full else []
        if cursor:
            params.append(("cursor", cursor))
        return self.get_page(f"api/0/projects/{_q(org)}/{_q(project_slug)}/events/", params)

    def get_issue(self, org: str, issue_id: int) -> dict[str, Any]:
        path = f"api/0/organizations/{_q(org)}/issues/{int(issue_id)}/"
        return _as_dict(self.get(path), path)

    def get_issue_event(self, org: str, issue_id: int, which: str = "latest") -> dict[str, Any]:
        path = f"api/0/organizations/{_q(org)}/issues/{int(issue_id)}/events/{_q(which)}/"
        return _as_dict(self.get(path), path)

    def get_project_event(self, org: str, project_slug: str, event_id: str) -> dict[str, Any]:
        path = f"api/0/projects/{_q(org)}/{_q(project_slug)}/events/{_q(event_id)}/"
        return _as_dict(self.get(path), path)

    def resolve_event_id(self, org: str, event_id: str) -> dict[str, Any]:
        path = f"api/0/organizations/{_q(org)}/eventids/{_q(event_id)}/"
        return _as_dict(self.get(path), path)

    def get_release(self, org: str, version: str) -> dict[str, Any]:
        path = f"api/0/organizations/{_q(org)}/releases/{_q(version)}/"
        return _as_dict(self.get(path), path)


def _q(value: str) -> str:
    return quote(str(value), safe="")


def _window(start: dt.datetime | None, end: dt.datetime | None) -> list[tuple[str, str]]:
    params = []
    if start is not None:
        params.append(("start", format_time(start)))
    if end is not None:
        params.append(("end", format_time(end)))
    return params


def _as_dict(response: Response, path: str) -> dict[str, Any]:
    if not isinstance(response.data, dict):
        raise TransportError(
            f"GET {path}: expected a JSON object, got {type(response.data).__name__}", path=path
        )
    return response.data


def _safe(exc: BaseException) -> str:
    """An httpx exception's text without anything request-specific beyond the reason."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    return text[:200]
