"""Events kept as listed (their detail answer was unusable) are asked again by later runs.

A run that could not use an event's detail keeps its listed copy with a ``detail_unusable``
problem (:mod:`archiver.sync.details`). The walk is incremental: it never lists that event
again, so without a second request the poorer copy would stay for good, even once Sentry
answers again. Later runs ask again for the details of a bounded number of such events; a
usable answer replaces the listed copy through the ordinary write path (a richer copy wins),
which rewrites the event's problems too, so the ``detail_unusable`` row goes away.

Run 1 meets the simulator's fault injection (every event detail answers a truncated body);
run 2 meets a healthy server and walks nothing new.
"""

from __future__ import annotations

from typing import Any

import pytest

from archiver.errors import ExitCode
from archiver.operations.status import collect_status, format_status
from archiver.simulator import FaultConfig, SimulatedOrg, SimulatorConfig, SimulatorServer
from archiver.storage import db
from archiver.sync.runner import SyncOutcome, counts, execute_sync, summary_lines
from tests.helpers import archived, query_rows, simulated, sync_settings

pytestmark = pytest.mark.slow  # end-to-end: real syncs against the simulator

TOKEN = "sim-redetail-token"

org, server = simulated(TOKEN, seed=17, events=60)

# Every event detail answers a cut JSON body: each event is kept as listed (max_retries=0,
# so no backoff is slept).
BROKEN = SimulatorConfig(
    faults=FaultConfig(truncate_rate=1.0, families=frozenset({"issue_event_details"}))
)

UNUSABLE = (
    "SELECT e.event_id FROM events e WHERE EXISTS (SELECT 1 FROM event_problems p "
    "WHERE p.event_pk = e.id AND p.problem = 'detail_unusable') ORDER BY e.event_id"
)


def _sync(url: str, org: SimulatedOrg, db_url: str, **more: Any) -> SyncOutcome:
    settings = sync_settings(
        url, TOKEN, org, db_url, concurrency=2, workers=1, detail="always", max_retries=0, **more
    )
    outcome = execute_sync(settings)
    assert outcome.report.failures == []
    assert outcome.exit_code == ExitCode.OK
    return outcome


def _unusable(db_url: str) -> list[str]:
    return [eid for (eid,) in query_rows(db_url, UNUSABLE)]


def _kept_as_listed_by_a_broken_server(db_url: str, org: SimulatedOrg, **more: Any) -> list[str]:
    with SimulatorServer(org, token=TOKEN, config=BROKEN) as broken:
        first = _sync(broken.url, org, db_url, **more)
    kept = _unusable(db_url)
    assert len(kept) == len(archived(db_url)) == len(first.report.details_unusable) > 10
    assert first.report.details_retried == 0  # the run's own: its walks just asked
    return kept


def test_a_later_run_asks_again_and_the_detail_replaces_the_listed_copy(
    db_url: str, org: SimulatedOrg, server: SimulatorServer
) -> None:
    kept = _kept_as_listed_by_a_broken_server(db_url, org)
    second = _sync(server.url, org, db_url)
    report = second.report
    assert report.issues_walked == 0  # incremental: no issue had anything new to list
    assert _unusable(db_url) == []  # the problem rows went with the listed copies
    assert (report.details_retried, report.details_recovered) == (len(kept), len(kept))
    assert report.events_updated == len(kept)
    assert report.details_unusable == []
    ((listed,),) = query_rows(db_url, "SELECT count(*) FROM events WHERE NOT has_detail")
    assert listed == 0
    assert archived(db_url) == org.truth()
    numbers = counts(second)
    assert (numbers["events_detail_retried"], numbers["events_detail_recovered"]) == (
        len(kept),
        len(kept),
    )
    assert any(
        f"asked again: {len(kept)}, recovered {len(kept)}" in line for line in summary_lines(second)
    )
    third = _sync(server.url, org, db_url)  # nothing left to ask for
    assert third.report.details_retried == 0


def test_a_detail_still_unusable_keeps_the_listed_copy_for_the_next_run(
    db_url: str, org: SimulatedOrg
) -> None:
    kept = _kept_as_listed_by_a_broken_server(db_url, org)
    before = query_rows(db_url, "SELECT event_id, raw_sha256, updated_at FROM events")
    with SimulatorServer(org, token=TOKEN, config=BROKEN) as broken:
        second = _sync(broken.url, org, db_url)
    assert query_rows(db_url, "SELECT event_id, raw_sha256, updated_at FROM events") == before
    assert _unusable(db_url) == kept
    assert (second.report.details_retried, second.report.details_recovered) == (len(kept), 0)
    assert second.report.events_updated == 0


