"""``SimulatorServer``: the HTTP side of the simulator (threads, sockets, auth, limits, faults).

Request path: route -> auth (401/403 bodies as Sentry's) -> rate limiter -> fault plan (data
faults change the org first; transport faults replace or damage the answer) -> endpoint ->
response written in one ``send`` with ``Content-Length`` (HTTP/1.1 keep-alive, Nagle off, so a
client reuses its connection without 40 ms stalls).

Bound to 127.0.0.1 only. A path without its trailing slash gets a 404 (Sentry's API routes all
end in ``/`` and its catch-all answers 404 with a hint; the hint is given here as
``{"detail": ...}`` so JSON clients can read it).
"""

from __future__ import annotations

import email.utils
import hashlib
import socket
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from .config import ALL_SCOPES, FAMILY_SCOPES, ORG_AUTH_TOKEN_SCOPES, SimulatorConfig
from .data import SimulatedOrg
from .endpoints import SentryApi
from .faults import FaultInjector, FaultPlan
from .payloads import EventRenderer
from .ratelimit import RateLimiter, rate_limit_message
from .requestlog import LoggedRequest, RequestLog
from .routes import route
from .wire import ApiRequest, ApiResponse

QUERY_TIMEOUT = "Query timeout. Please try with a smaller date range or fewer conditions."
LOOPBACK = ("127.0.0.1", "localhost", "::1")
FORBIDDEN = "You do not have permission to perform this action."
REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    410: "Gone",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}
STANDARD_HEADERS = (
    ("Allow", "GET, HEAD, OPTIONS"),
    ("Vary", "Accept-Language, Cookie"),
    ("Content-Language", "en"),
    ("X-Frame-Options", "deny"),
    ("X-Content-Type-Options", "nosniff"),
    (
        "Access-Control-Expose-Headers",
        "X-Sentry-Error, X-Sentry-Direct-Hit, X-Hits, X-Max-Hits, Endpoint, Retry-After, Link",
    ),
)


