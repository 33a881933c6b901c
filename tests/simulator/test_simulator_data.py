"""The simulator's data layer: lazy timelines, event IDs, determinism, truth, mutations.

No sockets here: these pin down the model the HTTP tests rely on.
"""

from __future__ import annotations

import sys
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archiver.simulator import FrozenClock, SimulatedOrg
from archiver.simulator.data import DAY
from archiver.simulator.ids import EventIdCodec, normalize_event_id
from archiver.simulator.payloads import EventRenderer
from archiver.simulator.timeline import Segment, make_segment, position_of, select_page

FAR = 2**62


# --- timelines ---------------------------------------------------------------------------------

segments_strategy = st.lists(
    st.tuples(
        st.integers(1, 300),  # n
        st.integers(0, 5_000),  # first
        st.integers(0, 3_000),  # span
        st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1)), max_size=6),
    ),
    min_size=1,
    max_size=4,
)


def _build(specs: list[tuple[int, int, int, list[tuple[float, float]]]]) -> list[Segment]:
    return [
        make_segment(0, i, "production", n, first, first + span, knots)
        for i, (n, first, span, knots) in enumerate(specs)
    ]


def _fake_id(seg: Segment, k: int) -> str:
    return f"{(seg.number * 7919 + k * 104729) % 2**64:032x}"


