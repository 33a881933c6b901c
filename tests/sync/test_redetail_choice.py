"""Which events kept as listed a run asks again for: the oldest half, then the others in turn.

Events that never recover (expired in Sentry: 404 for good) are given up after
``MAX_ATTEMPTS`` runs (``tests/sync/test_detail_retries.py``); until then the choice must keep
the oldest of them from taking every run's whole budget.
"""

from __future__ import annotations

import datetime as dt
import random

from archiver.sync.redetail import Kept, choose

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


def _kept(n: int, seed: int = 5) -> list[Kept]:
    rng = random.Random(seed)
    return [
        Kept(pk, 1, f"{rng.getrandbits(128):032x}", 7, T0 + dt.timedelta(minutes=pk))
        for pk in range(1, n + 1)
    ]


def test_all_when_they_fit_and_none_when_no_budget() -> None:
    kept = _kept(5)
    assert {k.pk for k in choose(kept, 10, "8" * 32)} == {1, 2, 3, 4, 5}
    assert choose(kept, 0, "8" * 32) == []


def test_the_oldest_half_then_others_from_the_pivot_on() -> None:
    kept = _kept(40)
    chosen = choose(kept, 10, "0" * 32)  # the pivot before every id: the lowest ids next
    oldest = {1, 2, 3, 4, 5}
    by_id = sorted((k for k in kept if k.pk not in oldest), key=lambda k: k.event_id)
    assert [k.pk for k in chosen] == [*sorted(oldest), *(k.pk for k in by_id[:5])]
    undated = [Kept(99, 1, "f" * 32, 7, None), *kept]
    assert 99 not in {k.pk for k in choose(undated, 10, "0" * 32)}  # no date: not the oldest


def test_events_that_never_recover_do_not_take_every_runs_turn() -> None:
    """The 30 oldest never recover; the 20 newer ones do, once asked: every one of them is
    asked within a few runs of 10, although the oldest half of each run never changes."""
    kept = _kept(50)
    never = {k.pk for k in kept[:30]}
    rng = random.Random(1)
    runs = 0
    while any(k.pk not in never for k in kept):
        chosen = choose(kept, 10, f"{rng.getrandbits(128):032x}")
        assert len(chosen) == 10
        assert {1, 2, 3, 4, 5} <= {k.pk for k in chosen}
        recovered = {k.pk for k in chosen} - never
        kept = [k for k in kept if k.pk not in recovered]
        runs += 1
        assert runs < 100, "some events were never asked again"
