"""The client's small safety details: no cookies kept, loopback checked, redaction exact."""

from __future__ import annotations

import socket
from typing import Any

import httpx
import pytest

from archiver.errors import InsecureTransportError, NotFoundError
from archiver.sentry import urls
from archiver.sentry.client import SentryClient

TOKEN = "sntrys_details-test-token"


def test_a_cookie_the_server_sets_is_never_sent_back():
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            200, json=[], headers={"Set-Cookie": "sessionid=abc123; Path=/; HttpOnly"}
        )

    with SentryClient(
        "https://sentry.example.com/", TOKEN, transport=httpx.MockTransport(handler)
    ) as client:
        client.list_projects_page("acme")
        client.list_projects_page("acme")
    assert len(seen) == 2
    assert "cookie" not in seen[1].headers
    assert "sessionid" not in str(seen[1].headers)


def fake_resolver(table: dict[str, list[str]]) -> Any:
    """A ``socket.getaddrinfo`` that answers from ``table`` (a missing name does not resolve)."""

    def getaddrinfo(host: str, *_args: object, **_kw: object) -> list[Any]:
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, 0))
            for a in table[host]
        ]

    return getaddrinfo


def test_a_localhost_name_is_loopback_only_when_it_resolves_there(monkeypatch):
    monkeypatch.setattr(
        socket,
        "getaddrinfo",
        fake_resolver(
            {
                "dev.localhost": ["127.0.0.1", "::1"],
                "evil.localhost": ["203.0.113.7"],
                "mixed.localhost": ["127.0.0.1", "203.0.113.7"],
                "tunnel.example": ["127.0.0.2"],
            }
        ),
    )
    assert not urls.is_loopback("evil.localhost")
    assert not urls.is_loopback("mixed.localhost")
    assert not urls.is_loopback("nowhere.localhost")  # does not resolve: not known loopback
    assert urls.is_loopback("dev.localhost")
    assert urls.is_loopback("tunnel.example")  # a name of one's own for an SSH tunnel
    assert urls.is_loopback("127.0.0.1")
    assert urls.is_loopback("[::1]")
    assert not urls.is_loopback("10.0.0.1")
    SentryClient("http://dev.localhost:9000/", TOKEN).close()
    with pytest.raises(InsecureTransportError, match=r"plain http to evil\.localhost"):
        SentryClient("http://evil.localhost:9000/", TOKEN)


def test_a_very_short_token_does_not_mangle_messages():
    def handler(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, json={"detail": "Connection to the issue store: not found"})

    client = SentryClient(
        "http://127.0.0.1:9/", "t", transport=httpx.MockTransport(handler), max_retries=0
    )
    with client, pytest.raises(NotFoundError) as caught:
        client.get_issue("acme", 1)
    assert "Connection to the issue store: not found" in str(caught.value)
    assert "***" not in str(caught.value)


def test_a_real_token_echoed_by_the_server_is_still_redacted():
    def handler(request: httpx.Request) -> httpx.Response:
        echoed = request.headers["authorization"]
        return httpx.Response(404, json={"detail": f"no issue for {echoed}"})

    client = SentryClient(
        "https://sentry.example.com/", TOKEN, transport=httpx.MockTransport(handler)
    )
    with client, pytest.raises(NotFoundError) as caught:
        client.get_issue("acme", 1)
    assert TOKEN not in str(caught.value)
    assert "no issue for Bearer ********" in str(caught.value)