def test_each_run_asks_a_bounded_number_the_oldest_among_them(
    db_url: str, org: SimulatedOrg, server: SimulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One project (on PostgreSQL a run spends its budget project after project, in the
    order it claims them: the oldest first within each)."""
    from archiver.sync import redetail

    project = max(org.projects, key=lambda p: sum(1 for q, _ in org.truth() if q == p.id))
    one = {"projects": (project.slug,)}
    kept = _kept_as_listed_by_a_broken_server(db_url, org, **one)
    monkeypatch.setattr(redetail, "PER_RUN", 6)
    oldest = [
        eid
        for (eid,) in query_rows(
            db_url,
            "SELECT event_id FROM events ORDER BY date_created, id LIMIT :n",
            n=redetail.PER_RUN // 2,
        )
    ]
    second = _sync(server.url, org, db_url, **one)
    assert (second.report.details_retried, second.report.details_recovered) == (6, 6)
    left = _unusable(db_url)
    assert len(left) == len(kept) - 6
    assert not set(oldest) & set(left)  # the oldest were among them
    runs = 1
    while left:  # every run takes others: none waits for ever
        assert _sync(server.url, org, db_url, **one).report.details_recovered == min(6, len(left))
        left, runs = _unusable(db_url), runs + 1
    assert runs == -(-len(kept) // 6)
    assert archived(db_url) == {(p, e) for p, e in org.truth() if p == project.id}


ATTEMPTS = (
    "SELECT e.event_id, p.attempts FROM events e JOIN event_problems p ON p.event_pk = e.id "
    "WHERE p.problem = 'detail_unusable' ORDER BY e.event_id"
)


def _lost(event_id: str) -> SimulatorConfig:
    """A server whose detail of ``event_id`` answers 404 (its body lost), the others served."""
    return SimulatorConfig(hollow_events=frozenset({event_id}))


def _sync_at(config: SimulatorConfig, org: SimulatedOrg, db_url: str) -> SyncOutcome:
    with SimulatorServer(org, token=TOKEN, config=config) as srv:
        return _sync(srv.url, org, db_url)


def test_an_event_whose_detail_never_comes_back_is_given_up_and_stays_as_listed(
    db_url: str, org: SimulatedOrg
) -> None:
    from archiver.sync.redetail import MAX_ATTEMPTS

    kept = _kept_as_listed_by_a_broken_server(db_url, org)
    lost = kept[0]
    second = _sync_at(_lost(lost), org, db_url)  # the others recover, this one answers 404
    assert (second.report.details_retried, second.report.details_recovered) == (
        len(kept),
        len(kept) - 1,
    )
    assert query_rows(db_url, ATTEMPTS) == [(lost, 1)]
    for attempt in range(2, MAX_ATTEMPTS + 1):
        outcome = _sync_at(_lost(lost), org, db_url)
        report = outcome.report
        assert (report.details_retried, report.details_recovered) == (1, 0)
        assert query_rows(db_url, ATTEMPTS) == [(lost, attempt)]
    assert report.details_given_up == 1
    assert any("given up 1" in line for line in summary_lines(outcome))
    assert counts(outcome)["events_detail_given_up"] == 1
    for _ in range(2):  # no longer asked, not even by a healthy server
        after = _sync_at(SimulatorConfig(), org, db_url)
        assert (after.report.details_retried, after.report.details_given_up) == (0, 0)
    assert query_rows(db_url, ATTEMPTS) == [(lost, MAX_ATTEMPTS)]
    assert _unusable(db_url) == [lost]  # kept as listed, visible as such
    engine = db.make_engine(db_url)
    try:
        status = collect_status(engine)
    finally:
        engine.dispose()
    assert status["kept_as_listed"] == {"events": 1, "given_up": 1}
    assert (
        f"kept as listed: 1 event (detail unusable), 1 given up after {MAX_ATTEMPTS} attempts"
        in format_status(status).splitlines()
    )
    assert archived(db_url) == org.truth()


def test_an_event_that_recovers_on_its_third_attempt_is_stored_in_full(
    db_url: str, org: SimulatedOrg
) -> None:
    kept = _kept_as_listed_by_a_broken_server(db_url, org)
    late = kept[-1]
    for attempt in (1, 2):
        _sync_at(_lost(late), org, db_url)
        assert query_rows(db_url, ATTEMPTS) == [(late, attempt)]
    third = _sync_at(SimulatorConfig(), org, db_url)
    assert (third.report.details_retried, third.report.details_recovered) == (1, 1)
    assert _unusable(db_url) == []
    rows = query_rows(db_url, "SELECT has_detail, is_full FROM events WHERE event_id = :e", e=late)
    assert [tuple(map(bool, r)) for r in rows] == [(True, True)]


def test_a_detail_the_way_to_the_server_failed_to_bring_is_no_attempt(
    db_url: str, org: SimulatedOrg
) -> None:
    """A 5xx is not Sentry's answer about the event: it counts nothing towards giving up."""
    kept = _kept_as_listed_by_a_broken_server(db_url, org)
    failing = SimulatorConfig(
        faults=FaultConfig(error_rate=1.0, families=frozenset({"issue_event_details"}))
    )
    with SimulatorServer(org, token=TOKEN, config=failing) as srv:
        report = execute_sync(
            sync_settings(
                srv.url,
                TOKEN,
                org,
                db_url,
                concurrency=2,
                workers=1,
                detail="always",
                max_retries=0,
            )
        ).report
    assert (report.details_retried, report.details_recovered) == (len(kept), 0)
    assert {n for _, n in query_rows(db_url, ATTEMPTS)} == {0}
