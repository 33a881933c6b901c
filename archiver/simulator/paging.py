"""Sentry's cursors, its three paginators and the ``Link`` header, byte for byte.

Mirrors ``sentry/utils/cursors.py``, ``sentry/api/paginator.py`` and ``sentry/api/base.py``:

* a cursor is ``value:offset:is_prev``; anything else is ``400 Invalid cursor parameter.``;
* ``GenericOffsetPaginator`` (event lists): value always 0, next = ``0:{offset+limit}:0``;
* ``OffsetPaginator`` (projects): value = page size, offset = page number;
* ``SequencePaginator`` (issue search): value = sort score, offset = how many items with that
  same score to skip, so ties survive page boundaries;
* the Link header always has both links, previous first, URIs re-encoded like Django's
  ``QueryDict.urlencode`` (``:`` -> ``%3A``, space -> ``+``) with ``cursor`` removed.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar
from urllib.parse import quote, quote_plus

T = TypeVar("T")

LINK_HEADER = '<{uri}&cursor={cursor}>; rel="{name}"; results="{has_results}"; cursor="{cursor}"'


class InvalidCursor(ValueError):
    """The request's cursor parameter does not parse (400 ``Invalid cursor parameter.``)."""


@dataclass(frozen=True)
class Cursor:
    value: int | float
    offset: int
    is_prev: bool
    has_results: bool | None = None

    def __str__(self) -> str:
        return f"{self.value}:{self.offset}:{int(self.is_prev)}"

    @classmethod
    def parse(cls, text: str) -> Cursor:
        """``Cursor.from_string``: three ``:``-separated numbers, else :class:`InvalidCursor`."""
        bits = text.split(":")
        if len(bits) != 3:
            raise InvalidCursor(text)
        try:
            value: int | float = float(bits[0]) if "." in bits[0] else int(bits[0])
            return cls(value, int(bits[1]), bool(int(bits[2])))
        except (TypeError, ValueError) as exc:
            raise InvalidCursor(text) from exc


@dataclass(frozen=True)
class CursorResult(Generic[T]):
    results: list[T]
    prev: Cursor
    next: Cursor
    hits: int | None = None
    max_hits: int | None = None


def generic_offset_page(
    fetch: Callable[[int, int], list[T]], limit: int, cursor: Cursor | None
) -> CursorResult[T]:
    """``GenericOffsetPaginator``: ``fetch(offset, limit + 1)`` tells whether more exist."""
    offset = cursor.offset if cursor is not None else 0
    data = fetch(offset, limit + 1)
    has_more = len(data) == limit + 1
    if has_more:
        data.pop()
    return CursorResult(
        data,
        prev=Cursor(0, max(0, offset - limit), True, offset > 0),
        next=Cursor(0, max(0, offset + limit), False, has_more),
    )


def offset_page(items: Sequence[T], limit: int, cursor: Cursor | None) -> CursorResult[T]:
    """``OffsetPaginator``: cursor value = page size, offset = page number."""
    if cursor is None:
        cursor = Cursor(0, 0, False)
    page = cursor.offset
    size = int(cursor.value) or limit
    start = page * int(cursor.value)
    results = list(items[start : start + size + 1])
    if cursor.value != limit:
        results = results[-(limit + 1) :]
    return CursorResult(
        results[:limit],
        prev=Cursor(limit, page - 1, True, page > 0),
        next=Cursor(limit, page + 1, False, len(results) > limit),
    )


def _reverse_bisect_left(scores: Sequence[float], x: float, hi: int | None = None) -> int:
    """First index whose score is <= x in a descending list (Sentry's ``reverse_bisect_left``)."""
    lo, hi = 0, len(scores) if hi is None else hi
    while lo < hi:
        mid = (lo + hi) // 2
        if scores[mid] > x:
            lo = mid + 1
        else:
            hi = mid
    return lo


def sequence_page(
    scored: Sequence[tuple[int | float, T]],
    limit: int,
    cursor: Cursor | None,
    *,
    reverse: bool = True,
    max_hits: int | None = None,
) -> CursorResult[T]:
    """``SequencePaginator`` over ``(score, item)`` pairs, sorted already (descending if
    ``reverse``)."""
    scores = [s for s, _ in scored]
    values = [v for _, v in scored]

    def search(x: float, hi: int | None = None) -> int:
        if reverse:
            return _reverse_bisect_left(scores, x, hi)
        return bisect.bisect_left(scores, x, 0, len(scores) if hi is None else hi)

    if cursor is None:
        cursor = Cursor(0, 0, False)
    if cursor.value == 0:  # noqa: SIM108 - mirrors Sentry's code
        position = len(scores) if cursor.is_prev else 0
    else:
        position = search(cursor.value)
    position += cursor.offset
    if cursor.is_prev:
        hi = min(position, len(scores))
        lo = max(hi - limit, 0)
    else:
        lo = max(position, 0)
        hi = min(lo + limit, len(scores))
    if scores:
        prev_score = scores[min(lo, len(scores) - 1)]
        prev = Cursor(prev_score, lo - search(prev_score, hi=lo), True, lo > 0)
        next_score = scores[min(hi, len(scores) - 1)]
        nxt = Cursor(next_score, hi - search(next_score, hi=hi), False, hi < len(scores))
    else:
        prev = Cursor(cursor.value, cursor.offset, True, False)
        nxt = Cursor(cursor.value, cursor.offset, False, False)
    hits = len(scores) if max_hits is None else min(len(scores), max_hits)
    return CursorResult(values[lo:hi], prev=prev, next=nxt, hits=hits, max_hits=max_hits)


def django_urlencode(pairs: Sequence[tuple[str, str]]) -> str:
    """``QueryDict.urlencode()``: keys in first-appearance order, each key's values together."""
    grouped: dict[str, list[str]] = {}
    for key, value in pairs:
        grouped.setdefault(key, []).append(value)
    return "&".join(
        f"{quote_plus(key, safe='')}={quote_plus(value, safe='')}"
        for key, values in grouped.items()
        for value in values
    )


def link_header(
    base: str, path: str, query: Sequence[tuple[str, str]], prev: Cursor, nxt: Cursor
) -> str:
    """The ``Link`` header for a page: previous link first, then next, joined by ``", "``."""
    querystring = django_urlencode([(k, v) for k, v in query if k != "cursor"])
    uri = f"{base.rstrip('/')}{quote(path, safe='/')}?{querystring}"
    links = []
    for name, cur in (("previous", prev), ("next", nxt)):
        links.append(
            LINK_HEADER.format(
                uri=uri,
                cursor=str(cur),
                name=name,
                has_results="true" if cur.has_results else "false",
            )
        )
    return ", ".join(links)
