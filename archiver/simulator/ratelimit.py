"""Sentry's rate limiter (``middleware/ratelimit.py``): fixed windows plus a concurrency cap.

Per (token, endpoint family): a counter per fixed window of ``window`` seconds on the *wall*
clock (Sentry's Redis limiter keys on ``int(now) // window``), and an in-flight counter. Every
answer of a limited family carries the ``X-Sentry-Rate-Limit-*`` headers; a refused request
gets a 429 and no ``Retry-After`` unless configured.

For tests and benchmarks it also keeps what a client did to it: requests in flight per family
(now and at the peak, limited families or not), refusals per reason (``rate``/``concurrent``:
a client that follows ``ConcurrentLimit`` alone never gets a ``concurrent`` one) and an
optional ``hold`` hook that an admitted request passes through (a test holds requests there
to see how many a client keeps in flight at once).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from .config import RateLimit


@dataclass(frozen=True)
class Decision:
    allowed: bool
    headers: list[tuple[str, str]]
    reason: str | None = None
    """None, ``rate`` or ``concurrent``."""
    limit: RateLimit | None = None
    reset: int = 0


class RateLimiter:
    """Thread-safe fixed-window and concurrency limiter."""

    def __init__(self, limits: Mapping[str, RateLimit], clock: Callable[[], float]) -> None:
        self._limits = dict(limits)
        self._clock = clock
        self._lock = threading.Lock()
        self._windows: dict[tuple[str, str], tuple[int, int]] = {}
        self._in_flight: dict[tuple[str, str], int] = {}
        self._active: Counter[str] = Counter()
        self.peak: Counter[str] = Counter()
        """The most requests of each family in flight at once (admitted, not yet answered)."""
        self.refused: Counter[str] = Counter()
        """429s per reason: ``rate`` (the window is spent) and ``concurrent``."""
        self.hold: Callable[[str, int], None] | None = None
        """Called with (family, requests of it now in flight) by each admitted request."""

    def limit_for(self, family: str) -> RateLimit | None:
        return self._limits.get(family)

    def set_limit(self, family: str, limit: RateLimit | None) -> None:
        """Change (or with None remove) a family's limit while serving: Sentry's options can."""
        with self._lock:
            if limit is None:
                self._limits.pop(family, None)
            else:
                self._limits[family] = limit

    def in_flight(self, family: str) -> int:
        with self._lock:
            return self._active[family]

    def _admit(self, family: str, decision: Decision) -> Decision:
        with self._lock:
            self._active[family] += 1
            active = self._active[family]
            self.peak[family] = max(self.peak[family], active)
        if self.hold is not None:
            self.hold(family, active)
        return decision

    def _refuse(self, decision: Decision) -> Decision:
        assert decision.reason is not None
        with self._lock:
            self.refused[decision.reason] += 1
        return decision

    def acquire(self, family: str, key: str) -> Decision:
        """Count one request; the caller must :meth:`release` when an allowed one is done."""
        limit = self._limits.get(family)
        if limit is None:
            return self._admit(family, Decision(True, []))
        now = self._clock()
        bucket = int(now) // limit.window
        reset = (bucket + 1) * limit.window
        slot = (key, family)
        with self._lock:
            seen_bucket, count = self._windows.get(slot, (bucket, 0))
            if seen_bucket != bucket:
                count = 0
            count += 1
            self._windows[slot] = (bucket, count)
            in_flight = self._in_flight.get(slot, 0) + 1
            over_concurrency = limit.concurrent is not None and in_flight > limit.concurrent
            if not over_concurrency:
                self._in_flight[slot] = in_flight
        headers = [
            ("X-Sentry-Rate-Limit-Limit", str(limit.limit)),
            ("X-Sentry-Rate-Limit-Remaining", str(max(0, limit.limit - count))),
            ("X-Sentry-Rate-Limit-Reset", str(reset)),
        ]
        if limit.concurrent is not None:
            headers += [
                ("X-Sentry-Rate-Limit-ConcurrentLimit", str(limit.concurrent)),
                (
                    "X-Sentry-Rate-Limit-ConcurrentRemaining",
                    str(max(0, limit.concurrent - in_flight)),
                ),
            ]
        if count > limit.limit:
            if not over_concurrency:
                self._release_slot(family, key)
            return self._refuse(Decision(False, headers, "rate", limit, reset))
        if over_concurrency:
            return self._refuse(Decision(False, headers, "concurrent", limit, reset))
        return self._admit(family, Decision(True, headers, None, limit, reset))

    def release(self, family: str, key: str) -> None:
        """An admitted request is answered: its concurrency slot goes back."""
        with self._lock:
            self._active[family] = max(0, self._active[family] - 1)
        self._release_slot(family, key)

    def _release_slot(self, family: str, key: str) -> None:
        slot = (key, family)
        with self._lock:
            remaining = self._in_flight.get(slot, 0) - 1
            if remaining > 0:
                self._in_flight[slot] = remaining
            else:
                self._in_flight.pop(slot, None)


def rate_limit_message(limit: RateLimit, reason: str) -> str:
    """The text Sentry puts in the 429 body."""
    if reason == "concurrent":
        return (
            "You are attempting to go above the allowed concurrency for this endpoint. "
            f"Concurrency limit is {limit.concurrent}"
        )
    return (
        "You are attempting to use this endpoint too frequently. "
        f"Limit is {limit.limit} requests in {limit.window} seconds"
    )
