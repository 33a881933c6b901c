"""The sync engine against the built-in simulator over real sockets.

Every test compares the archive with the simulator's truth: the exact set of events the API
can show. Equality means nothing was skipped; the ``(project_id, event_id)`` unique key and
the child-row consistency check mean nothing was stored twice.
"""

from __future__ import annotations

import functools
import json
import random
import signal
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from archiver.cli import cli
from archiver.config import Settings
from archiver.errors import ExitCode
from archiver.simulator import (
    FaultConfig,
    ScheduledFault,
    SimulatedOrg,
    SimulatorConfig,
    SimulatorServer,
)
from archiver.storage import db
from archiver.sync import spool
from archiver.sync.runner import execute_sync
from tests.helpers import (
    archived,
    archiver_process,
    kill_at_random,
    orphans,
    query_rows,
    simulated,
    source_args,
    sync_settings,
)

TOKEN = "sim-test-token"

org, server = simulated(TOKEN, seed=7, events=1500)


def settings(server: SimulatorServer, org: SimulatedOrg, db_url: str, **kw: Any) -> Settings:
    return sync_settings(server.url, TOKEN, org, db_url, **{"concurrency": 4, **kw})


def assert_children_consistent(db_url: str) -> None:
    """Child rows match the stored payloads exactly: no duplicates, none missing, none left
    without its event."""
    engine = db.make_engine(db_url)
    try:
        with engine.connect() as conn:
            expected_tags = 0
            for (raw,) in conn.execute(text("SELECT raw_json FROM v_event_raw_json")):
                tags = json.loads(raw).get("tags")
                expected_tags += len(tags) if isinstance(tags, list) else 0
            tags = conn.execute(text("SELECT count(*) FROM event_tags")).scalar_one()
        # No row without its event (or stack), in any table: PostgreSQL has no foreign key to
        # refuse one (migration 0008), the writer alone keeps them together.
        left_behind = orphans(engine)
    finally:
        engine.dispose()
    assert tags == expected_tags
    assert left_behind == {}


def test_backfill_equals_truth_and_second_run_is_cheap(db_url, org, server):
    first = execute_sync(settings(server, org, db_url))
    assert first.exit_code == ExitCode.OK
    assert archived(db_url) == org.truth()
    assert first.report.events_new == len(org.truth())
    assert_children_consistent(db_url)

    second = execute_sync(settings(server, org, db_url))
    assert second.exit_code == ExitCode.OK
    assert second.report.events_new == 0
    assert second.report.events_updated == 0
    # one request for the project list, one issue-search page per project
    assert second.requests <= 1 + len(org.projects)
    assert archived(db_url) == org.truth()


def test_every_request_of_a_sync_is_organization_scoped(tmp_path, org, server):
    """The org-less /api/0/issues/ and /api/0/groups/ URLs are deprecated (410 in brownouts) and
    reach only the US region (404 elsewhere): a sync must never ask them."""
    server.log.reset()
    result = execute_sync(settings(server, org, f"sqlite:///{tmp_path / 'a.db'}"))
    assert result.exit_code == ExitCode.OK
    paths = [entry.path for entry in server.log.entries()]
    assert any("/issues/" in p and p.endswith("/events/") for p in paths)
    orgless = [p for p in paths if p.startswith(("/api/0/issues/", "/api/0/groups/"))]
    assert orgless == []
    issue_paths = [p for p in paths if "/issues/" in p]
    prefix = f"/api/0/organizations/{org.slug}/issues/"
    assert [p for p in issue_paths if not p.startswith(prefix)] == []


@pytest.mark.slow
def test_biggest_issues_are_walked_first(tmp_path, org, server):
    """Longest first: a big issue started last would be walked alone at the end of the run."""
    server.log.reset()
    result = execute_sync(settings(server, org, f"sqlite:///{tmp_path / 'a.db'}", concurrency=1))
    assert result.exit_code == ExitCode.OK
    order: list[int] = []
    for entry in server.log.entries():
        parts = entry.path.strip("/").split("/")  # api/0/organizations/{org}/issues/{id}/events
        if (
            len(parts) == 7
            and parts[4] == "issues"
            and parts[6] == "events"
            and int(parts[5]) not in order
        ):
            order.append(int(parts[5]))
    seen = {issue.id: issue.times_seen for issue in org.live_issues()}
    assert len(order) > 3
    assert len(set(seen[i] for i in order)) > 3
    assert [seen[i] for i in order] == sorted((seen[i] for i in order), reverse=True)


@pytest.mark.slow
def test_backfill_uses_full_lists_not_per_event_detail(tmp_path, org, server):
    url = f"sqlite:///{tmp_path}/a.db"
    outcome = execute_sync(settings(server, org, url))
    assert outcome.report.details_fetched == 0
    ((full,),) = query_rows(url, "SELECT count(*) FROM events WHERE is_full")
    runs = query_rows(url, "SELECT outcome, events_new, requests FROM runs")
    assert full == len(org.truth())
    assert runs == [("success", len(org.truth()), outcome.requests)]


