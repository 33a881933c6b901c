"""Lazy event timelines: where the i-th event of a segment sits in time, without storing it.

A *segment* is a run of ``n`` events of one issue in one environment. Its timestamps (whole
seconds) come from a monotone piecewise-linear function of the index over a few knots, in exact
integer arithmetic, so both directions are cheap:

* ``timestamp(k)`` in O(log knots);
* ``count_before(t)`` (events with timestamp < t) in O(log knots), in closed form.

Pieces whose slope is under one second per event give several events the same second, which
is exactly the tie case Sentry orders by event ID. Pages over several segments (an issue's
environments, merged issues, a project's issues) are selected by :func:`select_page` with a
binary search over time, never by materialising the events.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Segment:
    """``n`` events of one issue (``home`` = the issue index that created them).

    ``knots_k`` run ``0 = K0 < K1 < ... < Km = n``; ``knots_t`` are non-decreasing seconds. The
    k-th event (``K_j <= k < K_j+1``) has timestamp
    ``T_j + (k - K_j) * (T_j+1 - T_j) // (K_j+1 - K_j)``.
    """

    home: int
    number: int
    environment: str
    knots_k: tuple[int, ...]
    knots_t: tuple[int, ...]
    kind: str = "base"

    @property
    def n(self) -> int:
        return self.knots_k[-1]

    @property
    def first_ts(self) -> int:
        return self.timestamp(0) if self.n else 0

    @property
    def last_ts(self) -> int:
        return self.timestamp(self.n - 1) if self.n else 0

    def timestamp(self, k: int) -> int:
        ks, ts = self.knots_k, self.knots_t
        j = bisect.bisect_right(ks, k) - 1
        if j >= len(ks) - 1:
            j = len(ks) - 2
        span_k = ks[j + 1] - ks[j]
        return ts[j] + ((k - ks[j]) * (ts[j + 1] - ts[j])) // span_k

    def count_before(self, t: int) -> int:
        """How many events have a timestamp strictly before second ``t``."""
        ts, ks = self.knots_t, self.knots_k
        j = bisect.bisect_left(ts, t) - 1
        if j < 0:
            return 0
        if j >= len(ts) - 1:
            return ks[-1]
        span_k = ks[j + 1] - ks[j]
        span_t = ts[j + 1] - ts[j]  # > 0 because ts[j] < t <= ts[j + 1]
        inside = -((-(t - ts[j]) * span_k) // span_t)
        return ks[j] + min(span_k, inside)

    def count_between(self, lo: int, hi: int) -> int:
        """Events with ``lo <= timestamp < hi``."""
        if hi <= lo:
            return 0
        return self.count_before(hi) - self.count_before(lo)


def make_segment(
    home: int,
    number: int,
    environment: str,
    n: int,
    first: int,
    last: int,
    fractions: Sequence[tuple[float, float]] = (),
    kind: str = "base",
) -> Segment:
    """A segment of ``n`` events from second ``first`` to ``last`` (inclusive).

    ``fractions`` are interior knots ``(index fraction, time fraction)``; both coordinates are
    sorted here, so any random pairs give a monotone (bursty) curve.
    """
    if n <= 0:
        raise ValueError("a segment holds at least one event")
    if last < first:
        raise ValueError("last before first")
    ks = sorted({0, n, *(min(n - 1, max(1, round(f * n))) for f, _ in fractions if n > 1)})
    inner_t = sorted(first + round(tf * (last - first)) for _, tf in fractions)
    times = [first, *inner_t[: len(ks) - 2], last + 1]
    while len(times) < len(ks):
        times.insert(-1, times[-2])
    return Segment(home, number, environment, tuple(ks), tuple(times), kind)


def burst_segment(
    home: int, number: int, environment: str, n: int, at: int, spread: int
) -> Segment:
    """``n`` events evenly spread over the ``spread`` seconds ending at ``at`` (0: one second)."""
    start = at - max(0, spread)
    return Segment(home, number, environment, (0, n), (start, at + 1), kind="added")


Position = tuple[Segment, int]
"""One event: its segment and its index in it."""


def _window_counts(segments: Sequence[Segment], lo: int, hi: int) -> list[tuple[Segment, int, int]]:
    out = []
    for seg in segments:
        a = seg.count_before(lo)
        b = seg.count_before(hi)
        if b > a:
            out.append((seg, a, b))
    return out


def window_total(segments: Sequence[Segment], lo: int, hi: int) -> int:
    """How many events of the segments fall in ``[lo, hi)``."""
    return sum(b - a for _, a, b in _window_counts(segments, lo, hi))


def select_page(
    segments: Sequence[Segment],
    lo: int,
    hi: int,
    offset: int,
    limit: int,
    event_id: Callable[[Segment, int], str],
    tie_key: Callable[[str], bytes] | None = None,
) -> tuple[list[tuple[int, str, Segment, int]], int]:
    """The newest-first page ``[offset, offset + limit)`` of the events in ``[lo, hi)``.

    Order: timestamp descending, then ``tie_key(event_id)`` descending (default: the event
    ID). Returns the page as ``(timestamp, event_id, segment, index)`` tuples and the window's
    total count.
    """
    live = _window_counts(segments, lo, hi)
    total = sum(b - a for _, a, b in live)
    if offset >= total or limit <= 0:
        return [], total
    want_last = min(offset + limit, total) - 1  # newest-first position of the page's last event

    def newer_or_equal(t: int) -> int:
        """Events in the window with timestamp >= t."""
        return sum(b - max(a, seg.count_before(t)) for seg, a, b in live)

    def second_of(position: int, ceiling: int) -> int:
        """The timestamp of the event at a newest-first position (at most ``ceiling``)."""
        if len(live) == 1:
            seg, _, b = live[0]
            return seg.timestamp(b - 1 - position)
        low, high = lo, ceiling  # invariant: newer_or_equal(low) > position
        while low < high:
            mid = (low + high + 1) // 2
            if newer_or_equal(mid) > position:
                low = mid
            else:
                high = mid - 1
        return low

    newest = max(seg.timestamp(b - 1) for seg, _, b in live)
    t_top = second_of(offset, newest)
    t_bottom = second_of(want_last, t_top)
    found: list[tuple[int, str, Segment, int]] = []
    for seg, a, b in live:
        i0 = max(a, seg.count_before(t_bottom))
        i1 = min(b, seg.count_before(t_top + 1))
        for k in range(i0, i1):
            found.append((seg.timestamp(k), event_id(seg, k), seg, k))
    if tie_key is None:
        found.sort(key=lambda row: (row[0], row[1]), reverse=True)
    else:
        found.sort(key=lambda row: (row[0], tie_key(row[1])), reverse=True)
    skip = offset - newer_or_equal(t_top + 1)
    return found[skip : skip + limit], total


def select_sample_page(
    segments: Sequence[Segment],
    lo: int,
    hi: int,
    offset: int,
    limit: int,
    event_id: Callable[[Segment, int], str],
    order: Callable[[str], int],
) -> tuple[list[tuple[int, str, Segment, int]], int]:
    """Like :func:`select_page` but ordered by ``order(event_id)`` alone (``sample=1``).

    Materialises the window's events: meant for small windows (one crowded second).
    """
    found = [
        (seg.timestamp(k), event_id(seg, k), seg, k)
        for seg, a, b in _window_counts(segments, lo, hi)
        for k in range(a, b)
    ]
    found.sort(key=lambda row: order(row[1]))
    return found[offset : offset + limit] if limit > 0 else [], len(found)


def position_of(
    segments: Sequence[Segment],
    lo: int,
    hi: int,
    target: tuple[int, str],
    event_id: Callable[[Segment, int], str],
) -> int:
    """The newest-first position of the event ``(timestamp, event_id)`` within ``[lo, hi)``."""
    ts, eid = target
    newer = 0
    for seg in segments:
        a = seg.count_before(max(lo, ts + 1))
        b = seg.count_before(hi)
        newer += max(0, b - a)
        for k in range(seg.count_before(ts), seg.count_before(ts + 1)):
            if lo <= ts < hi and event_id(seg, k) > eid:
                newer += 1
    return newer
