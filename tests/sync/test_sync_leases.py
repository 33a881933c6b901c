"""Several sync processes share one PostgreSQL archive by project leases (issue 17).

Real processes against the simulator: three syncs started at once end with exactly the
truth, no event twice, each with a run of its own; one of them SIGKILLed in the middle of its
walk loses nothing, because its project's lease expires (made short here) and another
process takes the project over, resuming at the dead one's last committed page.
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Connection, text

from archiver.errors import ExitCode, InterruptedRun
from archiver.simulator import SimulatedOrg, SimulatorConfig, SimulatorServer
from archiver.storage import db
from archiver.storage.leases import Leases
from archiver.sync import writer
from archiver.sync.report import Progress, SyncReport
from archiver.sync.runner import execute_sync, summary_lines
from tests.helpers import (
    archived,
    archiver_process,
    gate_issue_events,
    pg_database,
    query_rows,
    sync_settings,
)

pytestmark = pytest.mark.slow  # end-to-end: real processes against the simulator

TOKEN = "leases-test-token"
HOLDERS = "SELECT count(DISTINCT pid) FROM project_leases WHERE expires_at > now()"


@pytest.fixture
def pg_url(pg_template: str) -> Iterator[str]:
    with pg_database(template=pg_template) as url:
        yield url


@pytest.fixture
def org() -> SimulatedOrg:
    return SimulatedOrg(seed=21, events=3000)


@pytest.fixture
def server(org: SimulatedOrg) -> Iterator[SimulatorServer]:
    # a little latency, so the three processes' walks overlap in time
    with SimulatorServer(org, token=TOKEN, config=SimulatorConfig(latency_ms=20)) as srv:
        yield srv


def start(srv: SimulatorServer, org: SimulatedOrg, url: str) -> subprocess.Popen[str]:
    return archiver_process(
        srv.url, TOKEN, org, url, "sync", "--quiet", "--concurrency", "2", "--workers", "1"
    )


def finish(procs: list[subprocess.Popen[str]]) -> list[tuple[int, str]]:
    ends = []
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        ends.append((proc.returncode, err))
    return ends


def test_three_processes_share_the_org_and_end_with_the_truth(pg_url, server, org):
    gate = threading.Event()
    gate_issue_events(server, gate)  # no walk ends before two processes hold a project each
    procs = [start(server, org, pg_url) for _ in range(3)]
    try:
        deadline = time.monotonic() + 120
        while query_rows(pg_url, HOLDERS)[0][0] < 2:
            assert all(p.poll() is None for p in procs), finish(procs)
            assert time.monotonic() < deadline, "two processes never held a project at once"
            time.sleep(0.05)
    finally:
        gate.set()
    ends = finish(procs)
    assert [code for code, _ in ends] == [0, 0, 0], ends
    assert archived(pg_url) == org.truth()  # archived() fails on an event stored twice
    runs = query_rows(pg_url, "SELECT pid, outcome FROM runs ORDER BY id")
    assert sorted(pid for pid, _ in runs) == sorted(p.pid for p in procs)
    assert {outcome for _, outcome in runs} == {"success"}
    leases = query_rows(pg_url, "SELECT project_id, pid, finished_at FROM project_leases")
    assert {p.id for p in org.projects} == {int(p) for p, _, _ in leases}
    assert all(done is not None for _, _, done in leases)
    walked_by = {pid for _, pid, _ in leases}
    assert len(walked_by) > 1, "one process walked every project"  # the gate made sure


def test_a_killed_process_loses_nothing(pg_url, server, org, monkeypatch):
    monkeypatch.setenv("SENTRY_ARCHIVER_LEASE_SECONDS", "2")
    victim = start(server, org, pg_url)
    deadline = time.monotonic() + 120
    while True:  # the victim holds a lease and committed some of that project's pages
        rows = query_rows(
            pg_url,
            "SELECT l.project_id FROM project_leases l JOIN sync_issues s "
            "ON s.project_id = l.project_id WHERE l.pid = :pid AND l.expires_at > now() "
            "AND s.walk_events > 0",
            pid=victim.pid,
        )
        if rows:
            break
        assert victim.poll() is None, victim.communicate()
        assert time.monotonic() < deadline, "the victim never committed a page"
        time.sleep(0.05)
    others = [start(server, org, pg_url) for _ in range(2)]
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=60)
    ends = finish(others)
    assert [code for code, _ in ends] == [0, 0], ends
    assert archived(pg_url) == org.truth()
    taken = query_rows(pg_url, "SELECT pid FROM project_leases WHERE project_id = :p", p=rows[0][0])
    assert taken[0][0] in {p.pid for p in others}  # taken over, finished by another
    outcomes = dict(query_rows(pg_url, "SELECT pid, outcome FROM runs"))
    assert outcomes[victim.pid] == "interrupted"
    assert [outcomes[p.pid] for p in others] == ["success", "success"]


def test_a_project_taken_over_is_handed_over_and_the_run_goes_on(pg_url, server, org, monkeypatch):
    """Between two renewals another process takes this one's project over: the next page's
    transaction sees it and rolls back, nothing more is written for that project, and the run
    goes on with the other projects; it ends a success (exit 0), the project named as handed
    over."""
    monkeypatch.setenv("SENTRY_ARCHIVER_LEASE_SECONDS", "3600")  # only the pages can notice
    # one page at a time: with two lanes the other lane's page, checked just before the
    # take-over, may still commit (see tests/sync/test_sync_lock_pages.py)
    monkeypatch.setattr(writer, "POSTGRESQL_LANES", 1)
    engine = db.make_engine(pg_url)
    at_loss: dict[str, int] = {}

    def on_progress(report: SyncReport, progress: Progress) -> None:
        if report.pages == 3 and not at_loss:  # right after a commit
            with engine.begin() as conn:
                # the thief takes one project over, and (for this test) finishes it at once;
                # the project walked with it is released unfinished and claimed again
                taken = conn.execute(
                    text(
                        "UPDATE project_leases SET holder = 'thief', finished_at = now() "
                        "WHERE project_id = (SELECT min(project_id) FROM project_leases "
                        "WHERE expires_at > now() AND finished_at IS NULL) "
                        "RETURNING project_id"
                    )
                ).all()
                assert len(taken) == 1
                at_loss["project"] = project = int(taken[0][0])
                at_loss["events"] = events_of(conn, project)

    settings = sync_settings(server.url, TOKEN, org, pg_url, concurrency=2, workers=1)
    try:
        outcome = execute_sync(settings, on_progress=on_progress)
        with engine.connect() as conn:
            stolen = at_loss["project"]
            assert events_of(conn, stolen) == at_loss["events"]  # nothing after the loss
            others = {p.id: events_of(conn, p.id) for p in org.projects if p.id != stolen}
            run = conn.execute(text("SELECT outcome, error_message FROM runs")).one()
            left = conn.execute(
                text("SELECT holder FROM project_leases WHERE expires_at > now()")
            ).all()
    finally:
        engine.dispose()
    truth = org.truth()
    assert others == {p: sum(1 for q, _ in truth if q == p) for p in others}  # walked on
    assert outcome.exit_code == ExitCode.OK
    slug = next(p.slug for p in org.projects if p.id == stolen)
    assert outcome.report.handed_over == [slug]
    assert any(f"handed over to another process: {slug}" in line for line in summary_lines(outcome))
    assert tuple(run) == ("success", None)
    assert [h for (h,) in left] == ["thief"]  # the loser gave back nothing it no longer held


def events_of(conn: Connection, project_id: int) -> int:
    return int(
        conn.execute(
            text("SELECT count(*) FROM events WHERE project_id = :p"), {"p": project_id}
        ).scalar_one()
    )


def test_a_takeover_seen_by_the_heartbeat_stops_that_walk_before_any_page(
    pg_url, server, org, monkeypatch
):
    """The walks of the project are waiting for the server when another process takes it
    over: the heartbeat notices, the walk stops with nothing written for that project, and
    the run goes on with the others (exit 0)."""
    monkeypatch.setenv("SENTRY_ARCHIVER_LEASE_SECONDS", "3")  # renewed every second
    gate = threading.Event()
    gate_issue_events(server, gate)
    noticed: list[int] = []
    lose = Leases._lose

    def losing(self: Leases, project_ids: list[int]) -> None:
        noticed.extend(project_ids)
        lose(self, project_ids)

    monkeypatch.setattr(Leases, "_lose", losing)
    settings = sync_settings(server.url, TOKEN, org, pg_url, concurrency=2, workers=1)
    ends: list[Any] = []
    thread = threading.Thread(target=lambda: ends.append(execute_sync(settings)))
    try:
        thread.start()
        deadline = time.monotonic() + 60
        while not (held := query_rows(pg_url, "SELECT project_id FROM project_leases")):
            assert time.monotonic() < deadline, "no project was ever claimed"
            time.sleep(0.05)
        stolen = int(held[0][0])
        engine = db.make_engine(pg_url)
        with engine.begin() as conn:  # the thief takes it over (and finishes it at once)
            conn.execute(
                text(
                    "UPDATE project_leases SET holder = 'thief', finished_at = now(), "
                    "expires_at = now() + interval '1 hour' WHERE project_id = :p"
                ),
                {"p": stolen},
            )
        engine.dispose()
        while stolen not in noticed:
            assert time.monotonic() < deadline, "the heartbeat never noticed"
            time.sleep(0.05)
    finally:
        gate.set()
        thread.join(120)
    (outcome,) = ends
    assert outcome.exit_code == ExitCode.OK
    slug = next(p.slug for p in org.projects if p.id == stolen)
    assert outcome.report.handed_over == [slug]
    counts = dict(query_rows(pg_url, "SELECT project_id, count(*) FROM events GROUP BY 1"))
    truth = org.truth()
    assert stolen not in counts
    assert counts == {
        p.id: sum(1 for q, _ in truth if q == p.id) for p in org.projects if p.id != stolen
    }


def test_a_stopped_run_leaves_its_project_unfinished_for_the_others(pg_url, server, org):
    """A signal stops the walk of the project in hand: its lease is given back unfinished, so
    another process of the round walks the rest of it (not only the next round)."""
    stop = threading.Event()
    walked: dict[str, int] = {}

    def on_progress(report: SyncReport, progress: Progress) -> None:
        if report.pages == 3 and not walked:
            walked["project"] = int(
                query_rows(pg_url, "SELECT project_id FROM project_leases")[0][0]
            )
            stop.set()

    settings = sync_settings(server.url, TOKEN, org, pg_url, concurrency=2, workers=1)
    with pytest.raises(InterruptedRun):
        execute_sync(settings, stop=stop, on_progress=on_progress)
    rows = query_rows(
        pg_url,
        "SELECT finished_at, expires_at <= now() FROM project_leases WHERE project_id = :p",
        p=walked["project"],
    )
    assert rows == [(None, True)]  # given back, not finished


def test_the_biggest_project_is_claimed_first(pg_url, server, org):
    """A new archive knows no sizes (claims by id); once discovery stored the issues' counts,
    the project with the most events expected goes first."""
    settings = sync_settings(server.url, TOKEN, org, pg_url, concurrency=2, workers=1)
    claims = "SELECT project_id FROM project_leases ORDER BY acquired_at, project_id"
    assert execute_sync(settings).exit_code == ExitCode.OK
    assert [p for (p,) in query_rows(pg_url, claims)] == sorted(p.id for p in org.projects)
    smallest = min(org.projects, key=lambda p: sum(1 for q, _ in org.truth() if q == p.id))
    engine = db.make_engine(pg_url)
    with engine.begin() as conn:  # as if its issues had grown the most since
        conn.execute(
            text("UPDATE issues SET times_seen = 1000000 WHERE project_id = :p"),
            {"p": smallest.id},
        )
    engine.dispose()
    assert execute_sync(settings).exit_code == ExitCode.OK
    assert query_rows(pg_url, claims)[0][0] == smallest.id


def test_one_sync_walks_two_leased_projects_at_once(pg_url, server, org):
    """Each project's walk ends with its biggest issue walked alone; walked two at a time,
    one project's tail overlaps the other's walk (issue 17: PostgreSQL at SQLite's speed)."""
    assert len(org.projects) >= 3
    engine = db.make_engine(pg_url)
    held: list[int] = []

    def on_progress(report: SyncReport, progress: Progress) -> None:
        with engine.connect() as conn:
            held.append(
                conn.execute(
                    text(
                        "SELECT count(*) FROM project_leases "
                        "WHERE finished_at IS NULL AND expires_at > now()"
                    )
                ).scalar_one()
            )

    settings = sync_settings(server.url, TOKEN, org, pg_url, concurrency=2, workers=1)
    try:
        assert execute_sync(settings, on_progress=on_progress).exit_code == ExitCode.OK
    finally:
        engine.dispose()
    assert held[0] == 2  # its first page: two claimed at once
    assert archived(pg_url) == org.truth()


def test_the_next_project_is_claimed_while_the_walks_run_low(pg_url, server, org):
    """The third project is not left for after the first two's tails: it is claimed and
    walked while their last walks are still going (sync/refill.py)."""
    assert len(org.projects) >= 3
    settings = sync_settings(server.url, TOKEN, org, pg_url, concurrency=2, workers=1)
    assert execute_sync(settings).exit_code == ExitCode.OK
    claims = query_rows(
        pg_url, "SELECT project_id, acquired_at FROM project_leases ORDER BY acquired_at"
    )
    assert len(claims) == len(org.projects)
    first_two = [p for p, _ in claims[:2]]
    ((last_page,),) = query_rows(
        pg_url,
        "SELECT max(archived_at) FROM events WHERE project_id IN (:a, :b)",
        a=first_two[0],
        b=first_two[1],
    )
    assert claims[2][1] < last_page
    assert archived(pg_url) == org.truth()
