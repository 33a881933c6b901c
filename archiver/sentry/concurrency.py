"""How many requests of one endpoint family are in flight at once: as many as the server allows.

Sentry caps the requests of a token in flight per endpoint family and says the cap on every
answer (``X-Sentry-Rate-Limit-ConcurrentLimit``); one request more is refused with a 429.
Waiting costs most of a request's time (half a second or more from sentry.io), so a client
that keeps fewer in flight than allowed leaves most of its allowance unused, and one that
keeps more is refused. A :class:`ConcurrencyGate` per family keeps exactly the allowance:

* before the first answer, **one request goes alone** (nothing is known yet; a burst could be
  refused whole);
* then **the server's limit**, followed as it changes (down or up), never above ``ceiling``
  (``--concurrency``: the fetch threads there are, and the most a run asks of a server);
* a server that sends no such header (self-hosted Sentry has no rate limiter) gets the
  ceiling: the configured concurrency;
* a **concurrency 429** means another client of the same token takes slots too: the target is
  halved (once per burst of refusals) and grows back by one per target's worth of answers
  (AIMD, as TCP shares a link), never above the server's limit.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import httpx

CONCURRENT_LIMIT = "x-sentry-rate-limit-concurrentlimit"
FIRST = 1
"""Requests of a family in flight before its first answer."""


_AHEAD = threading.local()


@contextlib.contextmanager
def first_in_line() -> Iterator[None]:
    """This thread's requests take the next free slot before those of other threads.

    For a walk's read-ahead (:mod:`archiver.sync.prefetch`): a long issue's walk is a chain of
    requests, and a sync lasts as long as its longest chain, so its next page should not queue
    behind the first pages of short issues that can go any time.
    """
    _AHEAD.on = True
    try:
        yield
    finally:
        _AHEAD.on = False


def concurrent_limit(headers: httpx.Headers) -> int | None:
    """The answer's ``ConcurrentLimit``, if it has a usable one."""
    try:
        limit = int(headers.get(CONCURRENT_LIMIT, ""))
    except ValueError:
        return None
    return limit if limit > 0 else None


def tells_limits(response: httpx.Response) -> bool:
    """Whether an answer speaks for the server's limits: its own answers (any status but 5xx)
    or any answer with a rate-limit header. A proxy's 502 without headers tells nothing."""
    if response.status_code < 500:
        return True
    return any(name.startswith("x-sentry-rate-limit-") for name in response.headers)


class ConcurrencyGate:
    """The requests of one family in flight: at most :attr:`allowed` (thread-safe)."""

    def __init__(self, ceiling: int) -> None:
        self.ceiling = max(1, ceiling)
        self.heard = False
        """An answer told the server's limits (with the header or without)."""
        self.limit: int | None = None
        """The server's ``ConcurrentLimit``, once an answer carried it."""
        self.target = float(FIRST)
        self.in_flight = 0
        self._since_decrease = 0
        self._first_waiting = 0  # threads :func:`first_in_line` waiting for a slot
        self._cond = threading.Condition()

    @property
    def cap(self) -> int:
        """The most allowed now: one before the first answer, else the server's limit (or
        the ceiling without one), never above the ceiling."""
        if not self.heard:
            return min(FIRST, self.ceiling)
        return min(self.ceiling, self.limit) if self.limit is not None else self.ceiling

    @property
    def allowed(self) -> int:
        return max(1, min(self.cap, int(self.target)))

    def acquire(self) -> None:
        """Wait until one more request may go (requests in flight end within their deadline)."""
        first = getattr(_AHEAD, "on", False)
        with self._cond:
            self._first_waiting += first
            while self.in_flight >= self.allowed or (self._first_waiting and not first):
                self._cond.wait()
            self.in_flight += 1
            if first:
                self._first_waiting -= 1
                self._cond.notify_all()

    def try_acquire(self) -> bool:
        with self._cond:
            if self.in_flight >= self.allowed:
                return False
            self.in_flight += 1
            return True

    def release(self, response: httpx.Response | None) -> None:
        """A request is over; ``response`` is its answer (None: none came, nothing learnt)."""
        with self._cond:
            self.in_flight = max(0, self.in_flight - 1)
            if response is not None and tells_limits(response):
                self._learn(concurrent_limit(response.headers))
                self._since_decrease += 1
                if response.status_code != 429 and self.target < self.cap:
                    self.target = min(float(self.cap), self.target + 1.0 / self.target)
            self._cond.notify_all()

    def _learn(self, limit: int | None) -> None:
        """Take the server's limit (``None``: this answer did not say one)."""
        old_cap = self.cap
        if limit is not None:
            self.limit = limit
        elif self.heard:
            return  # a limit once said holds: a header missing from one answer changes nothing
        self.heard = True
        new_cap = self.cap
        if new_cap != old_cap:
            # at the old limit (not backing off): straight to the new one; else no higher
            self.target = float(new_cap) if self.target >= old_cap else min(self.target, new_cap)

    def refused(self) -> None:
        """A concurrency 429: halve the target, once per burst (a target's worth of answers)."""
        with self._cond:
            if self._since_decrease < self.target and self.target < self.cap:
                return  # refused in the same burst as an earlier refusal: halved already
            self.target = max(1.0, min(self.target, float(self.cap)) / 2)
            self._since_decrease = 0
