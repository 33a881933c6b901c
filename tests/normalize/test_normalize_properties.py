"""Property tests: no payload makes normalization raise, and the raw JSON always round-trips."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archiver.normalize import normalize_event

FIXTURES = Path(__file__).resolve().parents[2] / "archiver" / "simulator" / "fixtures"
SEEDS = [
    json.loads((FIXTURES / n).read_text())
    for n in ("seed_000_event_detail.json", "seed_004_latest_event.json")
]
SEEDS.append(json.loads((FIXTURES / "seed_002_eventid_lookup.json").read_text())["event"])
SEEDS.extend(json.loads((FIXTURES / "seed_003_issue_events.json").read_text()))

text = st.one_of(
    st.text(max_size=20), st.sampled_from(["\x00", "a\x00b", "\ud800", "x" * 3000, "漢字🙂"])
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    text,
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(text, inner, max_size=4)),
    max_leaves=12,
)


def paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out.extend(paths(v, (*prefix, k)))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out.extend(paths(v, (*prefix, i)))
    return out


def replace(value: Any, path: tuple, new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {k: (replace(v, rest, new) if k == head else v) for k, v in value.items()}
    return [replace(v, rest, new) if i == head else v for i, v in enumerate(value)]


def has_bad_text(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value or any(0xD800 <= ord(c) <= 0xDFFF for c in value)
    if isinstance(value, dict):
        return any(has_bad_text(k) or has_bad_text(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(has_bad_text(v) for v in value)
    return False


def check(payload: Any) -> None:
    ev = normalize_event(payload, project_id=1, issue_id=2)
    assert json.loads(ev.event["raw_json"]) == payload
    ev.event["raw_json"].encode("utf-8")
    assert len(ev.event_id) == 32
    stored = {k: v for k, v in ev.event.items() if k != "raw_json"}
    assert not has_bad_text(stored)
    assert not has_bad_text(ev.children)
    assert ev.event["problem_count"] == len(ev.children["event_problems"])


@settings(
    max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "eventID",
                "id",
                "entries",
                "tags",
                "user",
                "contexts",
                "errors",
                "sdk",
                "dateCreated",
                "message",
                "title",
                "release",
                "size",
                "groupID",
                "projectID",
                "context",
                "metadata",
            ]
        ),
        json_values,
        max_size=10,
    )
)
def test_generated_payloads_never_raise(payload: dict) -> None:
    check(payload)


@settings(
    max_examples=200, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(st.data())
def test_mutated_seed_payloads_never_raise(data: st.DataObject) -> None:
    payload = data.draw(st.sampled_from(SEEDS))
    for _ in range(data.draw(st.integers(1, 4))):
        path = data.draw(st.sampled_from(paths(payload)[1:]))
        payload = replace(payload, path, data.draw(json_values))
    check(payload)
