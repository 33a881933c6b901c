"""Sentry's paginators and Link header as pure functions.

Mirrors of Sentry's api/paginator.py and api/base.py.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from archiver.simulator.paging import (
    Cursor,
    InvalidCursor,
    django_urlencode,
    generic_offset_page,
    link_header,
    offset_page,
    sequence_page,
)


def test_cursor_text_round_trip() -> None:
    assert str(Cursor(0, 100, False)) == "0:100:0"
    assert str(Cursor(1534962224000, 0, True)) == "1534962224000:0:1"
    assert Cursor.parse("1.5:3:1") == Cursor(1.5, 3, True)
    for bad in ("", "1", "1:2", "x:1:0", "1:y:0", "1:1:z", "1:2:3:4"):
        try:
            Cursor.parse(bad)
        except InvalidCursor:
            continue
        raise AssertionError(bad)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 7), max_size=60), st.integers(1, 9))
def test_sequence_paginator_walk_sees_every_item_once_despite_ties(
    scores: list[int], limit: int
) -> None:
    # scores start at 1: like Sentry's, a cursor value of 0 means "from the start"
    # (the issue endpoints never produce a 0 score: timestamps, or counts of listed issues)
    scored = sorted(((s, n) for n, s in enumerate(scores)), reverse=True)
    seen: list[int] = []
    cursor = None
    for _ in range(200):
        page = sequence_page(scored, limit, cursor)
        seen += page.results
        if not page.next.has_results:
            break
        cursor = Cursor(page.next.value, page.next.offset, False)
    assert seen == [n for _, n in scored]


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 250), st.integers(1, 100))
def test_generic_offset_walk(total: int, limit: int) -> None:
    data = list(range(total))
    seen: list[int] = []
    cursor = None
    while True:
        page = generic_offset_page(lambda off, lim: data[off : off + lim], limit, cursor)
        seen += page.results
        assert page.next.value == 0
        assert page.prev.value == 0
        if not page.next.has_results:
            break
        cursor = page.next
    assert seen == data


def test_offset_paginator_cursor_is_page_size_and_number() -> None:
    items = list(range(5))
    first = offset_page(items, 2, None)
    assert first.results == [0, 1]
    assert (str(first.prev), first.prev.has_results) == ("2:-1:1", False)
    assert (str(first.next), first.next.has_results) == ("2:1:0", True)
    last = offset_page(items, 2, Cursor(2, 2, False))
    assert last.results == [4]
    assert not last.next.has_results


def test_link_header_format() -> None:
    header = link_header(
        "https://sentry.io",
        "/api/0/issues/1/events/",
        [],
        Cursor(0, 0, True, False),
        Cursor(0, 100, False, True),
    )
    assert header == (
        '<https://sentry.io/api/0/issues/1/events/?&cursor=0:0:1>; rel="previous"; '
        'results="false"; cursor="0:0:1", '
        '<https://sentry.io/api/0/issues/1/events/?&cursor=0:100:0>; rel="next"; '
        'results="true"; cursor="0:100:0"'
    )


def test_query_is_reencoded_like_django() -> None:
    pairs = [
        ("query", "is:unresolved issue.priority:[high, medium]"),
        ("project", "1"),
        ("query", "x/y"),
        ("cursor", "0:1:0"),
        ("environment", "qa 2"),
    ]
    assert django_urlencode([p for p in pairs if p[0] != "cursor"]) == (
        "query=is%3Aunresolved+issue.priority%3A%5Bhigh%2C+medium%5D&query=x%2Fy&project=1&environment=qa+2"
    )
