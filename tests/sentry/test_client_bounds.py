"""No unbounded wait in the client (issue 15): waits are capped, junk reset values ignored.

httpx.MockTransport with an injected sleep and clock: instant, and a sleep the client should
never ask for fails the test instead of hanging it.
"""

from __future__ import annotations

import http.server
import math
import socket
import ssl
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from archiver.errors import ApiError, InterruptedRun, RateLimitedError, TransportError
from archiver.sentry.client import SentryClient
from tests.sentry.test_client import TOKEN, Fake, ok, status

DAY = 86400.0
NOW = 1_000_000.0  # Fake's clock at the start


class StrictFake(Fake):
    """A Fake whose sleep refuses what would hang a real run (not finite, or over 15 min)."""

    def sleep(self, seconds: float) -> None:
        assert math.isfinite(seconds), f"asked to sleep {seconds}"
        assert 0 <= seconds <= 15 * 60, f"asked to sleep {seconds}s"
        super().sleep(seconds)


def limited(headers: dict[str, str]) -> httpx.Response:
    return httpx.Response(429, json={"detail": "slow down"}, headers=headers)


@pytest.mark.parametrize(
    "headers",
    [
        {"Retry-After": "86400"},
        {"Retry-After": "Fri, 31 Dec 2100 23:59:59 GMT"},
        {"X-Sentry-Rate-Limit-Reset": str(int(NOW + DAY)), "X-Sentry-Rate-Limit-Remaining": "0"},
    ],
)
def test_a_429_asking_for_a_wait_beyond_the_cap_fails_that_request_at_once(
    headers: dict[str, str],
) -> None:
    fake = StrictFake([lambda _r: limited(headers), ok({"id": "5"})])
    with fake.client() as client, pytest.raises(RateLimitedError) as err:
        client.get_issue("acme", 5)
    assert fake.slept == []  # no day-long sleep, not even a first part of it
    assert len(fake.requests) == 1
    assert "15 min" in str(err.value)
    assert TOKEN not in str(err.value)


def test_pacing_toward_a_window_reset_beyond_the_cap_fails_at_once() -> None:
    headers = {
        "X-Sentry-Rate-Limit-Remaining": "0",
        "X-Sentry-Rate-Limit-Limit": "40",
        "X-Sentry-Rate-Limit-Reset": str(int(NOW + DAY)),
    }
    fake = StrictFake([ok({"id": "1"}, headers), ok({"id": "2"})])
    with fake.client() as client:
        client.get_issue("acme", 1)
        with pytest.raises(RateLimitedError, match="15 min"):
            client.get_issue("acme", 2)
    assert fake.slept == []
    assert len(fake.requests) == 1


def test_a_wait_under_the_cap_is_still_waited() -> None:
    fake = StrictFake([lambda _r: limited({"Retry-After": "600"}), ok({"id": "5"})])
    with fake.client() as client:
        assert client.get_issue("acme", 5) == {"id": "5"}
    assert fake.slept == [600.0]


@pytest.mark.parametrize("reset", ["nan", "inf", "-inf", "32503680000", "1e300"])
def test_a_429_with_a_reset_that_is_not_finite_or_implausible_backs_off_normally(
    reset: str,
) -> None:
    headers = {"X-Sentry-Rate-Limit-Reset": reset, "X-Sentry-Rate-Limit-Remaining": "0"}
    fake = StrictFake([lambda _r: limited(headers), ok({"id": "5"}), ok({"id": "6"})])
    with fake.client() as client:
        assert client.get_issue("acme", 5) == {"id": "5"}
        assert client.get_issue("acme", 6) == {"id": "6"}  # no pacing toward the junk reset
    assert len(fake.slept) == 1
    assert 0 <= fake.slept[0] <= 60  # the client's backoff (backoff_max)


@pytest.mark.parametrize("value", ["nan", "inf"])
def test_a_retry_after_that_is_not_finite_backs_off_normally(value: str) -> None:
    fake = StrictFake([lambda _r: limited({"Retry-After": value}), ok({"id": "5"})])
    with fake.client() as client:
        assert client.get_issue("acme", 5) == {"id": "5"}
    assert len(fake.slept) == 1
    assert 0 <= fake.slept[0] <= 60