@settings(max_examples=150, deadline=None)
@given(segments_strategy)
def test_timestamps_are_monotone_and_counts_are_exact(specs: list) -> None:
    for seg in _build(specs):
        stamps = [seg.timestamp(k) for k in range(seg.n)]
        assert stamps == sorted(stamps)
        for t in {
            stamps[0] - 1,
            stamps[0],
            stamps[-1],
            stamps[-1] + 1,
            *stamps[:: max(1, seg.n // 7)],
        }:
            assert seg.count_before(t) == sum(1 for s in stamps if s < t)


@settings(max_examples=150, deadline=None)
@given(
    segments_strategy,
    st.integers(0, 400),
    st.integers(1, 60),
    st.integers(0, 9_000),
    st.integers(0, 9_000),
)
def test_select_page_matches_brute_force(
    specs: list, offset: int, limit: int, a: int, b: int
) -> None:
    segs = _build(specs)
    lo, hi = min(a, b), max(a, b) + 1
    everything = sorted(
        (
            (seg.timestamp(k), _fake_id(seg, k))
            for seg in segs
            for k in range(seg.n)
            if lo <= seg.timestamp(k) < hi
        ),
        reverse=True,
    )
    page, total = select_page(segs, lo, hi, offset, limit, _fake_id)
    assert total == len(everything)
    assert [(ts, eid) for ts, eid, _, _ in page] == everything[offset : offset + limit]
    for position, row in enumerate(everything[:25]):
        assert position_of(segs, lo, hi, row, _fake_id) == position


def test_ties_in_one_second_are_ordered_by_event_id_descending() -> None:
    seg = Segment(0, 0, "production", (0, 50), (1000, 1001))  # 50 events in one second
    page, total = select_page([seg], 0, 2000, 0, 100, _fake_id)
    assert total == 50
    ids = [eid for _, eid, _, _ in page]
    assert ids == sorted(ids, reverse=True)


# --- event ids ---------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    st.integers(0, 2**24 - 1), st.integers(0, 2**24 - 1), st.integers(0, 2**32 - 1), st.integers()
)
def test_event_id_codec_round_trips(issue: int, segment: int, index: int, seed: int) -> None:
    codec = EventIdCodec(seed)
    event_id = codec.encode(issue, segment, index)
    assert len(event_id) == 32
    assert event_id == event_id.lower()
    assert int(event_id, 16) >= 0
    assert codec.decode(event_id) == (issue, segment, index)
    assert EventIdCodec(seed + 1).decode(event_id) is None


def test_unknown_and_malformed_ids_do_not_decode() -> None:
    codec = EventIdCodec(1)
    assert codec.decode("0" * 32) is None
    assert codec.decode("zz" * 16) is None
    assert codec.decode("abc") is None
    assert (
        normalize_event_id("9FAC2CEE-D934-4F2B-BFDD-1FDACB0ED9B1")
        == "9fac2ceed9344f2bbfdd1fdacb0ed9b1"
    )
    assert normalize_event_id("not-an-id") is None


# --- the organisation --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def org() -> SimulatedOrg:
    return SimulatedOrg(seed=3, events=3_000)


def test_org_shape(org: SimulatedOrg) -> None:
    assert org.slug == "acme"
    assert len(org.projects) == 3
    assert {p.platform for p in org.projects} == {"python", "javascript", "java"}
    assert any(p.id > 2**31 for p in org.projects)
    assert any(i.id > 2**31 for i in org.issues)
    assert len({i.id for i in org.issues}) == len(org.issues)
    assert {i.status for i in org.issues} == {"unresolved", "resolved", "ignored"}
    assert {i.priority for i in org.issues} == {"high", "medium", "low"}
    cutoff = org.retention_cutoff()
    stamps = [s.first_ts for i in org.issues for s in i.segments]
    assert min(stamps) < cutoff  # some events have expired already
    assert max(s.last_ts for i in org.issues for s in i.segments) < org.now()


def test_project_count_scales_with_events() -> None:
    assert len(SimulatedOrg(seed=1, events=200).projects) == 3
    assert len(SimulatedOrg(seed=1, events=100_000).projects) == 5
    assert len(SimulatedOrg(seed=1, events=1_000_000).projects) == 8


def test_same_seed_same_data() -> None:
    a, b = SimulatedOrg(seed=11, events=2_000), SimulatedOrg(seed=11, events=2_000)
    assert a.truth() == b.truth()
    assert [(i.id, i.status, i.priority, i.kind) for i in a.issues] == [
        (i.id, i.status, i.priority, i.kind) for i in b.issues
    ]
    ra, rb = EventRenderer(a), EventRenderer(b)
    for issue_a, issue_b in zip(a.issues[:15], b.issues[:15], strict=True):
        refs_a, _ = a.page(issue_a.segments, -FAR, FAR, 0, 5)
        refs_b, _ = b.page(issue_b.segments, -FAR, FAR, 0, 5)
        assert [ra.full(r) for r in refs_a] == [rb.full(r) for r in refs_b]
    assert SimulatedOrg(seed=12, events=2_000).truth() != a.truth()


def test_truth_count_matches_truth(org: SimulatedOrg) -> None:
    truth = org.truth()
    assert len(truth) == org.truth_count()
    assert 0 < len(truth) < 3_000  # some events already expired
    assert all(len(eid) == 32 for _, eid in truth)
    assert {pid for pid, _ in truth} <= {p.id for p in org.projects}


def test_every_truth_event_locates_to_its_project(org: SimulatedOrg) -> None:
    for pid, eid in sorted(org.truth())[:300]:
        ref = org.locate_event(eid)
        assert ref is not None
        assert ref.project.id == pid
        assert ref.event_id == eid


def test_a_million_event_org_is_lazy() -> None:
    big = SimulatedOrg(seed=5, events=1_000_000)
    assert len(big.issues) <= 4_100
    knots = sum(len(s.knots_k) for i in big.issues for s in i.segments)
    assert knots < 100_000  # per-issue state only, never per event
    assert big.truth_count() > 800_000
    size = sum(
        sys.getsizeof(s.knots_k) + sys.getsizeof(s.knots_t) for i in big.issues for s in i.segments
    )
    assert size < 20 * 2**20
    # a deep page of the biggest issue is answered without materialising the events
    hot = max(big.issues, key=lambda i: i.times_seen)
    refs, total = big.page(hot.segments, -FAR, FAR, hot.times_seen // 2, 100)
    assert len(refs) == 100
    assert total > 1_000
    assert big.locate_event(refs[0].event_id) == refs[0]


def _odd_shapes_of(event: dict[str, Any], text: str) -> set[str]:
    """The odd shapes one event body shows (names as the test below expects them)."""
    seen: set[str] = set()
    if event["user"] is None:
        seen.add("user null")
    if not isinstance(event["id"], str) or event["id"] != event["eventID"]:
        seen.add("legacy id")
    if "\\u0000" in text:
        seen.add("nul")
    if any(len(v) > 10_000 for v in _strings(event)):
        seen.add("long")
    if any(ord(c) > 0x3000 for c in text):
        seen.add("cjk/emoji")
    for entry in event["entries"]:
        seen |= _odd_entry_shapes(entry)
    if any(t.get("_meta") for t in event["tags"]) and any("query" in t for t in event["tags"]):
        seen.add("tag meta+query")
    return seen


def _odd_entry_shapes(entry: dict[str, Any]) -> set[str]:
    seen: set[str] = set()
    if entry["type"] == "request":
        seen.add(f"query {type((entry.get('data') or {}).get('query')).__name__}")
        seen.add(f"data {type((entry.get('data') or {}).get('data')).__name__}")
    if entry["type"] == "breadcrumbs" and entry["data"]["values"]:
        seen.add(f"crumb {type(entry['data']['values'][0]['timestamp']).__name__}")
    if entry["type"] == "exception" and len(entry["data"]["values"]) > 1:
        seen.add("chained")
    if entry["type"] == "exception" and any(
        v["stacktrace"] and len(v["stacktrace"]["frames"]) >= 120 for v in entry["data"]["values"]
    ):
        seen.add("deep")
    return seen


def test_event_bodies_cover_the_odd_shapes() -> None:
    org = SimulatedOrg(seed=2, events=12_000, projects=8, odd_rate=0.5)
    renderer = EventRenderer(org, cache_bytes=0)
    entry_types: set[str] = set()
    seen: set[str] = set()
    for issue in org.issues:
        refs, _ = org.page(issue.segments, -FAR, FAR, 0, 12)
        for ref in refs:
            event = renderer.as_dict(ref)
            entry_types |= {e["type"] for e in event["entries"]}
            text = renderer.full(ref).decode()
            seen |= _odd_shapes_of(event, text)
    assert {
        "exception",
        "breadcrumbs",
        "request",
        "message",
        "stacktrace",
        "threads",
        "template",
        "csp",
        "spans",
        "debugmeta",
    } <= entry_types
    assert entry_types - {
        "exception",
        "breadcrumbs",
        "request",
        "message",
        "stacktrace",
        "threads",
        "template",
        "csp",
        "hpkp",
        "expectct",
        "expectstaple",
        "spans",
        "debugmeta",
    }
    assert {
        "user null",
        "legacy id",
        "nul",
        "long",
        "cjk/emoji",
        "query list",
        "query str",
        "data dict",
        "data NoneType",
        "data str",
        "data list",
        "crumb str",
        "crumb float",
        "chained",
        "deep",
        "tag meta+query",
    } <= seen


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


# --- mutations ---------------------------------------------------------------------------------


def test_add_events_lands_newest_and_grows_truth() -> None:
    org = SimulatedOrg(seed=4, events=1_000)
    issue = org.live_issues()[0]
    before = org.truth()
    ids = org.add_events(issue.id, 4)
    assert org.truth() == before | {(issue.project.id, e) for e in ids}
    refs, _ = org.page(issue.segments, -FAR, FAR, 0, 4)
    assert {r.event_id for r in refs} == set(ids)
    assert all(r.timestamp == int(org.now()) for r in refs)


def test_advance_expires_events() -> None:
    org = SimulatedOrg(seed=4, events=1_000)
    before = org.truth()
    org.advance(20 * DAY)
    after = org.truth()
    assert after < before
    gone = before - after
    assert all(org.locate_event(eid) is None for _, eid in gone)


def test_delete_issue_removes_its_events() -> None:
    org = SimulatedOrg(seed=4, events=1_000)
    issue = max(org.live_issues(), key=lambda i: i.times_seen)
    refs, _ = org.page(issue.segments, -FAR, FAR, 0, 5)
    org.delete_issue(issue.id)
    assert org.resolve_issue(issue.id) is None
    assert all(org.locate_event(r.event_id) is None for r in refs)
    assert {(issue.project.id, r.event_id) for r in refs} <= org.truth(include_deleted=True)
    assert not {(issue.project.id, r.event_id) for r in refs} & org.truth()


def test_merge_moves_events_and_redirects() -> None:
    org = SimulatedOrg(seed=4, events=1_000)
    project = org.projects[0]
    source, target = [i for i in org.live_issues() if i.project is project][:2]
    moved, _ = org.page(source.segments, -FAR, FAR, 0, 5)
    truth = org.truth()
    org.merge_issue(source.id, target.id)
    assert org.truth() == truth
    assert org.resolve_issue(source.id) is target
    assert source not in org.live_issues()
    for ref in moved:
        located = org.locate_event(ref.event_id)
        assert located is not None
        assert located.issue is target
    other = next(i for i in org.live_issues() if i.project is not project)
    with pytest.raises(ValueError, match=r"^Sentry merges issues of one project only$"):
        org.merge_issue(other.id, target.id)


def test_clock_is_injectable() -> None:
    clock = FrozenClock("2030-01-01T00:00:00Z")
    org = SimulatedOrg(seed=1, events=500, clock=clock)
    assert org.now() == clock.now()
    assert max(s.last_ts for i in org.issues for s in i.segments) < clock.now()
    with pytest.raises(ValueError, match=r"^time only moves forward$"):
        clock.advance(-1)
