"""The simulator's notion of "now" for its data.

Everything time-dependent in the simulated organisation (the default 90-day window, event
expiry, where new events land) reads one injectable clock, so tests can freeze time and move it
explicitly. Rate limiting deliberately does *not* use this clock (it uses the wall clock, like
Sentry's Redis limiter), so a frozen data clock never freezes the limiter windows.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Protocol, runtime_checkable

DEFAULT_NOW = dt.datetime(2024, 6, 1, 12, 0, 0, tzinfo=dt.timezone.utc)
"""The fixed instant the simulator uses when nobody names one: tests and demos stay stable."""


def to_epoch(value: dt.datetime | str | float | int) -> float:
    """Epoch seconds from a datetime (naive means UTC), an ISO 8601 string or a number."""
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        value = dt.datetime.fromisoformat(text)
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return value.timestamp()


@runtime_checkable
class Clock(Protocol):
    """A source of "now" (epoch seconds, float) that tests can move forward."""

    def now(self) -> float:
        """The current instant, epoch seconds."""
        ...

    def advance(self, seconds: float) -> None:
        """Move now forward (events older than the retention expire as it moves)."""
        ...


class FrozenClock:
    """A clock that stands still until told to move: the default, for deterministic data."""

    def __init__(self, now: dt.datetime | str | float | int = DEFAULT_NOW) -> None:
        self._now = to_epoch(now)
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("time only moves forward")
        with self._lock:
            self._now += seconds

    def set(self, now: dt.datetime | str | float | int) -> None:
        """Jump to an instant (never backwards)."""
        target = to_epoch(now)
        with self._lock:
            if target < self._now:
                raise ValueError("time only moves forward")
            self._now = target


class SystemClock:
    """Real time plus an offset: for demos that want "now" to keep moving."""

    def __init__(self, offset_seconds: float = 0.0) -> None:
        self._offset = offset_seconds
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return time.time() + self._offset

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("time only moves forward")
        with self._lock:
            self._offset += seconds


def iso_z(epoch: float, *, micros: bool = True) -> str:
    """Sentry's timestamp text: ``2020-06-17T22:26:56.098086Z`` (or whole seconds)."""
    moment = dt.datetime.fromtimestamp(epoch, tz=dt.timezone.utc)
    if micros:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