@pytest.mark.parametrize("reset", ["nan", "inf", "32503680000"])
def test_pacing_ignores_a_reset_that_is_not_finite_or_implausible(reset: str) -> None:
    headers = {"X-Sentry-Rate-Limit-Remaining": "0", "X-Sentry-Rate-Limit-Reset": reset}
    fake = StrictFake([ok({"id": "1"}, headers), ok({"id": "2"})])
    with fake.client() as client:
        client.get_issue("acme", 1)
        assert client.get_issue("acme", 2) == {"id": "2"}
    assert fake.slept == []


def test_a_stop_during_a_retry_wait_interrupts_the_request() -> None:
    stop = threading.Event()
    fake = StrictFake([status(503), status(503), ok({"id": "5"})])

    def sleep_then_stop(seconds: float) -> None:  # SIGTERM arrives during the backoff
        fake.slept.append(seconds)
        stop.set()

    fake.sleep = sleep_then_stop  # type: ignore[method-assign]
    with fake.client(stop=stop) as client, pytest.raises(InterruptedRun):
        client.get_issue("acme", 5)
    assert len(fake.requests) == 1  # no retry after the stop


def test_a_threads_own_stop_ends_its_waits_and_only_its_own() -> None:
    """A project's walk stops without the run (handed over to another sync): a wait of its
    thread ends with InterruptedRun; another thread's, or a wait outside the block, does not."""
    run, project = threading.Event(), threading.Event()
    fake = StrictFake([lambda _r: limited({"Retry-After": "600"})] * 2 + [ok({"id": "5"})])

    def sleep_then_hand_over(seconds: float) -> None:  # the lease is lost during the wait
        fake.slept.append(seconds)
        project.set()

    fake.sleep = sleep_then_hand_over  # type: ignore[method-assign]
    with fake.client(stop=run) as client:
        with client.stopping(project), pytest.raises(InterruptedRun):
            client.get_issue("acme", 5)
        assert len(fake.requests) == 1  # no retry once the project stopped
        assert client.get_issue("acme", 5) == {"id": "5"}  # outside the block: waited, retried
    assert fake.slept == [600.0, 600.0]
    assert not run.is_set()


def test_a_long_wait_ends_promptly_when_the_stop_event_is_set() -> None:
    # No injected sleep: the client waits on the stop event itself, for real.
    stop = threading.Event()
    fake = StrictFake([lambda _r: limited({"Retry-After": "600"}), ok({"id": "5"})])
    client = SentryClient(
        "https://sentry.example.com/",
        TOKEN,
        transport=httpx.MockTransport(fake.handler),
        clock=lambda: fake.now,
        stop=stop,
    )
    timer = threading.Timer(0.2, stop.set)
    timer.start()
    started = time.monotonic()
    try:
        with client, pytest.raises(InterruptedRun):
            client.get_issue("acme", 5)
    finally:
        timer.cancel()
    assert time.monotonic() - started < 5  # not the 600 s the server asked for
    assert len(fake.requests) == 1


def test_pacing_waits_on_the_stop_event_too() -> None:
    stop = threading.Event()
    stop.set()  # already stopping: a pacing wait must not begin
    headers = {"X-Sentry-Rate-Limit-Remaining": "0", "X-Sentry-Rate-Limit-Reset": str(NOW + 30)}
    fake = StrictFake([ok({"id": "1"}, headers), ok({"id": "2"})])
    with fake.client(stop=stop) as client:
        client.get_issue("acme", 1)  # no wait needed: answered
        with pytest.raises(InterruptedRun):
            client.get_issue("acme", 2)
    assert fake.slept == []
    assert len(fake.requests) == 1


class Trickle(httpx.SyncByteStream):
    """A body that arrives one byte every 2 s (on the fake's monotonic clock): each read is
    quick enough for httpx's per-read timeout, the whole is not."""

    def __init__(self, fake: Fake, body: bytes) -> None:
        self.fake, self.body = fake, body

    def __iter__(self) -> Iterator[bytes]:
        for byte in self.body:
            self.fake.now += 2
            yield bytes([byte])