@pytest.mark.slow
def test_detail_always_fetches_every_event_in_detail_and_ends_equal_to_truth(tmp_path, org, server):
    # Every listed item comes back from the worker raw, for the detail endpoint: the pages'
    # rows files hold nothing, and the writer writes the events the walk encoded itself.
    url = f"sqlite:///{tmp_path}/a.db"
    outcome = execute_sync(settings(server, org, url, detail="always"))
    assert not outcome.report.failures
    assert outcome.report.details_fetched == len(org.truth())
    assert archived(url) == org.truth()
    engine = db.make_engine(url)
    with engine.connect() as conn:
        detailed = conn.execute(text("SELECT count(*) FROM events WHERE has_detail")).scalar_one()
    engine.dispose()
    assert detailed == len(org.truth())
    assert_children_consistent(url)


@pytest.mark.slow
def test_new_events_after_a_run_are_fetched_incrementally(tmp_path, org, server):
    url = f"sqlite:///{tmp_path}/a.db"
    execute_sync(settings(server, org, url))
    issue = org.live_issues()[0]
    org.advance(600)
    org.add_events(issue.id, 7)
    # Walks end on the last whole second before the server's now (the current second may
    # still receive events), so time must move on for the new events to be due.
    org.advance(2)
    outcome = execute_sync(settings(server, org, url))
    assert outcome.report.events_new == 7
    assert archived(url) == org.truth()


@pytest.mark.slow
def test_late_events_dated_before_the_bookmark_are_fetched(tmp_path, org, server):
    """Events can reach Sentry late, dated (by the SDK) before the last walk's pinned end: the
    issue's last_seen then does not pass its bookmark, but its lifetime count grows."""
    url = f"sqlite:///{tmp_path}/a.db"
    first_now = org.now()
    execute_sync(settings(server, org, url))
    engine = db.make_engine(url)
    with engine.connect() as conn:
        walked = set(
            conn.execute(text("SELECT issue_id FROM sync_issues WHERE status = 'done'")).scalars()
        )
    engine.dispose()
    issue = min((i for i in org.live_issues() if i.id in walked), key=lambda i: i.last_seen)
    assert issue.last_seen < first_now - 60  # so last_seen stays before the bookmark
    org.advance(600)
    late = org.add_events(issue.id, 3, at=first_now - 60)  # inside the 15-minute overlap
    org.advance(2)
    outcome = execute_sync(settings(server, org, url))
    assert outcome.report.events_new == 3
    assert {(issue.project.id, e) for e in late} <= archived(url)
    assert archived(url) == org.truth()


@pytest.mark.slow
def test_events_arriving_during_the_walk_are_neither_skipped_nor_duplicated(tmp_path, org):
    faults = FaultConfig(seed=3, new_events_every=4, new_events_count=5)
    with SimulatorServer(org, token=TOKEN, config=SimulatorConfig(faults=faults)) as srv:
        url = f"sqlite:///{tmp_path}/a.db"
        execute_sync(settings(srv, org, url))
        during = archived(url)
        assert during <= org.truth()
        assert len(during) < len(org.truth())  # events did arrive during the walk
    # the arrivals were dated at or after each walk's pinned end: the next run picks them up
    org.advance(2)
    with SimulatorServer(org, token=TOKEN) as srv:
        execute_sync(settings(srv, org, url))
    assert archived(url) == org.truth()
    assert_children_consistent(url)


@pytest.mark.slow
def test_transient_faults_end_equal_to_truth(db_url, org):
    faults = FaultConfig(
        seed=11,
        error_rate=0.05,
        error_statuses=(500, 502, 503),
        cut_rate=0.03,
        truncate_rate=0.03,
        burst_rate=0.02,
        burst_length=2,
    )
    with SimulatorServer(org, token=TOKEN, config=SimulatorConfig(faults=faults)) as srv:
        outcome = execute_sync(settings(srv, org, db_url, max_retries=8))
    assert outcome.exit_code == ExitCode.OK, outcome.report.failures
    assert outcome.retries > 0
    assert archived(db_url) == org.truth()
    assert_children_consistent(db_url)


@pytest.mark.slow
def test_issue_deleted_during_walk_keeps_archive_and_goes_on(tmp_path, org):
    victim = max(org.live_issues(), key=lambda i: i.times_seen)
    schedule = (ScheduledFault("delete_issue", at=2, family="issue_events", issue_id=victim.id),)
    config = SimulatorConfig(faults=FaultConfig(schedule=schedule))
    url = f"sqlite:///{tmp_path}/a.db"
    with SimulatorServer(org, token=TOKEN, config=config) as srv:
        outcome = execute_sync(settings(srv, org, url, concurrency=1))
    assert outcome.exit_code == ExitCode.OK
    assert victim.id in outcome.report.gone
    got = archived(url)
    assert org.truth() <= got  # every other event is there
    extra = got - org.truth()  # what was archived of the deleted issue before it went
    assert extra <= org.truth(include_deleted=True)


def _archived_issue_pair(url: str) -> tuple[int, int]:
    """Two archived issues of one project, each with events."""
    rows = query_rows(
        url,
        "SELECT issue_id, project_id FROM events GROUP BY issue_id, project_id "
        "ORDER BY count(*) DESC",
    )
    for source, project in rows:
        for target, other in rows:
            if other == project and target != source:
                return int(source), int(target)
    raise AssertionError("no two issues in one project")


