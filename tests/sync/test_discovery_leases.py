"""Discovery on one PostgreSQL archive shared by several syncs: nothing written without the
project's lease, and a stale discovery left in progress does not block the project.

A process can lose a project while one of its requests is on the way (it paused longer than
the lease: a rate-limit wait, a machine suspended) and another process takes the project
over and discovers it anew. The first one's answer is older than what the taker wrote.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from urllib.parse import parse_qsl, urlsplit

import pytest
from sqlalchemy import text

from archiver.errors import ExitCode
from archiver.simulator import SimulatedOrg, SimulatorConfig, SimulatorServer
from archiver.simulator.server import Outcome
from archiver.storage import db
from archiver.storage.store import Store
from archiver.sync.runner import execute_sync, summary_lines
from tests.helpers import archived, pg_database, query_rows, sync_settings
from tests.sync.test_sync_leases import events_of

pytestmark = pytest.mark.slow  # end-to-end: real syncs against the simulator

TOKEN = "discovery-leases-token"


@pytest.fixture
def pg_url(pg_template: str) -> Iterator[str]:
    with pg_database(template=pg_template) as url:
        yield url


@pytest.fixture
def org() -> SimulatedOrg:
    return SimulatedOrg(seed=21, events=3000)


@pytest.fixture
def server(org: SimulatedOrg) -> Iterator[SimulatorServer]:
    with SimulatorServer(org, token=TOKEN, config=SimulatorConfig(latency_ms=20)) as srv:
        yield srv


def test_discovery_writes_nothing_once_another_process_took_the_project_over(
    pg_url, server, org, monkeypatch
):
    """The project's issue list is on its way while another process takes the project over
    (this one paused longer than the lease, say) and discovers it anew: this one's page of
    issues, older than the taker's, must not overwrite the taker's issues nor its discovery
    bookmark. Its transaction sees the lease is another's and rolls back, as a page's does;
    the project is handed over and the run goes on (exit 0)."""
    monkeypatch.setenv("SENTRY_ARCHIVER_LEASE_SECONDS", "3600")  # the heartbeat sees nothing
    engine = db.make_engine(pg_url)
    later = "2099-01-01 00:00:00+00"
    taken: list[int] = []
    dispatch = server.dispatch

    def thief(method: str, target: str, headers: dict[str, str], base_url: str) -> Outcome:
        query = dict(parse_qsl(urlsplit(target).query))
        if not taken and urlsplit(target).path.endswith("/issues/") and "project" in query:
            project = int(query["project"])
            with engine.begin() as conn:  # the taker, between this request and its answer
                conn.execute(
                    text(
                        "UPDATE project_leases SET holder = 'thief', finished_at = now(), "
                        "expires_at = now() + interval '1 hour' WHERE project_id = :p"
                    ),
                    {"p": project},
                )
                # what the taker's discovery wrote: its bookmark, newer than this one's
                conn.execute(
                    text(
                        "INSERT INTO sync_projects (project_id, issues_synced_until, updated_at) "
                        "VALUES (:p, :later, now()) ON CONFLICT (project_id) DO UPDATE SET "
                        "issues_synced_until = excluded.issues_synced_until"
                    ),
                    {"p": project, "later": later},
                )
            taken.append(project)
        return dispatch(method, target, headers, base_url)

    server.dispatch = thief
    settings = sync_settings(server.url, TOKEN, org, pg_url, concurrency=2, workers=1)
    try:
        outcome = execute_sync(settings)
        (stolen,) = taken
        with engine.connect() as conn:
            bookmark = conn.execute(
                text(
                    "SELECT issues_synced_until, discovery_end, discovery_cursor "
                    "FROM sync_projects WHERE project_id = :p"
                ),
                {"p": stolen},
            ).one()
            issues = (
                events_of(conn, stolen),
                conn.execute(
                    text("SELECT count(*) FROM issues WHERE project_id = :p"), {"p": stolen}
                ).scalar_one(),
            )
    finally:
        engine.dispose()
    assert outcome.exit_code == ExitCode.OK
    slug = next(p.slug for p in org.projects if p.id == stolen)
    assert outcome.report.handed_over == [slug]
    assert (bookmark[0].year, bookmark[1], bookmark[2]) == (2099, None, None)  # the taker's
    assert issues == (0, 0)  # nothing of this process's older page


def test_a_discovery_left_with_an_inverted_window_starts_again(db_url, server, org):
    """A discovery in progress whose pinned end lies before the bookmark's window start (an
    older version let a process that had lost the project's lease write it over the taker's
    newer bookmark) would be refused by Sentry on every run (400: start must be before end),
    and the project never archived again: it starts again with a new end instead."""
    settings = sync_settings(server.url, TOKEN, org, db_url, concurrency=2, workers=1)
    assert execute_sync(settings).exit_code == ExitCode.OK
    engine = db.make_engine(db_url)
    store = Store(engine)
    try:
        with store.transaction() as conn:
            project = min(p.id for p in org.projects)
            bookmark = (store.project_sync(conn, project) or {})["issues_synced_until"]
            stale = bookmark - dt.timedelta(days=1)
            store.save_project_sync(conn, project, discovery_end=stale)
    finally:
        engine.dispose()
    added = org.add_events(org.live_issues()[0].id, 3)
    org.advance(2)
    outcome = execute_sync(settings)
    assert outcome.exit_code == ExitCode.OK, summary_lines(outcome)
    assert outcome.report.failures == []
    assert archived(db_url) == org.truth()
    assert {eid for _, eid in archived(db_url)} >= set(added)
    rows = query_rows(
        db_url, "SELECT discovery_end FROM sync_projects WHERE project_id = :p", p=project
    )
    assert rows == [(None,)]
