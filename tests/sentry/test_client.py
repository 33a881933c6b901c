"""The HTTP client in isolation (httpx.MockTransport): retries, rate limits, errors, secrecy.

Sleeping and the clock are injected, so these tests are instant and deterministic.
"""

from __future__ import annotations

import gc
import gzip
import json
import random
import sys
from collections.abc import Callable, Iterator, Mapping

import httpx
import pytest

from archiver.errors import (
    ApiError,
    AuthError,
    InsecureTransportError,
    NotFoundError,
    PaginationError,
    ServerError,
    TransportError,
)
from archiver.sentry.client import SentryClient
from archiver.sentry.pagination import Paginator, next_cursor, parse_link_header
from archiver.sentry.urls import is_loopback

TOKEN = "sntrys_unit-test-secret-token"
LINK_MORE = (
    '<https://sentry.io/api/0/issues/1/events/?&cursor=0:0:1>; rel="previous"; '
    'results="false"; cursor="0:0:1", '
    '<https://sentry.io/api/0/issues/1/events/?&cursor=0:100:0>; rel="next"; '
    'results="true"; cursor="0:100:0"'
)
LINK_END = LINK_MORE.replace('results="true"', 'results="false"')


class Fake:
    """Answers requests from a script and records them; a fake clock that sleep advances."""

    def __init__(self, answers: list[Callable[[httpx.Request], httpx.Response]]) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []
        self.now = 1_000_000.0
        self.slept: list[float] = []

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.answers.pop(0)(request)

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    def client(self, **kw: object) -> SentryClient:
        return SentryClient(
            "https://sentry.example.com/",
            TOKEN,
            transport=httpx.MockTransport(self.handler),
            sleep=self.sleep,
            clock=lambda: self.now,
            rng=random.Random(1),
            **kw,  # type: ignore[arg-type]
        )


def ok(
    data: object, headers: dict[str, str] | None = None
) -> Callable[[httpx.Request], httpx.Response]:
    return lambda _r: httpx.Response(200, json=data, headers=headers or {})


def status(
    code: int, body: object = None, headers: dict[str, str] | None = None
) -> Callable[[httpx.Request], httpx.Response]:
    return lambda _r: httpx.Response(
        code, json=body if body is not None else {"detail": "x"}, headers=headers or {}
    )


def test_bearer_token_sent_and_page_cursor_read():
    fake = Fake([ok([{"id": "1"}], {"Link": LINK_MORE})])
    with fake.client() as client:
        page = client.list_issue_events_page(
            "acme", 1, start=None, end=None, environments=(), full=True
        )
    assert fake.requests[0].headers["authorization"] == f"Bearer {TOKEN}"
    assert fake.requests[0].url.params["full"] == "true"
    assert page.items == [{"id": "1"}]
    assert page.next_cursor == "0:100:0"
    assert page.has_next


class Chunks(httpx.SyncByteStream):
    """A body that arrives in pieces, as from a socket (not one bytes object httpx keeps)."""

    def __init__(self, *chunks: bytes) -> None:
        self.chunks = chunks

    def __iter__(self) -> Iterator[bytes]:
        yield from self.chunks


def test_a_body_is_freed_once_parsed_not_at_the_next_garbage_collection():
    # httpx's response and its stream refer to each other: a body read into that response
    # lived until the cyclic collector ran, and pages of several MB piled up in the sync.
    seen: list[bytes] = []

    def parse(body: bytes) -> object:
        seen.append(body)
        return json.loads(body)

    fake = Fake([lambda _r: httpx.Response(200, stream=Chunks(b'[{"id":', b' "1"}]'))])
    gc.disable()
    try:
        with fake.client() as client:
            assert client.get("api/0/issues/1/events/", parse=parse).data == [{"id": "1"}]
        refs = sys.getrefcount(seen[0])  # outside the assert: pytest's rewrite holds one more
        assert refs == 2  # `seen` and getrefcount's own argument: nothing else holds the body
    finally:
        gc.enable()