@pytest.mark.slow
def test_merged_issue_events_move_to_the_target(tmp_path, org, server):
    url = f"sqlite:///{tmp_path}/a.db"
    execute_sync(settings(server, org, url))
    source, target = _archived_issue_pair(url)
    moved = {e for p, e in archived(url)} & {
        e for (p, e) in org.truth()
    }  # every archived event is in the truth
    assert moved
    org.advance(60)
    org.merge_issue(source, target)
    org.advance(2)
    execute_sync(settings(server, org, url, rescan=True))
    assert archived(url) == org.truth()
    engine = db.make_engine(url)
    with engine.connect() as conn:
        left = conn.execute(
            text("SELECT count(*) FROM events WHERE issue_id = :i"), {"i": source}
        ).scalar_one()
    engine.dispose()
    assert left == 0  # the source's events now belong to the target


def test_bad_token_stops_at_once_and_writes_nothing(tmp_path, org, server):
    path = tmp_path / "never.db"
    result = CliRunner().invoke(
        cli, ["sync", *source_args(server.url, "wrong-token-value", org, f"sqlite:///{path}")]
    )
    assert result.exit_code == ExitCode.AUTH, result.output
    assert result.stderr == (
        f"error: HTTP 401 from {server.url}api/0/organizations/{org.slug}/projects/: "
        "Invalid token. Check the auth token (SENTRY_AUTH_TOKEN): it is missing, invalid or "
        "expired.\n"
    )
    assert result.stdout == ""
    assert "wrong-token-value" not in result.output
    assert not path.exists()


@pytest.mark.slow
def test_sync_needs_no_options_when_the_environment_has_them(tmp_path, org, server, monkeypatch):
    monkeypatch.chdir(tmp_path)
    env = {
        "SENTRY_URL": server.url,
        "SENTRY_AUTH_TOKEN": TOKEN,
        "SENTRY_ORG": org.slug,
        "SENTRY_ARCHIVER_DB": f"sqlite:///{tmp_path}/env.db",
    }
    result = CliRunner().invoke(cli, ["sync", "--quiet"], env=env)
    assert result.exit_code == 0, result.output
    assert archived(f"sqlite:///{tmp_path}/env.db") == org.truth()


def _sync_subprocess(
    server: SimulatorServer, org: SimulatedOrg, db_url: str, tmpdir: Path | None = None
) -> subprocess.Popen[str]:
    args = ("sync", "--quiet", "--concurrency", "3")
    return archiver_process(
        server.url, TOKEN, org, db_url, *args, tmpdir=tmpdir, stdout=subprocess.DEVNULL
    )


@pytest.mark.slow
def test_killed_at_random_points_and_resumed_ends_equal_to_truth(db_url, tmp_path):
    org = SimulatedOrg(seed=21, events=3000)
    rng = random.Random(1234)
    spools = tmp_path / "tmp"
    spools.mkdir()
    with SimulatorServer(org, token=TOKEN, config=SimulatorConfig(latency_ms=2)) as srv:
        start = functools.partial(_sync_subprocess, srv, org, db_url, spools)
        killed = kill_at_random(start, rng, times=6, pause=(0.3, 2.5))
        assert killed, "no run was killed: the test proved nothing"
        final = _sync_subprocess(srv, org, db_url, spools)
        _, err = final.communicate(timeout=300)
        assert final.returncode == 0, err
    assert archived(db_url) == org.truth()
    assert_children_consistent(db_url)
    # The killed runs' spools (page files in flight) were removed by the next run, and the
    # last run removed its own. (multiprocessing's own pymp-* directories are not ours.)
    assert [p for p in spools.iterdir() if p.name.startswith(spool.PREFIX)] == []


def _wait_until_walking(url: str, proc: subprocess.Popen[str], limit: float = 120) -> None:
    """Wait (on a loaded machine start-up alone can take seconds) until events are landing."""
    path = url.removeprefix("sqlite:///")
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1)
            try:
                if con.execute("SELECT count(*) FROM events").fetchone()[0] > 0:
                    return
            finally:
                con.close()
        except sqlite3.Error:
            pass  # not created or not migrated yet
        time.sleep(0.05)
    raise AssertionError("the sync did not start archiving in time")


@pytest.mark.slow
def test_sigterm_stops_at_a_page_boundary_and_resume_completes(tmp_path):
    org = SimulatedOrg(seed=5, events=3000)
    url = f"sqlite:///{tmp_path}/a.db"
    with SimulatorServer(org, token=TOKEN, config=SimulatorConfig(latency_ms=5)) as srv:
        proc = _sync_subprocess(srv, org, url)
        _wait_until_walking(url, proc)  # signal handlers are in place once a run is recorded
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == ExitCode.INTERRUPTED, err
        assert 0 < len(archived(url)) < len(org.truth())  # it stopped part way
        final = _sync_subprocess(srv, org, url)
        _, err = final.communicate(timeout=300)
        assert final.returncode == 0, err
    assert archived(url) == org.truth()
