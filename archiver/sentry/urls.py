"""URLs and query values as Sentry takes them, and where the token may travel.

The token is refused over plain http to anything but a loopback host: on a loopback address
(a local Sentry, the simulator, an SSH tunnel) nobody else sees the traffic.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
from http.cookiejar import CookieJar, DefaultCookiePolicy
from urllib.parse import quote, urlsplit

from archiver.errors import InsecureTransportError


def is_loopback(host: str) -> bool:
    """True when every address ``host`` stands for is a loopback address.

    A name is resolved, not trusted by its spelling: ``x.localhost`` is loopback on a
    resolver that follows RFC 6761, but another may send it to DNS and get a remote
    address, where the token would travel in clear. A name that does not resolve is not
    known to be loopback.
    """
    host = host.strip("[]").lower()
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return False
    addresses = {str(info[4][0]).split("%", 1)[0] for info in infos}
    return bool(addresses) and all(ipaddress.ip_address(a).is_loopback for a in addresses)


def check_base_url(base_url: str, token: str | None) -> None:
    """Refuse a URL that is not http(s), and a token over plain http to a remote host."""
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InsecureTransportError(f"not an http(s) URL: {base_url!r}")
    if token and parts.scheme == "http" and not is_loopback(parts.hostname):
        raise InsecureTransportError(
            f"refusing to send the auth token over plain http to {parts.hostname}; "
            "use https:// (plain http is allowed only to a loopback host)"
        )


def no_cookies() -> CookieJar:
    """A cookie jar that keeps nothing a server sets.

    httpx keeps cookies by default and sends them back; Sentry's API needs none (the token
    authenticates every request), and a cookie set by a proxy or a hostile server in front of
    it would otherwise travel with every later request of the run.
    """
    return CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))


def format_time(value: dt.datetime) -> str:
    """ISO 8601 in UTC, as Sentry parses it: ``2024-01-01T00:00:00Z``."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    value = value.astimezone(dt.timezone.utc)
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    if value.microsecond:
        text += f".{value.microsecond:06d}"
    return text + "Z"


def segment(value: str) -> str:
    """One path segment (an organisation slug, a release version): every ``/`` escaped."""
    return quote(str(value), safe="")


def window_params(start: dt.datetime | None, end: dt.datetime | None) -> list[tuple[str, str]]:
    """The ``start``/``end`` query parameters of a time window (either may be open)."""
    params = []
    if start is not None:
        params.append(("start", format_time(start)))
    if end is not None:
        params.append(("end", format_time(end)))
    return params