def test_gzip_bodies_are_decoded_once_pages_and_errors_alike():
    def gz(status: int, data: object) -> Callable[[httpx.Request], httpx.Response]:
        packed = gzip.compress(json.dumps(data).encode())
        return lambda _r: httpx.Response(
            status,
            stream=Chunks(packed[:9], packed[9:]),
            headers={"Content-Encoding": "gzip", "Link": LINK_END},
        )

    fake = Fake(
        [gz(200, [{"id": "1"}]), gz(404, {"detail": "The requested resource does not exist"})]
    )
    with fake.client() as client:
        page = client.list_issue_events_page(
            "acme", 1, start=None, end=None, environments=(), full=True
        )
        assert page.items == [{"id": "1"}]
        assert not page.has_next
        with pytest.raises(NotFoundError, match="does not exist"):
            client.get_issue("acme", 1)


def test_5xx_cut_and_truncated_bodies_are_retried_with_backoff_then_succeed():
    def cut(_r: httpx.Request) -> httpx.Response:
        raise httpx.RemoteProtocolError("peer closed connection without sending complete message")

    truncated = lambda _r: httpx.Response(200, content=b'[{"id": "1", "ti')  # noqa: E731
    fake = Fake([status(502), cut, truncated, ok([{"id": "1"}], {"Link": LINK_END})])
    with fake.client(max_retries=5) as client:
        page = client.list_issue_events_page(
            "acme", 1, start=None, end=None, environments=(), full=True
        )
    assert page.items == [{"id": "1"}]
    assert not page.has_next
    assert client.stats.retries == 3
    assert len(fake.slept) == 3
    assert all(0 <= s <= 60 for s in fake.slept)


def test_retries_are_bounded_and_the_error_says_why():
    fake = Fake([status(503)] * 3)
    with fake.client(max_retries=2) as client, pytest.raises(ServerError, match="503"):
        client.get_issue("acme", 5)
    assert len(fake.requests) == 3  # the first try and two retries


def test_429_waits_until_the_rate_limit_reset_sentry_sends():
    reset = 1_000_000.0 + 7
    fake = Fake(
        [
            status(
                429,
                {
                    "detail": "You are attempting to use this endpoint too frequently. "
                    "Limit is 40 requests in 1 seconds"
                },
                {
                    "X-Sentry-Rate-Limit-Reset": str(int(reset)),
                    "X-Sentry-Rate-Limit-Remaining": "0",
                    "X-Sentry-Rate-Limit-Limit": "40",
                },
            ),
            ok({"id": "5"}),
        ]
    )
    with fake.client() as client:
        assert client.get_issue("acme", 5)["id"] == "5"
    assert fake.slept
    assert fake.slept[0] == pytest.approx(7.05, abs=0.01)


def test_429_honours_retry_after_when_a_proxy_adds_it():
    fake = Fake([status(429, None, {"Retry-After": "3"}), ok({"id": "5"})])
    with fake.client() as client:
        client.get_issue("acme", 5)
    assert fake.slept[0] == pytest.approx(3.0)


def test_pacing_waits_before_the_limit_is_hit():
    headers = {
        "X-Sentry-Rate-Limit-Remaining": "0",
        "X-Sentry-Rate-Limit-Limit": "40",
        "X-Sentry-Rate-Limit-Reset": str(1_000_000 + 2),
    }
    fake = Fake([ok({"id": "1"}, headers), ok({"id": "2"}, headers)])
    with fake.client() as client:
        client.get_issue("acme", 1)
        client.get_issue("acme", 2)
    assert len(fake.requests) == 2  # no 429 was needed
    assert fake.slept
    assert fake.slept[0] > 0  # the second request waited for the reset


@pytest.mark.parametrize(
    ("code", "kind", "words"),
    [
        (401, AuthError, "auth token"),
        (403, AuthError, "event:read"),
        (404, NotFoundError, "404"),
    ],
)
def test_client_errors_are_not_retried_and_name_the_problem(code, kind, words):
    fake = Fake([status(code, {"detail": "nope"})])
    with fake.client() as client, pytest.raises(kind, match=words):
        client.get_issue("acme", 5)
    assert len(fake.requests) == 1


def test_the_token_never_appears_in_errors_or_reprs():
    def echo_token(request: httpx.Request) -> httpx.Response:  # a server that echoes headers
        return httpx.Response(500, text=json.dumps({"detail": dict(request.headers)}))

    fake = Fake([echo_token] * 2 + [status(401, {"detail": f"bad token {TOKEN}"})])
    with fake.client(max_retries=1) as client:
        with pytest.raises(ApiError) as first:
            client.get_issue("acme", 1)
        with pytest.raises(AuthError) as second:
            client.get_issue("acme", 1)
        text = " ".join(
            [
                str(first.value),
                repr(first.value),
                str(second.value),
                repr(second.value),
                repr(client),
            ]
        )
    assert TOKEN not in text
    assert "unit-test-secret" not in text


