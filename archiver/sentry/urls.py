"""URLs and query values as Sentry takes them, and where the token may travel.

The token is refused over plain http to anything but a loopback host: on a loopback address
(a local Sentry, the simulator, an SSH tunnel) nobody else sees the traffic.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from urllib.parse import quote, urlsplit

from archiver.errors import InsecureTransportError


def is_loopback(host: str) -> bool:
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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
