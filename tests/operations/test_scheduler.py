"""``sentry-archiver schedule``: fires, never overlaps, survives failures, stops on SIGTERM."""

from __future__ import annotations

import datetime as dt
import itertools
import signal
import subprocess
import threading
import time
from collections.abc import Callable

import pytest
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from click.testing import CliRunner
from sqlalchemy import text

from archiver.cli import cli
from archiver.config import Settings
from archiver.errors import ApiError, ConfigError, ExitCode, InterruptedRun, LockHeldError
from archiver.operations.scheduler import SyncScheduler, make_trigger, schedule_settings
from archiver.simulator import SimulatedOrg, SimulatorServer
from archiver.storage import db
from archiver.sync.runner import execute_sync
from tests.helpers import StderrWatcher, archiver_process, gate_issue_events, query_rows

TOKEN = "sched-test-token"


def wait_for(predicate: Callable[[], object], what: str, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


# --------------------------------------------------------------------------- triggers


def test_make_trigger():
    assert isinstance(make_trigger("0 3 * * *", None), CronTrigger)
    every = make_trigger(None, dt.timedelta(hours=6))
    assert isinstance(every, IntervalTrigger)
    assert every.interval == dt.timedelta(hours=6)
    with pytest.raises(ConfigError, match="not a valid cron expression"):
        make_trigger("61 * * * *", None)
    with pytest.raises(ConfigError, match="not both"):
        make_trigger("0 3 * * *", dt.timedelta(hours=1))
    with pytest.raises(ConfigError, match="no schedule"):
        make_trigger(None, None)
    with pytest.raises(ConfigError, match="too short"):
        make_trigger(None, dt.timedelta(milliseconds=100))


def test_command_line_schedule_replaces_the_files(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[schedule]\ncron = "0 3 * * *"\n')
    s = schedule_settings({"config_file": str(cfg), "cron": None, "every": None})
    assert (s.schedule_cron, s.schedule_every) == ("0 3 * * *", None)
    s = schedule_settings({"config_file": str(cfg), "cron": None, "every": "6h"})
    assert (s.schedule_cron, s.schedule_every) == (None, dt.timedelta(hours=6))
    with pytest.raises(ConfigError):
        schedule_settings({"cron": "* * * * *", "every": "1h"})


def test_schedule_command_config_errors(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for var in ("SENTRY_AUTH_TOKEN", "SENTRY_ORG", "SENTRY_ARCHIVER_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    runner = CliRunner()
    r = runner.invoke(cli, ["schedule", "--auth-token", "t0ken-value", "--org", "acme"])
    assert r.exit_code == ExitCode.USAGE
    assert r.output == (
        "error: no schedule: give --cron 'EXPR' or --every DURATION (e.g. 6h), or set cron or "
        "every in the [schedule] section of the config file\n"
    )
    r = runner.invoke(cli, ["schedule", "--every", "1h"])
    assert r.exit_code == ExitCode.USAGE
    assert r.output == (
        "error: missing the auth token (--auth-token or SENTRY_AUTH_TOKEN) and the organization "
        "(--org or SENTRY_ORG)\n"
    )
    r = runner.invoke(
        cli, ["schedule", "--cron", "bad", "--auth-token", "t0ken-value", "--org", "acme"]
    )
    assert r.exit_code == ExitCode.USAGE
    assert r.output == (
        "error: not a valid cron expression: 'bad' (Wrong number of fields; got 1, expected 5); "
        "use 5 fields: minute hour day month weekday\n"
    )


# --------------------------------------------------------------------------- in process


@pytest.mark.slow
def test_overlapping_run_is_skipped_not_started_twice():
    skipped = threading.Event()
    calls: list[int] = []

    def run(stop: threading.Event) -> None:
        calls.append(1)
        if len(calls) == 1:  # the first run lasts until a due time has been skipped
            assert skipped.wait(30)

    sched = SyncScheduler(IntervalTrigger(seconds=1), run, run_now=True, on_skip=skipped.set)
    sched.start()
    try:
        wait_for(lambda: len(sched.history) >= 2, "two runs")
    finally:
        sched.shutdown()
    assert sched.skipped >= 1
    assert sched.max_running == 1
    assert [r.outcome for r in sched.history[:2]] == ["success", "success"]


@pytest.mark.slow
def test_a_failed_run_does_not_stop_the_scheduler():
    outcomes = iter(
        [
            RuntimeError("boom"),
            ApiError("server kept failing"),
            LockHeldError("another sync holds the archive"),
        ]
    )

    def run(stop: threading.Event) -> None:
        exc = next(outcomes, None)
        if exc is not None:
            raise exc

    sched = SyncScheduler(IntervalTrigger(seconds=1), run, run_now=True)
    sched.start()
    try:
        wait_for(lambda: len(sched.history) >= 4, "four runs")
    finally:
        sched.shutdown()
    assert [r.outcome for r in sched.history[:4]] == ["failed", "failed", "locked", "success"]
    assert sched.history[1].exit_code == ExitCode.API
    assert sched.history[2].exit_code == ExitCode.LOCKED


def test_shutdown_stops_the_run_in_progress_and_waits_for_it():
    started = threading.Event()

    def run(stop: threading.Event) -> None:
        started.set()
        assert stop.wait(30)  # a sync checks this between pages
        raise InterruptedRun("stopped on request")

    sched = SyncScheduler(IntervalTrigger(hours=1), run, run_now=True)
    sched.start()
    assert started.wait(30)
    sched.shutdown()  # returns only when the run has ended
    assert [r.outcome for r in sched.history] == ["interrupted"]
    assert not sched.scheduler.running


# --------------------------------------------------------------------------- real process


def _schedule_process(
    url: str, org: SimulatedOrg, db_url: str, *args: str
) -> subprocess.Popen[str]:
    return archiver_process(url, TOKEN, org, db_url, "schedule", *args)


def _runs(db_url: str) -> list[tuple[str, dt.datetime, dt.datetime | None]]:
    engine = db.make_engine(db_url)
    try:
        with engine.connect() as conn:
            if not db.inspect_has_tables(engine):
                return []
            from archiver.storage.store import RUNS

            rows = conn.execute(RUNS.select().order_by(RUNS.c.started_at)).all()
            return [(r.outcome, r.started_at, r.finished_at) for r in rows]
    finally:
        engine.dispose()


@pytest.mark.slow
def test_schedule_fires_skips_overlaps_and_stops_on_sigterm(db_url):
    org = SimulatedOrg(seed=13, events=300)
    skipped = threading.Event()
    with SimulatorServer(org, token=TOKEN) as srv:
        # the first run's event pages wait until a due time has been skipped
        gate_issue_events(srv, skipped)
        proc = _schedule_process(srv.url, org, db_url, "--every", "1s", "--now")
        watcher = StderrWatcher(proc)
        try:
            if watcher.wait_for("still going: skipped"):
                skipped.set()
            wait_for(
                lambda: sum(o == "success" for o, _, _ in _runs(db_url)) >= 2,
                "two successful scheduled runs",
                seconds=120,
            )
            assert proc.poll() is None
            proc.send_signal(signal.SIGTERM)
            err = watcher.finish(timeout=30)
        finally:
            skipped.set()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 0, err
    runs = _runs(db_url)
    assert all(o in ("success", "interrupted") for o, _, _ in runs), runs
    for (_, _, finished), (_, next_start, _) in itertools.pairwise(runs):
        assert finished is not None, runs
        assert finished <= next_start, "two runs overlapped"
    assert "still going: skipped" in err
    assert "next run at" in err
    assert "run 1 success" in err
    assert TOKEN not in err
    ((archived,),) = query_rows(db_url, "SELECT count(*) FROM events")
    ((locks,),) = query_rows(db_url, "SELECT count(*) FROM run_lock")
    assert archived == len(org.truth())
    assert locks == 0


@pytest.mark.slow
def test_sigterm_during_a_run_exits_0_with_the_checkpoint_committed(tmp_path):
    org = SimulatedOrg(seed=17, events=800)
    url = f"sqlite:///{tmp_path}/a.db"
    signalled = threading.Event()
    with SimulatorServer(org, token=TOKEN) as srv:
        gate_issue_events(srv, signalled)  # the run cannot end before SIGTERM has landed
        proc = _schedule_process(srv.url, org, url, "--cron", "0 3 * * *", "--now", "-v")
        watcher = StderrWatcher(proc)
        try:
            wait_for(lambda: any(o == "running" for o, _, _ in _runs(url)), "a run in progress")
            proc.send_signal(signal.SIGTERM)
            assert watcher.wait_for("signal SIGTERM"), watcher.text
            signalled.set()
            err = watcher.finish(timeout=30)
        finally:
            signalled.set()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 0, err
    assert "run 1 interrupted" in err
    assert "next run at none (stopping)" in err
    runs = _runs(url)
    assert len(runs) == 1, runs
    assert runs[0][0] == "interrupted", runs
    assert runs[0][2] is not None, runs
    engine = db.make_engine(url)
    with engine.connect() as conn:
        saved = conn.execute(text("SELECT count(*) FROM events")).scalar_one()
        locks = conn.execute(text("SELECT count(*) FROM run_lock")).scalar_one()
    engine.dispose()
    assert locks == 0
    assert saved < len(org.truth())  # stopped part-way, pages committed so far are kept
    # the next run resumes from the committed checkpoints and completes the archive
    with SimulatorServer(org, token=TOKEN) as srv:
        outcome = execute_sync(Settings(url=srv.url, token=TOKEN, org=org.slug, db=url))
    assert outcome.exit_code == ExitCode.OK
    engine = db.make_engine(url)
    with engine.connect() as conn:
        archived = conn.execute(text("SELECT count(*) FROM events")).scalar_one()
    engine.dispose()
    assert archived == len(org.truth())


def test_a_runs_message_counts_failed_projects_and_issues_apart():
    from archiver.operations.scheduler import _record_from
    from archiver.sync.report import SyncReport
    from archiver.sync.runner import SyncOutcome

    report = SyncReport()
    report.failures.append({"issue_id": None, "project": "web", "error": "HTTP 403"})
    report.failures.extend({"issue_id": n, "error": "HTTP 500"} for n in (1, 2))
    outcome = SyncOutcome(report, ExitCode.PARTIAL, requests=7, retries=0, seconds=1.0)
    record = _record_from(1, outcome)
    assert record.message.endswith(", 1 project and 2 issues failed")