@dataclass
class Outcome:
    """What to write for one request, and how to damage it."""

    response: ApiResponse
    content_type: str = "application/json"
    cut: bool = False
    truncate: bool = False
    delay_ms: float = 0.0
    release: Callable[[], None] = field(default=lambda: None)
    labels: tuple[str, ...] = ()


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], simulator: SimulatorServer) -> None:
        self.simulator = simulator
        self.open_sockets: set[socket.socket] = set()
        self.sockets_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.sockets_lock:
            self.open_sockets.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.sockets_lock:
            self.open_sockets.discard(request)
        super().shutdown_request(request)

    def close_all(self) -> None:
        with self.sockets_lock:
            sockets = list(self.open_sockets)
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default stderr access log."""

    def do_GET(self) -> None:
        self._serve("GET")

    def do_HEAD(self) -> None:
        self._serve("HEAD")

    def do_OPTIONS(self) -> None:
        self._serve("OPTIONS")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def _serve(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        simulator = self.server.simulator
        headers = {k.lower(): v for k, v in self.headers.items()}
        host = headers.get("host") or f"127.0.0.1:{simulator.port}"
        outcome = simulator.dispatch(method, self.path, headers, f"http://{host}")
        try:
            delay = (simulator.config.latency_ms + outcome.delay_ms) / 1000.0
            if delay > 0:
                time.sleep(delay)
            # Sentry's middleware ends the request (its concurrency slot too) in
            # process_response, before the body leaves: a client that waits for an answer
            # before sending the next request never meets its own slot still taken.
            outcome.release()
            self._write(method, outcome)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            outcome.release()

    def _write(self, method: str, outcome: Outcome) -> None:
        response = outcome.response
        body = response.body
        if outcome.truncate:
            body = body[: max(1, len(body) * 2 // 3)]
        lines = [
            f"HTTP/1.1 {response.status} {REASONS.get(response.status, 'Unknown')}",
            # The data clock, not the wall clock: clients pin their windows on the server's
            # time (as they must against sentry.io), and the simulator's "now" may be frozen.
            f"Date: {email.utils.formatdate(self.server.simulator.org.now(), usegmt=True)}",
            f"Content-Type: {outcome.content_type}",
            f"Content-Length: {len(body)}",
            *(f"{k}: {v}" for k, v in STANDARD_HEADERS),
            *(f"{k}: {v}" for k, v in response.headers),
        ]
        if outcome.cut or self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")
        if method == "HEAD":
            self.wfile.write(head)
            return
        if outcome.cut:
            self.wfile.write(head + body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        self.wfile.write(head + body)


class SimulatorServer:
    """A Sentry API look-alike over HTTP for one :class:`SimulatedOrg` (see module docstring).

    ``token=None`` disables authentication. ``port=0`` picks a free port (see :attr:`url`).
    """

    def __init__(
        self,
        org: SimulatedOrg,
        *,
        token: str | None = "sim-token",
        host: str = "127.0.0.1",
        port: int = 0,
        config: SimulatorConfig | None = None,
    ) -> None:
        if host not in LOOPBACK:
            raise ValueError("the simulator binds to the loopback interface only")
        self.org = org
        self.token = token
        self.host = "127.0.0.1" if host == "localhost" else host
        self.config = config or SimulatorConfig()
        self.renderer = EventRenderer(org, cache_bytes=self.config.cache_bytes)
        self.api = SentryApi(org, self.config, self.renderer)
        self.log = RequestLog(self.config.log_size)
        self.limiter = RateLimiter(self.config.rate_limits, self.config.wall_clock)
        self.faults = FaultInjector(self.config.faults)
        self._tokens: dict[str, frozenset[str]] = dict(self.config.extra_tokens)
        self._tokens.update((t, ALL_SCOPES) for t in self.config.user_tokens)
        self._tokens.update((t, ORG_AUTH_TOKEN_SCOPES) for t in self.config.org_auth_tokens)
        if token is not None:
            self._tokens[token] = ALL_SCOPES
        self._requested_port = port
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self) -> SimulatorServer:
        if self._httpd is not None:
            return self
        self._httpd = _HTTPServer((self.host, self._requested_port), self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="sentry-simulator",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.close_all()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("server not started")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT/``"""
        return f"http://{self.host}:{self.port}/"

    # --- request handling ----------------------------------------------------------------------

    def _auth(self, headers: dict[str, str], family: str) -> tuple[str, ApiResponse | None]:
        """(rate-limit key, error response or None) for a request to ``family``."""
        if self.token is None and len(self._tokens) == 0:
            return "anonymous", None
        header = headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        if not header:
            if self.token is None:
                return "anonymous", None
            return "", ApiResponse.detail(401, "Authentication credentials were not provided.")
        value = value.strip()
        if scheme.lower() != "bearer" or not value:
            return "", ApiResponse.detail(401, "Invalid token")
        if value in self.config.expired_tokens:
            return "", ApiResponse.detail(401, "Token expired")
        scopes = self._tokens.get(value)
        if scopes is None:
            return "", ApiResponse.detail(401, "Invalid token")
        if not scopes & FAMILY_SCOPES.get(family, ALL_SCOPES):
            return "", ApiResponse.detail(403, FORBIDDEN)
        return hashlib.sha256(value.encode()).hexdigest()[:16], None

    def _hidden_projects(self, headers: dict[str, str]) -> frozenset[str]:
        """Slugs of the projects the request's user token is not a member of."""
        if not self.config.user_tokens:
            return frozenset()
        value = headers.get("authorization", "").partition(" ")[2].strip()
        return frozenset(self.config.user_tokens.get(value, ()))

    def dispatch(self, method: str, target: str, headers: dict[str, str], base_url: str) -> Outcome:
        """Answer one request (no socket involved; the handler writes the outcome)."""
        split = urlsplit(target)
        path = split.path
        query = parse_qsl(split.query, keep_blank_values=True)
        found = route(path)
        family = found[0] if found else None
        number, family_number = self.log.next_numbers(family)
        outcome = self._answer(method, path, query, headers, base_url, found, number, family_number)
        status = outcome.response.status
        self.log.record(
            LoggedRequest(number, method, path, split.query, family, status, outcome.labels)
        )
        return outcome

    def _answer(
        self,
        method: str,
        path: str,
        query: list[tuple[str, str]],
        headers: dict[str, str],
        base_url: str,
        found: tuple[str, dict[str, str]] | None,
        number: int,
        family_number: int,
    ) -> Outcome:
        if found is None:
            return Outcome(_not_routed(path))
        family, params = found
        key, denied = self._auth(headers, family)
        if denied is not None:
            if denied.status == 401:
                denied.headers.append(("WWW-Authenticate", 'Bearer realm="api"'))
            return Outcome(denied)
        if method == "OPTIONS":
            return Outcome(ApiResponse(200, b""))
        if method not in ("GET", "HEAD"):
            return Outcome(ApiResponse.detail(405, f'Method "{method}" not allowed.'))
        decision = self.limiter.acquire(family, key)
        if not decision.allowed:
            assert decision.limit is not None
            assert decision.reason is not None
            return Outcome(
                self._too_many(
                    rate_limit_message(decision.limit, decision.reason),
                    decision.headers,
                    decision.reset,
                )
            )
        release = self._releaser(family, key)
        try:
            plan = self.faults.plan(number, family, family_number)
            request = ApiRequest(
                method, path, query, headers, base_url, params, self._hidden_projects(headers)
            )
            if not plan.empty:
                early = self._apply_faults(plan, request, decision.headers, number)
                if early is not None:
                    early.release = release
                    return early
            response = self.api.handle(family, request)
        except Exception:  # a simulator bug: answer like Sentry does, and say so on stderr
            traceback.print_exc()
            error_id = hashlib.md5(f"crash:{number}".encode()).hexdigest()
            response = ApiResponse.json(500, {"detail": "Internal Error", "errorId": error_id})
        except BaseException:
            release()
            raise
        response.headers.extend(decision.headers)
        return Outcome(
            response,
            cut=plan.cut,
            truncate=plan.truncate,
            delay_ms=plan.delay_ms,
            release=release,
            labels=tuple(plan.labels),
        )

    def _releaser(self, family: str, key: str) -> Callable[[], None]:
        """Gives back the request's concurrency slot once its answer is ready (once only)."""
        once = threading.Lock()

        def release() -> None:
            if once.acquire(blocking=False):
                self.limiter.release(family, key)

        return release

    def _too_many(self, message: str, headers: list[tuple[str, str]], reset: int) -> ApiResponse:
        body: object = message if self.config.rate_limit_body == "string" else {"detail": message}
        response = ApiResponse.json(429, body, headers)
        if self.config.retry_after:
            wait = max(1, int(reset - self.config.wall_clock() + 0.999))
            response.headers.append(("Retry-After", str(wait)))
        return response

    def _request_issue(self, request: ApiRequest) -> int | None:
        raw = request.params.get("issue", "")
        return int(raw) if raw.isdigit() else None

    def _apply_faults(
        self,
        plan: FaultPlan,
        request: ApiRequest,
        limit_headers: list[tuple[str, str]],
        number: int,
    ) -> Outcome | None:
        """Apply data faults; return an early (error) outcome for status faults."""
        for action in plan.actions:
            issue_id = (
                action.issue_id if action.issue_id is not None else self._request_issue(request)
            )
            try:
                if action.kind == "advance":
                    self.org.advance(action.seconds)
                elif issue_id is None:
                    continue
                elif action.kind == "add_events":
                    self.org.add_events(issue_id, action.count)
                elif action.kind == "delete_issue":
                    self.org.delete_issue(issue_id)
                elif action.kind == "merge_issue":
                    self._merge_somewhere(issue_id)
            except KeyError:
                continue  # the issue is already gone: nothing to do
        if plan.status is None:
            return None
        if plan.status == 429:
            limit = self.limiter.limit_for(request_family(request)) or None
            message = (
                rate_limit_message(limit, "rate")
                if limit
                else (
                    "You are attempting to use this endpoint too frequently. "
                    "Limit is 40 requests in 1 seconds"
                )
            )
            outcome = Outcome(
                self._too_many(message, list(limit_headers), int(self.config.wall_clock()) + 1)
            )
        elif plan.status == 400:  # a Snuba timeout, as handle_query_errors words it
            outcome = Outcome(ApiResponse.detail(400, QUERY_TIMEOUT))
        elif plan.status == 500:
            error_id = hashlib.md5(f"{self.config.faults.seed}:{number}".encode()).hexdigest()
            outcome = Outcome(
                ApiResponse.json(500, {"detail": "Internal Error", "errorId": error_id})
            )
        else:
            reason = REASONS.get(plan.status, "Error")
            text = f"<html><body><h1>{plan.status} {reason}</h1></body></html>\n"
            outcome = Outcome(ApiResponse(plan.status, text.encode()), content_type="text/html")
        outcome.cut, outcome.truncate, outcome.delay_ms = plan.cut, plan.truncate, plan.delay_ms
        outcome.labels = tuple(plan.labels)
        return outcome

    def _merge_somewhere(self, issue_id: int) -> None:
        """Merge the issue into another live issue of its project (the lowest id)."""
        source = self.org.resolve_issue(issue_id)
        if source is None:
            return
        others = sorted(
            (i for i in self.org.live_issues() if i.project is source.project and i is not source),
            key=lambda i: i.id,
        )
        if others:
            self.org.merge_issue(source.id, others[0].id)


def _not_routed(path: str) -> ApiResponse:
    """Sentry's catch-all 404, with its hint when only the trailing slash is missing."""
    if not path.endswith("/") and route(path + "/") is not None:
        return ApiResponse.detail(
            404, f"Route not found, did you forget a trailing slash? try: {path}/"
        )
    return ApiResponse.detail(404, "The requested resource does not exist")


def request_family(request: ApiRequest) -> str:
    found = route(request.path)
    return found[0] if found else ""
