"""Sentry's rate limits as a client sees them: endpoint families, pacing, and how long to wait.

Sentry limits each endpoint family (one URL pattern, ids and slugs collapsed) per token, in
fixed windows, and reports the window on every answer (``X-Sentry-Rate-Limit-Limit``,
``-Remaining``, ``-Reset`` as epoch seconds, ``-ConcurrentLimit``). The :class:`RateLimiter`
paces requests *before* the window is spent, so a sync rarely sees a 429; when one comes,
:func:`rate_limit_wait` says how long to wait (``Retry-After`` when a proxy adds it, else the
window's reset). How many requests of a family are in flight at once follows the server's
``ConcurrentLimit`` (:mod:`archiver.sentry.concurrency`); a 429 for concurrency (the window
still has budget) lowers that number instead of waiting for the window.
"""

from __future__ import annotations

import email.utils
import logging
import math
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from archiver.errors import RateLimitedError
from archiver.sentry.concurrency import ConcurrencyGate

log = logging.getLogger("archiver.sentry.client")

# A window that resets further ahead than this is no window: a proxy's junk, or milliseconds
# sent as seconds. Such a reset is ignored (the client backs off as after any failure); a
# plausible one beyond the client's longest wait fails the request instead.
PLAUSIBLE_RESET = 31 * 86400.0

Backoff = Callable[[], float]
"""The client's next backoff (exponential, jittered), for a wait nothing else bounds."""


def family_of(path: str) -> str:
    """The rate-limit family of a path: ids, slugs and versions collapsed."""
    parts = [p for p in path.split("/") if p]
    out: list[str] = []
    for i, part in enumerate(parts):
        prev = parts[i - 1] if i else ""
        prev2 = parts[i - 2] if i > 1 else ""
        if prev == "organizations" or (prev == "projects" and prev2 == "0"):
            out.append("{org}")
        elif prev2 == "projects" and parts[1:2] == ["0"] and i == 3:
            out.append("{project}")
        elif prev in ("releases", "eventids"):
            out.append("{key}")
        elif part.isdigit():
            out.append("{id}")
        elif re.fullmatch(r"[0-9a-fA-F-]{32,36}", part) or (
            prev == "events" and part in ("latest", "oldest", "recommended")
        ):
            out.append("{event}")
        else:
            out.append(part)
    return "/" + "/".join(out) + "/"


def header_int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def header_float(value: str | None) -> float | None:
    """A header's number; None when absent, unparsable or not finite (``nan``, ``inf``)."""
    try:
        number = float(value) if value is not None else None
    except ValueError:
        return None
    return number if number is not None and math.isfinite(number) else None


def reset_of(headers: httpx.Headers, now: float) -> float | None:
    """The epoch second the current window ends (``X-Sentry-Rate-Limit-Reset``), if plausible."""
    reset = header_float(headers.get("x-sentry-rate-limit-reset"))
    if reset is None or reset > now + PLAUSIBLE_RESET:
        return None
    return reset


def rate_limit_wait(
    headers: httpx.Headers, reset: float | None, now: float, backoff: Callable[[], float]
) -> float:
    """Seconds to wait after a 429: ``Retry-After``, else until ``reset``, else ``backoff``."""
    retry_after = headers.get("retry-after")
    if retry_after:
        seconds = header_float(retry_after)
        if seconds is None:
            try:
                when = email.utils.parsedate_to_datetime(retry_after)
                seconds = when.timestamp() - now
            except (TypeError, ValueError):
                seconds = None
        if seconds is not None:
            return max(0.0, seconds)
    if reset is not None:
        return max(0.05, reset - now + 0.05)
    return backoff()


def concurrency_refusal(headers: httpx.Headers, detail: str | None) -> bool:
    """Whether a 429 refused a concurrency slot, not the window: Sentry's text says so, or
    the window still had budget (``Remaining`` above 0)."""
    if detail and "concurrency" in detail.lower():
        return True
    remaining = header_int(headers.get("x-sentry-rate-limit-remaining"))
    return remaining is not None and remaining > 0


def too_long(path: str, url: str, wait: float, max_wait: float, why: str) -> RateLimitedError:
    """The error for a wait beyond the longest the client makes (the run goes on without it)."""
    return RateLimitedError(
        f"GET {url}: rate limited: {why} {wait:.0f}s, longer than the client waits "
        f"({max_wait / 60:.0f} min); giving up on this request",
        path=path,
        status=429,
    )


@dataclass
class _FamilyState:
    limit: int | None = None
    remaining: int | None = None
    reset: float | None = None
    inflight: int = 0


