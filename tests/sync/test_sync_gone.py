"""A 404 is not proof of deletion; a 410 is an error naming its URL, never "gone".

Sentry answers 404 for an issue whose merge is in progress, and for an issue reached the wrong
way (another region); it answers 410 for a deprecated endpoint during a brownout. Only an
organisation-scoped issue-details 404 confirms that an issue is gone, and an issue that answers
again later loses its ``gone_at``. Everything archived stays in every case.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy import text

from archiver.config import Settings
from archiver.errors import ExitCode
from archiver.simulator import SimulatedOrg, SimulatorServer
from archiver.simulator.server import Outcome
from archiver.simulator.wire import ApiResponse
from archiver.storage import db
from archiver.sync.runner import execute_sync

pytestmark = pytest.mark.slow  # end-to-end: real syncs against the simulator

TOKEN = "sim-test-token"


@pytest.fixture
def org() -> SimulatedOrg:
    return SimulatedOrg(seed=11, events=600)


@pytest.fixture
def server(org: SimulatedOrg) -> Iterator[SimulatorServer]:
    with SimulatorServer(org, token=TOKEN) as srv:
        yield srv


def settings(server: SimulatorServer, org: SimulatedOrg, db_url: str) -> Settings:
    return Settings(url=server.url, token=TOKEN, org=org.slug, db=db_url, concurrency=2)


def answer(
    srv: SimulatorServer, paths: Callable[[str], bool], status: int, body: Any
) -> Callable[[], None]:
    """Answer ``status``/``body`` to every request whose path ``paths`` accepts; returns undo."""
    dispatch = srv.dispatch

    def patched(method: str, target: str, headers: dict[str, str], base_url: str) -> Outcome:
        if paths(urlsplit(target).path):
            return Outcome(ApiResponse.json(status, body))
        return dispatch(method, target, headers, base_url)

    srv.dispatch = patched  # type: ignore[method-assign]
    return lambda: setattr(srv, "dispatch", dispatch)


def issue_path(org: SimulatedOrg, issue_id: int, tail: str = "") -> str:
    return f"/api/0/organizations/{org.slug}/issues/{issue_id}/{tail}"


def archived(db_url: str) -> set[tuple[int, str]]:
    engine = db.make_engine(db_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT project_id, event_id FROM events")).all()
    finally:
        engine.dispose()
    return {(int(p), str(e)) for p, e in rows}


def issue_state(db_url: str, issue_id: int) -> tuple[Any, str, int]:
    """The issue's ``gone_at``, its walk's status and its archived events."""
    engine = db.make_engine(db_url)
    try:
        with engine.connect() as conn:
            gone_at = conn.execute(
                text("SELECT gone_at FROM issues WHERE id = :i"), {"i": issue_id}
            ).scalar_one()
            status = conn.execute(
                text("SELECT status FROM sync_issues WHERE issue_id = :i"), {"i": issue_id}
            ).scalar_one()
            events = conn.execute(
                text("SELECT count(*) FROM events WHERE issue_id = :i"), {"i": issue_id}
            ).scalar_one()
    finally:
        engine.dispose()
    return gone_at, str(status), int(events)


def victim_of(org: SimulatedOrg) -> int:
    return max(org.live_issues(), key=lambda i: i.times_seen).id


def test_an_event_list_404_whose_issue_details_answer_is_not_gone(db_url, org, server):
    victim = victim_of(org)
    undo = answer(
        server,
        lambda p: p == issue_path(org, victim, "events/"),
        404,
        {"detail": "The requested resource does not exist"},
    )
    first = execute_sync(settings(server, org, db_url))
    assert first.exit_code == ExitCode.PARTIAL
    assert victim not in first.report.gone
    assert [f["issue_id"] for f in first.report.failures] == [victim]
    assert "not gone" in first.report.failures[0]["error"]
    gone_at, status, _ = issue_state(db_url, victim)
    assert gone_at is None
    assert status == "failed"

    undo()  # the merge is over: the next run walks it again
    second = execute_sync(settings(server, org, db_url))
    assert second.exit_code == ExitCode.OK, second.report.failures
    assert archived(db_url) == org.truth()


def test_a_confirmed_404_keeps_the_archive_and_answering_again_clears_gone_at(db_url, org, server):
    victim = victim_of(org)
    execute_sync(settings(server, org, db_url))
    _, _, kept = issue_state(db_url, victim)
    assert kept > 0
    org.advance(60)
    org.add_events(victim, 3)  # new activity: the next run walks it
    org.advance(2)
    undo = answer(
        server,
        lambda p: p in (issue_path(org, victim), issue_path(org, victim, "events/")),
        404,
        {"detail": "The requested resource does not exist"},
    )
    second = execute_sync(settings(server, org, db_url))
    assert second.exit_code == ExitCode.OK, second.report.failures
    assert second.report.gone == [victim]
    gone_at, status, events = issue_state(db_url, victim)
    assert gone_at is not None
    assert status == "gone"
    assert events == kept  # everything archived stays

    undo()  # it answers again (a merge finished, a region fixed)
    org.advance(60)
    org.add_events(victim, 2)
    org.advance(2)
    third = execute_sync(settings(server, org, db_url))
    assert third.exit_code == ExitCode.OK, third.report.failures
    gone_at, status, _ = issue_state(db_url, victim)
    assert gone_at is None
    assert status == "done"
    assert archived(db_url) == org.truth()


def test_a_410_fails_the_issue_naming_the_url_and_is_never_gone(db_url, org, server):
    victim = victim_of(org)
    answer(
        server,
        lambda p: p.startswith(issue_path(org, victim)),
        410,
        {"message": "This API no longer exists."},
    )
    outcome = execute_sync(settings(server, org, db_url))
    assert outcome.exit_code == ExitCode.PARTIAL
    assert outcome.report.gone == []
    [failure] = outcome.report.failures
    assert failure["issue_id"] == victim
    assert "HTTP 410" in failure["error"]
    assert server.url.rstrip("/") + issue_path(org, victim, "events/") in failure["error"]
    gone_at, status, _ = issue_state(db_url, victim)
    assert gone_at is None
    assert status == "failed"
    others = {k for k in org.truth() if org.locate_event(k[1]).issue.id != victim}
    assert archived(db_url) == others  # every other issue is archived whole