def test_a_body_trickling_in_fails_after_a_total_deadline_and_counts_as_a_timeout() -> None:
    fake = StrictFake([])
    fake.answers = [lambda _r: httpx.Response(200, stream=Trickle(fake, b" " * 500 + b"{}"))] * 2
    ends: list[float] = []

    def sleep(seconds: float) -> None:
        ends.append(fake.now)
        StrictFake.sleep(fake, seconds)

    fake.sleep = sleep  # type: ignore[method-assign]
    client = fake.client(timeout=5, max_retries=1, monotonic=lambda: fake.now)
    with client, pytest.raises(TransportError, match="timeout") as err:
        client.get_issue("acme", 5)
    assert len(fake.requests) == 2  # retried once, as any timeout
    assert ends[0] - 1_000_000.0 <= 5 * 4  # the first attempt gave up after a few timeouts,
    assert "gave up after 2 attempts" in str(err.value)  # not after the 1,000 s it would take


def refused_port() -> int:
    """A local port nothing listens on (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def real_client(url: str, fake: Fake, **kw: object) -> SentryClient:
    """A client over real sockets, with the fake's sleep and clock."""
    clock = lambda: fake.now  # noqa: E731
    return SentryClient(url, TOKEN, sleep=fake.sleep, clock=clock, **kw)  # type: ignore[arg-type]


def test_a_refused_connection_fails_after_a_couple_of_quick_tries_naming_host_and_port() -> None:
    port = refused_port()
    fake = StrictFake([])
    client = real_client(f"http://127.0.0.1:{port}/", fake)
    with client, pytest.raises(TransportError) as err:
        client.get_issue("acme", 5)
    text = str(err.value)
    assert f"127.0.0.1:{port}" in text
    assert "refused" in text
    assert f"http://127.0.0.1:{port}/api/0/organizations/acme/issues/5/" in text
    assert len(fake.slept) <= 2  # a couple of quick tries, not the whole retry budget
    assert sum(fake.slept) <= 3
    assert TOKEN not in text


@pytest.fixture
def plain_http_server() -> Iterator[int]:
    """A plain-http server (answers anything with 200 {}), for clients speaking TLS to it."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def test_https_to_a_plain_http_server_fails_at_once_with_a_hint(plain_http_server: int) -> None:
    port = plain_http_server
    fake = StrictFake([])
    client = real_client(f"https://127.0.0.1:{port}/", fake)
    with client, pytest.raises(TransportError) as err:
        client.get_issue("acme", 5)
    text = str(err.value)
    assert fake.slept == []  # not retried: it will not get better
    assert f"127.0.0.1:{port}" in text
    assert "TLS" in text
    assert f"http://127.0.0.1:{port}/" in text  # the hint: the server speaks plain http
    assert TOKEN not in text


def test_a_certificate_failure_fails_at_once_with_a_hint() -> None:
    def untrusted(request: httpx.Request) -> httpx.Response:
        cause = ssl.SSLCertVerificationError(
            1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed"
        )
        raise httpx.ConnectError(str(cause), request=request) from cause

    fake = StrictFake([untrusted] * 7)
    with fake.client() as client, pytest.raises(TransportError) as err:
        client.get_issue("acme", 5)
    text = str(err.value)
    assert len(fake.requests) == 1
    assert "certificate" in text
    assert "SSL_CERT_FILE" in text
    assert "sentry.example.com:443" in text


def test_errors_name_the_full_url_never_the_token() -> None:
    fake = StrictFake([status(404, {"detail": "nope"}), status(503), status(503)])
    url = "https://sentry.example.com/api/0/organizations/acme/issues/5/"
    with fake.client(max_retries=1) as client:
        with pytest.raises(ApiError) as missing:
            client.get_issue("acme", 5)
        with pytest.raises(ApiError) as failing:
            client.get_issue("acme", 5)
    assert url in str(missing.value)
    assert url in str(failing.value)
    assert missing.value.path == "api/0/organizations/acme/issues/5/"  # the path stays a path
    assert TOKEN not in str(missing.value) + str(failing.value)
