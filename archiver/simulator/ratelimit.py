"""Sentry's rate limiter (``middleware/ratelimit.py``): fixed windows plus a concurrency cap.

Per (token, endpoint family): a counter per fixed window of ``window`` seconds on the *wall*
clock (Sentry's Redis limiter keys on ``int(now) // window``), and an in-flight counter. Every
answer of a limited family carries the ``X-Sentry-Rate-Limit-*`` headers; a refused request
gets a 429 and no ``Retry-After`` unless configured.
"""

from __future__ import annotations

import threading
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

    def limit_for(self, family: str) -> RateLimit | None:
        return self._limits.get(family)

    def acquire(self, family: str, key: str) -> Decision:
        """Count one request; the caller must :meth:`release` when an allowed one is done."""
        limit = self._limits.get(family)
        if limit is None:
            return Decision(True, [])
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
                self.release(family, key)
            return Decision(False, headers, "rate", limit, reset)
        if over_concurrency:
            return Decision(False, headers, "concurrent", limit, reset)
        return Decision(True, headers, None, limit, reset)

    def release(self, family: str, key: str) -> None:
        limit = self._limits.get(family)
        if limit is None:
            return
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
