"""The keyset walk's state machine against a fake source that shuffles ties on every request."""

from __future__ import annotations

import hashlib
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from archiver.errors import WalkBroken
from archiver.sync import keyset


class ShufflingSource:
    """Events ``(id, second)``; ``-second`` order with ties shuffled anew on every request."""

    def __init__(self, events: list[tuple[str, int]], seed: int) -> None:
        self.events = events
        self.rng = random.Random(seed)
        self.offsets: list[int] = []

    def page(self, f: keyset.Fetch, per_page: int = 100) -> tuple[list[keyset.Key], bool, str]:
        window = [e for e in self.events if f.start <= e[1] < f.end]
        if f.sample:
            window.sort(key=lambda e: hashlib.sha1(e[0].encode()).digest())
        else:
            self.rng.shuffle(window)
            window.sort(key=lambda e: -e[1])
        offset = int(f.cursor.split(":")[1]) if f.cursor else 0
        self.offsets.append(offset)
        rows = window[offset : offset + per_page + 1]
        more = len(rows) > per_page
        return [keyset.Key(i, s) for i, s in rows[:per_page]], more, f"0:{offset + per_page}:0"


def walk(
    source: ShufflingSource, start: int, end: int, stop_after: int | None = None
) -> tuple[set[str], str | None, int]:
    """Run (part of) a walk; returns ids written, the checkpoint text and the end."""
    state = keyset.begin(start, end)
    got: set[str] = set()
    pages = 0
    while not state.done:
        keys, more, nxt = source.page(state.fetch())
        state, keep = keyset.advance(state, keys, more, nxt)
        got.update(eid for i in keep if (eid := keys[i].event_id))
        pages += 1
        if stop_after is not None and pages >= stop_after and not state.done:
            return got, keyset.encode(state), state.end
    return got, None, state.end


def resume(source: ShufflingSource, start: int, pinned: int, text: str) -> set[str]:
    state = keyset.decode(start, pinned, text)
    assert state is not None
    got: set[str] = set()
    while not state.done:
        keys, more, nxt = source.page(state.fetch())
        state, keep = keyset.advance(state, keys, more, nxt)
        got.update(eid for i in keep if (eid := keys[i].event_id))
    return got


def make_events(seconds: list[int]) -> list[tuple[str, int]]:
    return [(f"{i:032x}", s) for i, s in enumerate(seconds)]


events_strategy = st.lists(
    st.one_of(st.integers(0, 40), st.just(7), st.just(30)), min_size=0, max_size=700
)


@settings(max_examples=60, deadline=None)
@given(seconds=events_strategy, seed=st.integers(0, 10_000), stop=st.integers(1, 12))
def test_walk_interrupted_and_resumed_reads_every_event(seconds, seed, stop):
    events = make_events(seconds)
    truth = {i for i, _ in events}
    source = ShufflingSource(events, seed)
    got, text, _ = walk(source, 0, 41, stop_after=stop)
    if text is not None:
        got |= resume(source, 0, 41, text)
    assert got == truth
    assert max(source.offsets, default=0) <= max(
        [seconds.count(s) for s in set(seconds)], default=0
    )


def test_a_burst_of_250_in_one_second_is_paged_alone_with_sample():
    events = make_events([5] * 250 + [3] * 40 + [9] * 10)
    source = ShufflingSource(events, 1)
    got, _, _ = walk(source, 0, 10)
    assert got == {i for i, _ in events}
    assert max(source.offsets) == 200


def test_old_offset_cursor_is_not_a_checkpoint():
    assert keyset.decode(0, 10, "0:300:0") is None


def test_empty_pages_that_promise_more_end_in_an_error():
    state = keyset.begin(0, 10)
    for _ in range(2):
        state, _ = keyset.advance(state, [], True, "0:100:0")
    try:
        keyset.advance(state, [], True, "0:100:0")
    except WalkBroken:
        return
    raise AssertionError("no error after 3 empty pages")


def test_a_repeated_burst_cursor_is_an_error():
    state = keyset.WalkState(start=0, end=6, burst=5, cursor="0:100:0")
    keys = [keyset.Key(f"{i:032x}", 5) for i in range(100)]
    try:
        keyset.advance(state, keys, True, "0:100:0")
    except WalkBroken:
        return
    raise AssertionError("a repeated cursor was followed")


def test_transaction_second_from_end_timestamp():
    assert keyset.event_key({"id": "a", "endTimestamp": 12.7}).second == 12
    assert keyset.event_key({"id": "a", "dateCreated": "1970-01-01T00:00:05.9Z"}).second == 5


def follow_burst(state: keyset.WalkState, links: dict[str | None, str], pages: int = 50) -> int:
    """Walk a burst whose server links cursor -> next cursor; the page at which the walk
    refused to go on (AssertionError when it followed ``pages`` pages)."""
    keys = [keyset.Key(f"{i:032x}", 5) for i in range(100)]
    for page in range(1, pages + 1):
        assert state.burst == 5
        try:
            state, _ = keyset.advance(state, keys, True, links[state.cursor])
        except WalkBroken:
            return page
    raise AssertionError(f"a cursor cycle was followed for {pages} pages")


def test_a_burst_cursor_cycle_of_two_steps_is_refused():
    # The page that found the burst, then the burst's pages: None -> A -> B -> A -> ...
    found = [keyset.Key(f"{i:032x}", 5) for i in range(100)]
    state, _ = keyset.advance(keyset.begin(0, 10), found, True, "0:100:0")
    links: dict[str | None, str] = {None: "A", "A": "B", "B": "A"}
    assert follow_burst(state, links) == 3  # the page at B links back to A, already followed


def test_a_burst_cursor_cycle_is_refused_at_its_first_repeat_after_a_resume():
    # A run stopped with the burst at cursor A; the resumed walk must know A already.
    state = keyset.decode(0, 10, keyset.encode(keyset.WalkState(0, 6, burst=5, cursor="A")))
    assert state is not None
    assert follow_burst(state, {"A": "B", "B": "A"}) == 2
