"""The sync against what sentry.io and self-hosted Sentry really do (issue 14).

Hollow events (nodestore lost the body), performance issues' transactions, a self-hosted
server without rate-limit headers, and a stop asked while the client waits out a long 429.
Every test compares the archive with the simulator's truth.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections import Counter
from typing import Any
from urllib.parse import urlsplit

import pytest

from archiver.config import Settings
from archiver.errors import ExitCode, InterruptedRun
from archiver.simulator import SimulatedOrg, SimulatorConfig, SimulatorServer
from archiver.simulator.server import Outcome
from archiver.simulator.wire import ApiResponse
from archiver.sync.runner import execute_sync, summary_lines
from tests.helpers import archived, query_rows, sync_settings

pytestmark = pytest.mark.slow  # end-to-end: real syncs against the simulator

TOKEN = "sim-test-token"


def settings(server: SimulatorServer, org: SimulatedOrg, db_url: str, **kw: Any) -> Settings:
    return sync_settings(server.url, TOKEN, org, db_url, **{"concurrency": 2, **kw})


# ---------------------------------------------------------------------- hollow events


def _hollow_ids(org: SimulatedOrg) -> tuple[int, frozenset[str]]:
    """The biggest issue, and the ids of ten of its events (hollow when so configured)."""
    issue = max(org.live_issues(), key=lambda i: i.times_seen)
    ids = sorted(e for _, e in org.truth() if org.locate_event(e).issue.id == issue.id)  # type: ignore[union-attr]
    return issue.id, frozenset(ids[:10])


def _rows_of(db_url: str, ids: frozenset[str]) -> dict[str, tuple[bool, int]]:
    """Per event id: ``is_full`` and how many entries its raw JSON holds."""
    out: dict[str, tuple[bool, int]] = {}
    for event_id, is_full, raw in query_rows(
        db_url,
        "SELECT e.event_id, e.is_full, r.raw_json FROM events e "
        "JOIN v_event_raw_json r ON r.event_pk = e.id",
    ):
        if event_id in ids:
            out[event_id] = (bool(is_full), len(json.loads(raw).get("entries") or []))
    return out


def _new_activity(org: SimulatedOrg, issue_id: int) -> None:
    org.advance(60)
    org.add_events(issue_id, 2)
    org.advance(2)


# The walk re-reads this much before its bookmark: here everything, so the second run reads
# every event of the issue again (as a late-arrival overlap or a merge re-walk would).
REREAD = dt.timedelta(days=400)


def test_hollow_copies_served_later_never_replace_complete_ones(db_url):
    org = SimulatedOrg(seed=5, events=500)
    issue_id, hollow = _hollow_ids(org)
    with SimulatorServer(org, token=TOKEN) as srv:
        assert execute_sync(settings(srv, org, db_url)).exit_code == ExitCode.OK
    complete = _rows_of(db_url, hollow)
    assert len(complete) == 10
    assert all(full and n > 0 for full, n in complete.values())

    _new_activity(org, issue_id)
    with SimulatorServer(org, token=TOKEN, config=SimulatorConfig(hollow_events=hollow)) as srv:
        outcome = execute_sync(settings(srv, org, db_url, overlap=REREAD))
    assert outcome.exit_code == ExitCode.OK, outcome.report.failures
    assert outcome.report.events_hollow_ignored == 10
    assert any("hollow copies ignored" in line and "10" in line for line in summary_lines(outcome))
    assert _rows_of(db_url, hollow) == complete
    assert archived(db_url) == org.truth()


def test_an_event_archived_hollow_is_upgraded_when_a_complete_copy_arrives(db_url):
    org = SimulatedOrg(seed=5, events=500)
    issue_id, hollow = _hollow_ids(org)
    with SimulatorServer(org, token=TOKEN, config=SimulatorConfig(hollow_events=hollow)) as srv:
        first = execute_sync(settings(srv, org, db_url))
    assert first.exit_code == ExitCode.OK, first.report.failures
    assert archived(db_url) == org.truth()  # hollow, but archived: never lost
    assert set(_rows_of(db_url, hollow).values()) == {(False, 0)}

    _new_activity(org, issue_id)
    with SimulatorServer(org, token=TOKEN) as srv:  # nodestore answers again
        second = execute_sync(settings(srv, org, db_url, overlap=REREAD))
    assert second.exit_code == ExitCode.OK, second.report.failures
    assert second.report.events_updated >= 10
    upgraded = _rows_of(db_url, hollow)
    assert len(upgraded) == 10
    assert all(full and n > 0 for full, n in upgraded.values())
    assert archived(db_url) == org.truth()


def test_a_sync_with_a_hollow_rate_archives_every_event(db_url):
    org = SimulatedOrg(seed=5, events=500)
    config = SimulatorConfig(hollow_rate=0.1)
    with SimulatorServer(org, token=TOKEN, config=config) as srv:
        outcome = execute_sync(settings(srv, org, db_url))
    assert outcome.exit_code == ExitCode.OK, outcome.report.failures
    assert archived(db_url) == org.truth()
    hollow = query_rows(db_url, "SELECT count(*) FROM events WHERE NOT is_full")[0][0]
    assert 0 < hollow < len(org.truth()) // 4


# ---------------------------------------------------------------------- performance issues


def test_transactions_of_performance_issues_are_archived_dated_typed_with_spans(db_url):
    org = SimulatedOrg(seed=5, events=3000)  # big enough for python's performance kind
    with SimulatorServer(org, token=TOKEN) as srv:
        outcome = execute_sync(settings(srv, org, db_url))
    assert outcome.exit_code == ExitCode.OK, outcome.report.failures
    assert archived(db_url) == org.truth()
    assert query_rows(db_url, "SELECT count(*) FROM events WHERE date_created IS NULL")[0][0] == 0
    transactions = query_rows(
        db_url,
        "SELECT e.id, r.raw_json, e.date_created FROM events e"
        " JOIN v_event_raw_json r ON r.event_pk = e.id WHERE e.type = 'transaction'",
    )
    assert transactions, "the organisation has performance issues"
    for _pk, raw, date_created in transactions:
        payload = json.loads(raw)
        assert "dateCreated" not in payload
        end = dt.datetime.fromtimestamp(float(payload["endTimestamp"]), dt.timezone.utc)
        stored = (
            date_created
            if isinstance(date_created, dt.datetime)
            else dt.datetime.fromisoformat(str(date_created))
        )
        stored = stored if stored.tzinfo else stored.replace(tzinfo=dt.timezone.utc)
        assert abs((stored - end).total_seconds()) < 1
    spans = query_rows(
        db_url,
        "SELECT count(DISTINCT x.event_pk) FROM event_entries x JOIN events e ON e.id = x.event_pk "
        "WHERE e.type = 'transaction' AND x.type = 'spans'",
    )[0][0]
    assert spans == len(transactions)


# ---------------------------------------------------------------------- no rate-limit headers


def test_without_rate_limit_headers_requests_stay_within_the_concurrency(tmp_path):
    """Self-hosted Sentry sends no X-Sentry-Rate-Limit-* headers: nothing paces the client
    but ``--concurrency``, and nothing may loop."""
    org = SimulatedOrg(seed=7, events=1500)
    url = f"sqlite:///{tmp_path}/a.db"
    in_flight = [0, 0]  # now, most
    lock = threading.Lock()
    with SimulatorServer(org, token=TOKEN) as srv:  # the default: no rate-limit headers
        dispatch = srv.dispatch

        def counted(method: str, target: str, headers: dict[str, str], base_url: str) -> Outcome:
            with lock:
                in_flight[0] += 1
                in_flight[1] = max(in_flight)
            try:
                time.sleep(0.02)  # a server that takes a moment, so requests overlap
                outcome = dispatch(method, target, headers, base_url)
                assert not any(
                    k.lower().startswith("x-sentry-rate-limit") for k, _ in outcome.response.headers
                )
                return outcome
            finally:
                with lock:
                    in_flight[0] -= 1

        srv.dispatch = counted  # type: ignore[method-assign]
        outcome = execute_sync(settings(srv, org, url, concurrency=3))
    assert outcome.exit_code == ExitCode.OK, outcome.report.failures
    assert archived(url) == org.truth()
    assert 2 <= in_flight[1] <= 3
    assert outcome.retries == 0
    by_family = Counter(e.family for e in srv.log.entries())
    assert by_family["issue_events"] == outcome.report.pages  # one request per page
    # the project list, one search page per project, the pages, each release once: no storm
    releases = query_rows(url, "SELECT count(DISTINCT release) FROM events")[0][0]
    assert outcome.requests <= 1 + len(org.projects) + outcome.report.pages + releases + 2


# ---------------------------------------------------------------------- a stop during a wait


def _rate_limit(srv: SimulatorServer, family: str) -> None:
    """Every request of ``family`` answers 429 asking to wait ten minutes."""
    dispatch = srv.dispatch

    def limited(method: str, target: str, headers: dict[str, str], base_url: str) -> Outcome:
        path = urlsplit(target).path
        hit = path.endswith("/events/") if family == "events" else path.endswith("/issues/")
        if hit:
            body = json.dumps("You are attempting to use this endpoint too frequently.").encode()
            return Outcome(ApiResponse(429, body, [("Retry-After", "600")]))
        return dispatch(method, target, headers, base_url)

    srv.dispatch = limited  # type: ignore[method-assign]


@pytest.mark.parametrize("family", ["events", "issues"])
def test_a_stop_during_a_long_rate_limit_wait_ends_promptly_and_a_rerun_completes(db_url, family):
    org = SimulatedOrg(seed=5, events=500)
    stop = threading.Event()
    with SimulatorServer(org, token=TOKEN) as srv:
        _rate_limit(srv, family)
        timer = threading.Timer(1.0, stop.set)
        timer.start()
        started = time.monotonic()
        try:
            try:
                outcome = execute_sync(settings(srv, org, db_url), stop=stop)
                code = outcome.exit_code
            except InterruptedRun as exc:  # stopped before the walks: raised, as the CLI sees
                code = exc.exit_code
        finally:
            timer.cancel()
        assert time.monotonic() - started < 30
    assert code == ExitCode.INTERRUPTED
    [(outcome_word,)] = query_rows(db_url, "SELECT outcome FROM runs")
    assert outcome_word == "interrupted"

    with SimulatorServer(org, token=TOKEN) as srv:
        again = execute_sync(settings(srv, org, db_url))
    assert again.exit_code == ExitCode.OK, again.report.failures
    assert archived(db_url) == org.truth()


# ---------------------------------------------------------------------- 90-day issue search

DAY = 86_400


def test_a_clipped_search_archives_what_it_can_reach_and_walks_known_issues_by_id(db_url):
    """sentry.io's issue search never looks back more than 90 days (the simulator's default):
    a backfill archives the issues it can list, whole; an issue already known to the archive
    whose walk is unfinished is walked by id once it ages out of the search."""
    org = SimulatedOrg(seed=5, events=3000)
    assert org.truth() < org.truth(searchable_days=None)  # some issues are out of reach
    now = int(org.now())

    def newest_age(segments: Any) -> int:
        """Days since the newest event (events of the last day: 0), or -1 when none."""
        return next(
            (d for d in range(100) if org.count(segments, now - (d + 1) * DAY, now - d * DAY)), -1
        )

    # an issue listed today whose newest event is 20 to 89 days old
    victim, age = next(
        (i.id, newest_age(i.segments))
        for i in org.live_issues()
        if 20 <= newest_age(i.segments) <= 89
    )
    with SimulatorServer(org, token=TOKEN) as srv:
        undo_events = srv.dispatch

        def refused(method: str, target: str, headers: dict[str, str], base_url: str) -> Outcome:
            if urlsplit(target).path.endswith(f"/issues/{victim}/events/"):
                return Outcome(ApiResponse(500, b'{"detail": "Internal Error"}'))
            return undo_events(method, target, headers, base_url)

        srv.dispatch = refused  # type: ignore[method-assign]
        first = execute_sync(settings(srv, org, db_url, max_retries=0))
    assert [f["issue_id"] for f in first.report.failures] == [victim]
    assert archived(db_url) == {
        k
        for k in org.truth()
        if org.locate_event(k[1]).issue.id != victim  # type: ignore[union-attr]
    }

    org.advance((91 - age) * DAY)  # its newest events are now 91 days old, within retention
    victims = {
        k
        for k in org.truth(searchable_days=None)
        if org.locate_event(k[1]).issue.id == victim  # type: ignore[union-attr]
    }
    assert victims
    assert not victims & org.truth()
    with SimulatorServer(org, token=TOKEN) as srv:
        second = execute_sync(settings(srv, org, db_url))
    assert second.exit_code == ExitCode.OK, second.report.failures
    assert victims <= archived(db_url)
