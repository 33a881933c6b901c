"""Time as a walk sees it: the server's clock, and window bounds in whole seconds.

Windows are pinned on the server's clock (its ``Date`` header), not ours: an event is dated
by the server, so a window ``[start, end)`` with ``end`` a second of the server's now keeps
every event arriving during the walk outside it, however far the two clocks drift apart.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import threading
import time
from collections.abc import Callable, Mapping

# Without an earliest date, walks start here: before any event Sentry can hold.
FLOOR = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def floor_second(value: dt.datetime) -> dt.datetime:
    return value.replace(microsecond=0)


def epoch(value: dt.datetime) -> int:
    """A window bound in whole epoch seconds (the walk's state machine counts in seconds)."""
    return int(value.timestamp() // 1)


def from_epoch(second: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(second, dt.timezone.utc)


class ServerClock:
    """The server's idea of now, from its ``Date`` header (windows are pinned on it)."""

    def __init__(self, local: Callable[[], float] = time.time) -> None:
        self._local = local
        self._offset: float | None = None
        self._lock = threading.Lock()

    def observe(self, headers: Mapping[str, str] | None) -> None:
        if not headers:
            return
        value = headers.get("date") or headers.get("Date")
        if not value:
            return
        try:
            server = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return
        with self._lock:
            self._offset = server.timestamp() - self._local()

    def now(self) -> dt.datetime:
        with self._lock:
            offset = self._offset or 0.0
        return dt.datetime.fromtimestamp(self._local() + offset, dt.timezone.utc)
