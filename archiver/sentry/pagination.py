"""Sentry's cursor pagination: the ``Link`` header, and the :class:`Paginator` that follows it.

Sentry answers every paginated list with both links, previous first (one line, wrapped here)::

    <https://sentry.io/api/0/issues/1/events/?&cursor=0:0:1>; rel="previous";
        results="false"; cursor="0:0:1",
    <https://sentry.io/api/0/issues/1/events/?&cursor=0:100:0>; rel="next";
        results="true"; cursor="0:100:0"

The walk is over when the ``next`` link says ``results="false"``. The cursor is read from the
``cursor="..."`` attribute, never by rebuilding URLs (Sentry re-encodes the query string). An
absent header (an unknown environment answers ``200 []`` with none) means no more pages.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from archiver.errors import PaginationError

_LINK = re.compile(r"<(?P<url>[^>]*)>(?P<params>(?:\s*;\s*[^;,<]+=\s*\"[^\"]*\")*)")
_PARAM = re.compile(r";\s*(?P<key>[A-Za-z_-]+)\s*=\s*\"(?P<value>[^\"]*)\"")


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


def next_cursor(link_header: str | None) -> str | None:
    """The cursor of the next page, or None when the walk is over."""
    nxt = parse_link_header(link_header).get("next")
    if nxt is None or not nxt.results or not nxt.cursor:
        return None
    return nxt.cursor


class Paginator:
    """Follows Sentry's cursor pagination (Link headers): the cursor to ask next, and when to stop.

    Refuses a cursor it has already followed (A -> B -> A as well as A -> A) and a run of
    more than ``max_empty_pages`` empty pages that still claim more results.

    Why both: a server (or a proxy caching one answer) that hands back an earlier cursor, or
    keeps answering ``results="true"`` with nothing in the page, would otherwise be walked
    until the process is killed. A few empty pages are allowed: Sentry may filter a page's
    rows after the query (deleted or hidden items) and still have more behind them.
    """

    def __init__(self, cursor: str | None = None, *, max_empty_pages: int = 3) -> None:
        self._cursor = cursor
        self._seen: set[str] = {cursor} if cursor is not None else set()
        self._finished = False
        self._empty = 0
        self.max_empty_pages = max_empty_pages

    def __repr__(self) -> str:
        return f"Paginator(cursor={self._cursor!r}, finished={self._finished})"

    @property
    def cursor(self) -> str | None:
        """The cursor to request next (None: the first page)."""
        return self._cursor

    @property
    def finished(self) -> bool:
        """True once a page said no more follow, or gave no next cursor."""
        return self._finished

    def advance(self, next_cursor: str | None, has_next: bool, count: int) -> None:
        """Move past one page (its next cursor, whether it says more follow, how many items it had).

        Raises :class:`archiver.errors.PaginationError` on a repeated cursor or too many empty
        pages claiming more.
        """
        if self._finished:
            raise PaginationError("the pagination is finished: there is no next page")
        if not has_next or not next_cursor:
            self._finished = True
            return
        if next_cursor in self._seen:
            raise PaginationError(
                f"the server repeated the cursor {next_cursor!r}: refusing to loop"
            )
        self._empty = self._empty + 1 if count == 0 else 0
        if self._empty > self.max_empty_pages:
            raise PaginationError(
                f"{self._empty} empty pages in a row still claim more results "
                f"(at cursor {self._cursor!r}): refusing to go on"
            )
        self._seen.add(next_cursor)
        self._cursor = next_cursor