def test_plain_http_only_to_loopback_hosts():
    with pytest.raises(InsecureTransportError, match="plain http"):
        SentryClient("http://sentry.internal.example/", TOKEN)
    SentryClient("http://127.0.0.1:9000/", TOKEN).close()
    SentryClient("http://localhost:9000/", TOKEN).close()
    assert is_loopback("::1")
    assert not is_loopback("10.0.0.1")
    with pytest.raises(InsecureTransportError):
        SentryClient("ftp://sentry.io/", TOKEN)


def test_a_list_endpoint_answering_an_object_is_an_error():
    fake = Fake([ok({"detail": "not a list"})] * 7)
    with fake.client() as client, pytest.raises(TransportError, match="expected a JSON list"):
        client.list_projects_page("acme")


def test_link_header_parsing():
    links = parse_link_header(LINK_MORE)
    assert links["next"].results
    assert links["next"].cursor == "0:100:0"
    assert not links["previous"].results
    assert next_cursor(LINK_MORE) == "0:100:0"
    assert next_cursor(LINK_END) is None
    assert next_cursor(None) is None
    assert parse_link_header("garbage") == {}


def follow(answers: Mapping[str | None, tuple[str, str | None, bool, int]]) -> list[str]:
    """Walk ``answers`` (cursor -> page, next cursor, more follow, items) with a Paginator."""
    paginator = Paginator()
    pages = []
    while not paginator.finished:
        page, nxt, has_next, count = answers[paginator.cursor]
        pages.append(page)
        paginator.advance(nxt, has_next, count)
    return pages


def test_the_paginator_follows_cursors_until_no_more_results():
    answers = {
        None: ("p1", "0:100:0", True, 100),
        "0:100:0": ("p2", "0:200:0", True, 100),
        "0:200:0": ("p3", "0:300:0", False, 7),  # Sentry's last page still names a cursor
    }
    assert follow(answers) == ["p1", "p2", "p3"]
    assert follow({None: ("only", None, True, 3)}) == ["only"]  # no next cursor: the end
    paginator = Paginator("0:100:0")
    assert paginator.cursor == "0:100:0"
    assert not paginator.finished  # resumed mid-way
    with pytest.raises(PaginationError, match="repeated"):
        paginator.advance("0:100:0", True, 100)  # the cursor it was resumed at: a loop


@pytest.mark.parametrize(
    "cycle",
    [
        ["0:100:0", "0:100:0"],  # A -> A
        ["0:100:0", "0:200:0", "0:100:0"],  # A -> B -> A
        ["0:100:0", "0:200:0", "0:300:0", "0:200:0"],  # A -> B -> C -> B
    ],
)
def test_the_paginator_refuses_a_cursor_it_followed_before(cycle: list[str]) -> None:
    paginator = Paginator()
    for cursor in cycle[:-1]:
        paginator.advance(cursor, True, 100)
    with pytest.raises(PaginationError, match="repeated the cursor"):
        paginator.advance(cycle[-1], True, 100)
    assert paginator.cursor == cycle[-2]  # a refused page moves nothing


def test_the_paginator_refuses_endless_empty_pages_that_claim_more() -> None:
    paginator = Paginator(max_empty_pages=3)
    paginator.advance("0:1:0", True, 0)
    paginator.advance("0:2:0", True, 5)  # a page with items resets the run of empty ones
    for n in range(3, 6):
        paginator.advance(f"0:{n}:0", True, 0)
    assert paginator.cursor == "0:5:0"  # three empty pages in a row are tolerated
    with pytest.raises(PaginationError, match="4 empty pages in a row"):
        paginator.advance("0:6:0", True, 0)
    paginator = Paginator(max_empty_pages=3)
    for n in range(1, 4):
        paginator.advance(f"0:{n}:0", True, 0)
    paginator.advance("0:4:0", False, 0)  # an empty last page that says so ends the walk
    assert paginator.finished


def test_the_paginator_refuses_to_advance_past_the_end() -> None:
    paginator = Paginator()
    paginator.advance(None, False, 3)
    assert paginator.finished
    with pytest.raises(PaginationError, match="finished"):
        paginator.advance("0:100:0", True, 100)
