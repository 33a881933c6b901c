"""Sentry's cursor pagination: the ``Link`` header and the cursor grammar.

Sentry answers every paginated list with both links, previous first::

    <https://sentry.io/api/0/issues/1/events/?&cursor=0:0:1>; rel="previous"; results="false"; cursor="0:0:1",
    <https://sentry.io/api/0/issues/1/events/?&cursor=0:100:0>; rel="next"; results="true"; cursor="0:100:0"

The walk is over when the ``next`` link says ``results="false"``. The cursor is read from the
``cursor="..."`` attribute, never by rebuilding URLs (Sentry re-encodes the query string). An
absent header (an unknown environment answers ``200 []`` with none) means no more pages.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from archiver.errors import PaginationError

_LINK = re.compile(r"<(?P<url>[^>]*)>(?P<params>(?:\s*;\s*[^;,<]+=\s*\"[^\"]*\")*)")
_PARAM = re.compile(r";\s*(?P<key>[A-Za-z_-]+)\s*=\s*\"(?P<value>[^\"]*)\"")
_CURSOR = re.compile(r"^-?\d+(?:\.\d+)?:-?\d+:[01]$")


@dataclass(frozen=True)
class Link:
    url: str
    rel: str
    results: bool
    cursor: str | None


def parse_link_header(value: str | None) -> dict[str, Link]:
    """``{"previous": Link, "next": Link}``; empty for an absent or unparsable header."""
    links: dict[str, Link] = {}
    if not value:
        return links
    for match in _LINK.finditer(value):
        params = {
            m.group("key").lower(): m.group("value") for m in _PARAM.finditer(match.group("params"))
        }
        rel = params.get("rel")
        if not rel:
            continue
        results = params.get("results", "false").strip().lower() == "true"
        links[rel] = Link(match.group("url"), rel, results, params.get("cursor"))
    return links


def is_valid_cursor(text: str) -> bool:
    """Sentry's ``value:offset:is_prev`` grammar (value an int or a float)."""
    return bool(_CURSOR.match(text))


def next_cursor(link_header: str | None) -> str | None:
    """The cursor of the next page, or None when the walk is over."""
    nxt = parse_link_header(link_header).get("next")
    if nxt is None or not nxt.results or not nxt.cursor:
        return None
    return nxt.cursor


T = TypeVar("T")


def walk(
    fetch: Callable[[str | None], tuple[T, str | None]], cursor: str | None = None
) -> Iterator[T]:
    """Yield pages until there is no next cursor; refuse a cursor seen before (a loop)."""
    seen: set[str] = set()
    while True:
        page, nxt = fetch(cursor)
        yield page
        if nxt is None:
            return
        if nxt in seen or nxt == cursor:
            raise PaginationError(f"the server repeated the cursor {nxt!r}: refusing to loop")
        seen.add(nxt)
        cursor = nxt


class Paginator:
    """Where a cursor walk stands, and the rule that ends it (meltano's ``advance``/``finished``).

    Every cursor followed is remembered, so a server that sends the walk back to a page it
    already read (A -> A, or A -> B -> A) is refused instead of walked for ever, and so is a
    run of empty pages that keep claiming more results.
    """

    def __init__(self, cursor: str | None = None, *, max_empty_pages: int = 3) -> None:
        self._cursor = cursor
        self._seen: set[str] = {cursor} if cursor is not None else set()
        self._max_empty = max_empty_pages
        self._empty = 0
        self._finished = False

    @property
    def cursor(self) -> str | None:
        """The cursor to request next (None: the first page)."""
        return self._cursor

    @property
    def finished(self) -> bool:
        """A page said no more follow, or gave no next cursor."""
        return self._finished

    def advance(self, next_cursor: str | None, has_next: bool, count: int) -> None:
        """Take in a page's answer: its next cursor, whether more follow, how many items."""
        if not has_next or not next_cursor:
            self._finished = True
            return
        if next_cursor in self._seen:
            raise PaginationError(
                f"the server repeated the cursor {next_cursor!r}: refusing to loop"
            )
        self._empty = self._empty + 1 if count == 0 else 0
        if self._empty > self._max_empty:
            raise PaginationError(
                f"{self._empty} empty pages in a row that said more results follow"
            )
        self._seen.add(next_cursor)
        self._cursor = next_cursor
