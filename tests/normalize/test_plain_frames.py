"""The frames' fast path gives exactly the rows (and no problems) of the full coercion."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from archiver.normalize.coerce import INDEXED_MAX, Problems
from archiver.normalize.entries import _frame
from archiver.normalize.plain import plain_frame

TEXT_KEYS = [
    "function",
    "rawFunction",
    "raw_function",
    "module",
    "filename",
    "absPath",
    "abs_path",
    "package",
    "platform",
    "instructionAddr",
    "instruction_addr",
    "symbol",
    "symbolAddr",
    "symbol_addr",
    "trust",
    "context_line",
]
INT_KEYS = ["lineNo", "lineno", "colNo", "colno"]
BOOL_KEYS = ["inApp", "in_app"]

odd = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**65), 2**65),
    st.sampled_from([2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 0, 1, 12]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["", "12", " 7 ", "yes", "true", "x" * (INDEXED_MAX + 1), "x" * INDEXED_MAX]),
    st.text(max_size=8),
    st.lists(st.integers(0, 3), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
pair = st.one_of(
    st.tuples(st.integers(0, 20), st.text(max_size=5)).map(list),
    st.lists(odd, max_size=3),
    odd,
)
plain = st.fixed_dictionaries(
    {},
    optional={
        **{k: st.one_of(st.none(), st.text(max_size=8)) for k in TEXT_KEYS},
        **{k: st.one_of(st.none(), st.integers(-5, 30)) for k in INT_KEYS},
        **{k: st.one_of(st.none(), st.booleans()) for k in BOOL_KEYS},
        "context": st.lists(st.tuples(st.integers(0, 20), st.text(max_size=5)).map(list)),
        "pre_context": st.lists(st.text(max_size=5), max_size=3),
        "post_context": st.lists(st.text(max_size=5), max_size=3),
        "vars": st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    },
)
KEYS = [*TEXT_KEYS, *INT_KEYS, *BOOL_KEYS, "context", "pre_context", "post_context", "vars"]
odd_values = st.one_of(odd, st.lists(pair, max_size=4))
# A plain frame with up to two of its values replaced by odd ones.
frames = st.tuples(plain, st.dictionaries(st.sampled_from(KEYS), odd_values, max_size=2)).map(
    lambda t: {**t[0], **t[1]}
)


# The stack's columns that _frames puts first in every row.
HEAD = {"stack_kind": "exception", "stack_index": 1, "is_raw": False, "position": 3}
HEAD_ARGS = ("exception", 1, False, 3, "t1")


def fast_row(frame: dict[str, Any]) -> dict[str, Any] | None:
    return plain_frame(frame, *HEAD_ARGS)


def full(frame: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    p = Problems(json.dumps(frame, ensure_ascii=False))
    assume(p.pristine)  # the fast path is only taken in an event without NUL or surrogates
    return {**HEAD, "thread_id": "t1", **_frame(frame, "f", p)}, p.rows


@settings(max_examples=3000, deadline=None)
@given(frames)
def test_the_fast_path_matches_the_full_coercion(frame: dict[str, Any]) -> None:
    fast = fast_row(frame)
    row, problems = full(frame)
    if fast is not None:  # taken only where the full way changes nothing and records nothing
        assert problems == []
        assert fast == row
        assert list(fast) == list(row)  # the same columns in the same order


def test_a_plain_frame_takes_the_fast_path() -> None:
    frame = {
        "function": "handle",
        "module": "app.views",
        "filename": "app/views.py",
        "absPath": "/srv/app/views.py",
        "lineNo": 3,
        "colNo": None,
        "inApp": True,
        "context": [[2, "a"], [3, "b"], [4, "c"]],
        "vars": {"x": "1"},
    }
    fast = fast_row(frame)
    assert fast is not None
    assert fast == {**HEAD, "thread_id": "t1", **_frame(frame, "f", Problems(json.dumps(frame)))}
    assert (fast["context_line"], fast["pre_context"], fast["post_context"]) == ("b", ["a"], ["c"])


def test_values_that_need_coercion_go_the_full_way() -> None:
    for odd_value in ({"lineNo": "12"}, {"lineNo": 2**63}, {"inApp": 1}, {"module": 5}):
        assert fast_row({"function": "f", **odd_value}) is None
    assert fast_row({"function": "x" * (INDEXED_MAX + 1)}) is None
    assert fast_row({"context": [[1, "a", "b"]]}) is None
    assert fast_row({"context": [[2**63, "a"]]}) is None
    assert fast_row({"context": [[True, "a"]]}) is None
    assert fast_row({"context": "not a list"}) is None
