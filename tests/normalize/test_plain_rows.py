"""The fast paths of tags and breadcrumbs give exactly the rows and problems of the full way.

A pristine event (:attr:`Problems.pristine`) skips coercion for values that already have their
column's type; ``Problems(None)`` is never pristine, so the same payload read with it goes
the full way for every value.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from archiver.normalize.coerce import INDEXED_MAX, Problems
from archiver.normalize.entries import Children, _breadcrumbs, tag_rows

odd = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["", " ", "x" * (INDEXED_MAX + 1), "x" * INDEXED_MAX, "12", "1e3"]),
    st.text(max_size=6),
    st.lists(st.integers(0, 3), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
stamps = st.one_of(
    odd,
    st.sampled_from(
        [
            "2024-05-27T10:34:48.750000Z",
            "2024-05-27T10:34:48Z",
            "2024-05-27T10:34:48.75Z",
            "2024-05-27 10:34:48+02:00",
            "2024-02-30T10:34:48Z",
            "1716806088.75",
            1716806088.75,
            1716806088750,
        ]
    ),
)
CRUMB_TEXT = ["type", "category", "level", "message", "event_id"]
crumb = st.fixed_dictionaries(
    {},
    optional={
        **{k: st.one_of(st.none(), st.text(max_size=6)) for k in CRUMB_TEXT},
        "timestamp": stamps,
        "data": st.one_of(st.none(), st.dictionaries(st.text(max_size=3), st.integers())),
    },
)
odd_crumb = st.tuples(
    crumb, st.dictionaries(st.sampled_from([*CRUMB_TEXT, "timestamp", "data"]), odd, max_size=2)
).map(lambda t: {**t[0], **t[1]})
tag = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "key": st.one_of(st.text(max_size=6), odd),
            "value": st.one_of(st.text(max_size=6), odd),
            "query": st.text(max_size=3),
        },
    ),
    st.tuples(odd, odd).map(list),
    odd,
)


def both(value: Any) -> tuple[Problems, Problems]:
    """(a pristine reader of ``value``, one that takes the full way)."""
    fast = Problems(json.dumps(value, ensure_ascii=False))
    assume(fast.pristine)
    return fast, Problems(None)


@settings(max_examples=1500, deadline=None)
@given(st.lists(st.one_of(odd_crumb, odd), max_size=4))
def test_breadcrumbs_fast_path_matches_the_full_way(crumbs: list[Any]) -> None:
    fast, full = both(crumbs)
    rows: list[Children] = [{"breadcrumbs": []}, {"breadcrumbs": []}]
    _breadcrumbs({"values": crumbs}, "entries[0].data", rows[0], fast)
    _breadcrumbs({"values": crumbs}, "entries[0].data", rows[1], full)
    assert rows[0] == rows[1]
    assert [list(r) for r in rows[0]["breadcrumbs"]] == [list(r) for r in rows[1]["breadcrumbs"]]
    assert fast.rows == full.rows


@settings(max_examples=1500, deadline=None)
@given(st.lists(tag, max_size=4))
def test_tags_fast_path_matches_the_full_way(tags: list[Any]) -> None:
    fast, full = both(tags)
    fast_rows, full_rows = tag_rows(tags, fast), tag_rows(tags, full)
    assert fast_rows == full_rows
    assert [list(r) for r in fast_rows] == [list(r) for r in full_rows]
    assert fast.rows == full.rows


def test_a_plain_breadcrumb_and_tag_take_the_fast_path() -> None:
    crumb = {"type": "http", "timestamp": "2024-05-27T10:34:48.750000Z", "data": {"a": 1}}
    p = Problems(json.dumps(crumb))
    children: Children = {"breadcrumbs": []}
    _breadcrumbs({"values": [crumb]}, "d", children, p)
    assert children["breadcrumbs"][0]["timestamp"].isoformat() == "2024-05-27T10:34:48.750000+00:00"
    assert tag_rows([{"key": "a", "value": "b"}], p) == [{"position": 0, "key": "a", "value": "b"}]
    assert p.rows == []