class RateLimiter:
    """Paces requests per endpoint family from the ``X-Sentry-Rate-Limit-*`` headers.

    ``pause`` waits (and counts the wait); ``reserve`` is how many requests of a window are
    left unspent, for other clients of the same token; a window that would take longer than
    ``max_wait`` to reset raises :class:`~archiver.errors.RateLimitedError` instead.
    ``concurrency`` is the most requests of one family in flight at once, whatever the server
    allows (:class:`~archiver.sentry.concurrency.ConcurrencyGate`).
    """

    def __init__(
        self,
        *,
        reserve: int,
        clock: Callable[[], float],
        pause: Callable[[float], None],
        max_wait: float = math.inf,
        concurrency: int = 4,
    ) -> None:
        self.reserve = reserve
        self.clock = clock
        self.pause = pause
        self.max_wait = max_wait
        self.concurrency = concurrency
        self._states: dict[str, _FamilyState] = {}
        self._gates: dict[str, ConcurrencyGate] = {}
        self._lock = threading.Lock()

    def _state(self, family: str) -> _FamilyState:
        with self._lock:
            return self._states.setdefault(family, _FamilyState())

    def gate(self, family: str) -> ConcurrencyGate:
        """The family's concurrency gate (made on first use)."""
        with self._lock:
            gate = self._gates.get(family)
            if gate is None:
                gate = self._gates[family] = ConcurrencyGate(self.concurrency)
            return gate

    def before(self, family: str, path: str = "", url: str = "") -> ConcurrencyGate:
        """Wait for a concurrency slot, then while the window's budget (minus requests in
        flight) is spent.

        Returns the slot's gate, to hand back to :meth:`after`. ``path`` and ``url`` (the
        request's) are named in the error when the wait would be too long.
        """
        state = self._state(family)
        slot = self.gate(family)
        slot.acquire()
        try:
            self._wait_for_budget(family, state, path, url)
        except BaseException:  # too long a wait, or a stop: the slot goes back
            slot.release(None)
            raise
        return slot

    def _wait_for_budget(self, family: str, state: _FamilyState, path: str, url: str) -> None:
        """Pause until the window has budget left, then count the request in flight."""
        while True:
            with self._lock:
                now = self.clock()
                wait = 0.0
                if state.reset is not None and state.reset <= now:
                    state.remaining, state.reset = None, None
                if (
                    state.remaining is not None
                    and state.reset is not None
                    and state.remaining - state.inflight <= self.reserve
                ):
                    wait = state.reset - now + 0.01
                if wait <= 0:
                    state.inflight += 1
                    return
            if wait > self.max_wait:
                raise too_long(path, url, wait, self.max_wait, "the rate-limit window resets in")
            log.debug("pacing %s: waiting %.2fs for the rate-limit window", family, wait)
            self.pause(wait)
            with self._lock:
                if state.reset is not None and state.reset <= self.clock():
                    state.remaining, state.reset = None, None

    def after(
        self,
        family: str,
        response: httpx.Response | None,
        slot: ConcurrencyGate | None = None,
    ) -> None:
        """One request of ``family`` is over (``response``: its answer, if one came): read its
        window and concurrency limit, hand back its slot."""
        state = self._state(family)
        with self._lock:
            state.inflight = max(0, state.inflight - 1)
            if response is not None:
                headers = response.headers
                limit = header_int(headers.get("x-sentry-rate-limit-limit"))
                remaining = header_int(headers.get("x-sentry-rate-limit-remaining"))
                reset = reset_of(headers, self.clock())
                if remaining is not None and reset is not None:
                    if state.reset is None or reset >= state.reset:
                        state.limit, state.remaining, state.reset = limit, remaining, reset
                    else:
                        state.remaining = min(state.remaining or remaining, remaining)
        if slot is not None:
            slot.release(response)

    def refused(
        self, family: str, headers: httpx.Headers | None, detail: str | None, backoff: Backoff
    ) -> float:
        """A 429 arrived: seconds to wait before trying again.

        Refused for concurrency (another client of the token holds slots): the family's
        concurrency target goes down and the retry waits a short ``backoff``, not the window.
        Refused for the window: nothing is left until its reset (``Retry-After`` first).
        """
        headers = headers if headers is not None else httpx.Headers()
        if concurrency_refusal(headers, detail):
            self.gate(family).refused()
            return rate_limit_wait(headers, None, self.clock(), backoff)
        reset = reset_of(headers, self.clock())
        self.exhausted(family, reset)
        return rate_limit_wait(headers, reset, self.clock(), backoff)

    def exhausted(self, family: str, reset: float | None) -> None:
        """A 429 arrived: nothing is left until ``reset``."""
        state = self._state(family)
        with self._lock:
            state.remaining = 0
            if reset is not None:
                state.reset = reset
