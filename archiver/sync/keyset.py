"""An exact walk of one issue's events that never needs a deep offset (pure: no HTTP).

Why the old offset walk was not exact: Sentry's issue events list orders by ``-timestamp``
alone, in whole seconds, and events of one second come back in a different order on every
request (ClickHouse has no defined order for equal sort keys). Every page is a fresh query at
its offset, so a page boundary inside a second can skip one event of that second and repeat
another, silently. Deep offsets are also expensive: the server reads and drops every skipped
row, so an issue of N events costs about N²/200 row reads and late pages time out.

The walk here asks only for offset 0 of ``[start, end)``, and moves ``end`` instead:

* ``end`` is pinned when the walk starts (a whole second of the server's clock), so events
  arriving during the walk fall outside the window.
* A page at offset 0 holds the top of the window in ``-timestamp`` order. Let ``s`` be the
  oldest second on it. Every event dated after ``s`` ranks above every event of ``s``, so if
  the page holds one event of ``s`` it holds *all* events dated after ``s``: those are done,
  whatever the order of ties. Only second ``s`` may be incomplete. The walk remembers the ids
  of ``s`` it has read, moves ``end`` to ``s + 1`` and asks again from offset 0, dropping ids
  already read. ``end`` strictly decreases with each such page (``s < end - 1`` whenever the
  page holds two seconds), so the walk ends.
* A page holding only one second ``s`` (and more to come) means ``s`` holds at least a page of
  events: the walk pages that second alone, ``[s, s + 1)`` with ``sample=1``, which orders by a
  stable hash of the event id. A deterministic order makes offsets exact again, and they never
  exceed the events of one second. When that sub-walk ends, ``end`` becomes ``s``.
* ``results="false"`` on the next link says the page was the rest of the window: done.

Every decision uses only the page in hand and the checkpoint (``end``, the ids read in its
boundary second, the burst sub-walk's cursor), which is committed with the page's events. A
run killed at any point resumes from the last committed checkpoint; anything fetched after it
is fetched again and upserted (idempotent). A checkpoint written by an older version (a plain
``0:N:0`` offset cursor) is not trusted: that walk restarts from its window's start.

Cost on ordinary data: the boundary second is read twice (once at the bottom of a page, again
at the top of the next), a few events per page, so about ``N / (100 - ties)`` requests.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from archiver.errors import WalkBroken
from archiver.normalize import event_second

FORMAT = 2  # version tag inside the JSON checkpoint; old checkpoints are plain cursors
MAX_EMPTY_PAGES = 3


@dataclass(frozen=True)
class Fetch:
    """One request to make: ``[start, end)`` in epoch seconds, optional sample order and cursor."""

    start: int
    end: int
    sample: bool
    cursor: str | None


@dataclass(frozen=True)
class Key:
    """What the walk needs of one listed event: its id and its whole second (None: unknown)."""

    event_id: str | None
    second: int | None


@dataclass(frozen=True)
class WalkState:
    """Where a walk stands; everything in it is committed with each page.

    ``end``: nothing at or after it is left to read. ``seen``: ids already read in second
    ``end - 1``. ``burst``: the second being paged alone (``[burst, burst + 1)``, ``sample=1``)
    with ``cursor`` its next page. ``cursors`` and ``empty`` guard against loops and are not
    persisted (after a resume they start again, which is safe).
    """

    start: int
    end: int
    seen: frozenset[str] = frozenset()
    burst: int | None = None
    cursor: str | None = None
    done: bool = False
    cursors: frozenset[str] = field(default=frozenset(), compare=False)
    empty: int = field(default=0, compare=False)

    def fetch(self) -> Fetch:
        """The next request."""
        if self.burst is not None:
            return Fetch(self.burst, self.burst + 1, True, self.cursor)
        return Fetch(self.start, self.end, False, None)


def begin(start: int, end: int) -> WalkState:
    return WalkState(start=start, end=end, done=end <= start)


def advance(
    state: WalkState, keys: Sequence[Key], has_next: bool, next_cursor: str | None
) -> tuple[WalkState, list[int]]:
    """The state after a page, and the indexes of the page's events to write (new ones).

    Events already read (ids in ``seen``) are left out; events of unknown id or second are
    always written (upserts make a repeat harmless) but never move the walk.
    """
    if state.done:
        raise ValueError("the walk is over")
    keep = [i for i, k in enumerate(keys) if k.event_id is None or k.event_id not in state.seen]
    if not keys:
        if not has_next:
            return _finish_window(state), keep
        empty = state.empty + 1
        if empty >= MAX_EMPTY_PAGES:
            raise WalkBroken(f"{empty} empty pages in a row that said more results follow")
        return replace(state, empty=empty), keep
    state = replace(state, empty=0)
    if state.burst is not None:
        # ``seen`` stays the ids of the page that found the burst: the sub-walk's own pages
        # never overlap (a stable order), so the checkpoint stays small whatever the burst.
        if not has_next:
            return _finish_window(state), keep
        # Every cursor of the burst is remembered, the one just read included (after a
        # resume it is the only one known), so a cycle of any length is refused at its first
        # repeat instead of being walked for ever.
        followed = state.cursors | ({state.cursor} if state.cursor else frozenset())
        if not next_cursor or next_cursor in followed:
            raise WalkBroken(
                f"the burst walk of second {state.burst} repeated cursor {next_cursor!r}"
            )
        return replace(state, cursor=next_cursor, cursors=followed | {next_cursor}), keep
    if not has_next:
        return replace(state, done=True, seen=frozenset()), keep
    seconds = [k.second for k in keys if k.second is not None]
    if not seconds:
        raise WalkBroken("a page of events without dates: cannot tell where it ends")
    oldest, newest = min(seconds), max(seconds)
    if oldest < state.start or newest >= state.end:
        raise WalkBroken(
            f"the server answered events dated outside the window [{state.start}, {state.end})"
        )
    of_oldest = frozenset(k.event_id for k in keys if k.second == oldest and k.event_id)
    if oldest == newest:
        # A second with at least a page of events: page it alone, in a stable order.
        seen = (state.seen if oldest == state.end - 1 else frozenset()) | of_oldest
        return replace(
            state, end=oldest + 1, seen=seen, burst=oldest, cursor=None, cursors=frozenset()
        ), keep
    return replace(state, end=oldest + 1, seen=of_oldest), keep


def _finish_window(state: WalkState) -> WalkState:
    if state.burst is not None:
        return replace(
            state,
            end=state.burst,
            seen=frozenset(),
            burst=None,
            cursor=None,
            cursors=frozenset(),
            done=state.burst <= state.start,
        )
    return replace(state, done=True, seen=frozenset())


# ---------------------------------------------------------------- checkpoint encoding


def encode(state: WalkState) -> str:
    """The ``walk_cursor`` text of a checkpoint (``walk_end`` keeps the pinned end)."""
    body: dict[str, Any] = {"v": FORMAT, "end": state.end, "seen": sorted(state.seen)}
    if state.burst is not None:
        body["burst"] = state.burst
        body["cursor"] = state.cursor
    return json.dumps(body, separators=(",", ":"))


def decode(start: int, pinned: int, text: str | None) -> WalkState | None:
    """A checkpoint back to a state; None when it is not ours (an old offset cursor)."""
    if not text or not text.startswith("{"):
        return None
    try:
        body = json.loads(text)
    except ValueError:
        return None
    if not isinstance(body, dict) or body.get("v") != FORMAT:
        return None
    try:
        end = min(int(body.get("end", pinned)), pinned)
    except (TypeError, ValueError):
        return None
    seen = frozenset(str(i) for i in body.get("seen") or ())
    burst = body.get("burst")
    cursor = body.get("cursor")
    return WalkState(
        start=start,
        end=end,
        seen=seen,
        burst=int(burst) if burst is not None else None,
        cursor=str(cursor) if cursor else None,
        done=end <= start,
    )


# ---------------------------------------------------------------- event facts


def event_key(item: Any) -> Key:
    """The id and whole second of a listed event, dated by :func:`normalize.event_second`
    (the rule that gives the archived row its ``date_created``)."""
    if not isinstance(item, Mapping):
        return Key(None, None)
    raw_id = item.get("id") or item.get("eventID")
    when = event_second(item)
    return Key(str(raw_id) if raw_id else None, int(when.timestamp() // 1) if when else None)
