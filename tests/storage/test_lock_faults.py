"""The run lock under faults: killed runs, two syncs on a new archive, a lost lock session."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, text

from archiver.errors import ExitCode, LockLostError
from archiver.simulator import SimulatedOrg, SimulatorServer
from archiver.storage import db, lock
from archiver.storage.base import utcnow
from archiver.sync import runner
from tests.helpers import (
    archiver_process,
    gate_issue_events,
    pg_database,
    sync_settings,
)

pytestmark = pytest.mark.slow  # end-to-end: real syncs against the simulator

TOKEN = "lock-fault-token"


def sync_process(url: str, org: SimulatedOrg, db_url: str) -> subprocess.Popen[str]:
    return archiver_process(url, TOKEN, org, db_url, "sync", "--quiet", "--concurrency", "2")


def runs(engine: Engine) -> list[tuple[str, int]]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT outcome, pid FROM runs ORDER BY id")).all()
    return [(str(outcome), int(pid)) for outcome, pid in rows]


def wait_for_holder(engine: Engine, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    # a sync on PostgreSQL shares the lock (no holder row): its named session shows it
    while lock.current_holder(engine) is None and not lock.shared_holders(engine):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the sync never took the lock"
        time.sleep(0.05)


def release_projects_together(srv: SimulatorServer, parties: int) -> None:
    """Answer the project list only once ``parties`` syncs asked for it: they then create the
    archive at the same instant (each migrates right after that first answer)."""
    barrier = threading.Barrier(parties, timeout=60)
    dispatch = srv.dispatch

    def together(method: str, target: str, headers: dict[str, str], base_url: str) -> Any:
        if target.split("?")[0].endswith("/projects/"):
            barrier.wait()
        return dispatch(method, target, headers, base_url)

    srv.dispatch = together  # type: ignore[method-assign]


def test_two_syncs_started_at_once_on_a_new_archive(empty_db_url):
    """The migration runs one process at a time: no "database is locked", no UniqueViolation."""
    org = SimulatedOrg(seed=4, events=150)
    with SimulatorServer(org, token=TOKEN) as srv:
        release_projects_together(srv, 2)
        procs = [sync_process(srv.url, org, empty_db_url) for _ in range(2)]
        results = [(p, *p.communicate(timeout=180)) for p in procs]
    for proc, _out, err in results:
        assert proc.returncode in (ExitCode.OK, ExitCode.LOCKED), err
        assert "Traceback" not in err, err
    codes = sorted(p.returncode for p, _, _ in results)
    assert codes[0] == ExitCode.OK, results
    engine = db.make_engine(empty_db_url)
    try:
        assert db.current_revision(engine) == db.head_revision()
        with engine.connect() as conn:
            archived = conn.execute(text("SELECT count(*) FROM events")).scalar_one()
        assert archived == len(org.truth())
        assert [outcome for outcome, _ in runs(engine)] == ["success"] * codes.count(ExitCode.OK)
    finally:
        engine.dispose()


def test_a_run_killed_with_sigkill_is_marked_interrupted_by_the_next(db_url, engine):
    org = SimulatedOrg(seed=6, events=200)
    with SimulatorServer(org, token=TOKEN) as srv:
        gate = threading.Event()
        gate_issue_events(srv, gate)
        killed = sync_process(srv.url, org, db_url)
        try:
            wait_for_holder(engine, killed)
            deadline = time.monotonic() + 30
            while not runs(engine):  # its runs row is written just after the lock is taken
                assert time.monotonic() < deadline
                time.sleep(0.05)
            killed.send_signal(signal.SIGKILL)
            killed.communicate(timeout=30)
        finally:
            gate.set()
        assert runs(engine) == [("running", killed.pid)]
        nxt = sync_process(srv.url, org, db_url)
        _, err = nxt.communicate(timeout=180)
    assert nxt.returncode == ExitCode.OK, err
    assert runs(engine) == [("interrupted", killed.pid), ("success", nxt.pid)]
    with engine.connect() as conn:
        finished, message = conn.execute(
            text("SELECT finished_at, error_message FROM runs WHERE pid = :pid"),
            {"pid": killed.pid},
        ).one()
    assert finished is not None
    assert "killed" in message


def test_a_running_archive_event_elsewhere_is_left_alone(engine):
    """Only runs that held the lock are known dead; an archive-event on another host runs on."""
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO runs (command, started_at, outcome, host, pid, projects, issues,"
                " events_new, events_updated, requests, retries) VALUES ('archive-event',"
                " :now, 'running', 'elsewhere', 1, 0, 0, 0, 0, 0, 0)"
            ),
            {"now": utcnow()},
        )
    with lock.acquire(engine, "sync"):
        pass
    assert runs(engine) == [("running", 1)]


def _advisory_lock_pid(engine: Engine) -> int | None:
    with engine.connect() as conn:
        return conn.execute(
            text(
                "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
                "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
                "AND ((classid::bigint << 32) | objid::bigint) = :key"
            ),
            {"key": lock.ADVISORY_KEY},
        ).scalar()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """An empty PostgreSQL database (the advisory lock's session is PostgreSQL's alone)."""
    with pg_database() as url:
        yield url


def test_postgresql_a_run_whose_lock_session_is_terminated_stops(pg_url, monkeypatch):
    """The heartbeat checks the advisory lock's own session; a run that lost it ends, exit 5."""
    monkeypatch.setattr(lock, "HEARTBEAT_EVERY", 0.2)
    org = SimulatedOrg(seed=8, events=300)
    engine = db.make_engine(pg_url)
    try:
        with SimulatorServer(org, token=TOKEN) as srv:
            gate = threading.Event()
            gate_issue_events(srv, gate)
            settings = sync_settings(srv.url, TOKEN, org, pg_url, concurrency=2, workers=0)
            stop = threading.Event()
            outcome: list[BaseException | runner.SyncOutcome] = []

            def first() -> None:
                try:
                    outcome.append(runner.execute_sync(settings, stop=stop))
                except BaseException as exc:
                    outcome.append(exc)

            thread = threading.Thread(target=first)
            thread.start()
            try:
                deadline = time.monotonic() + 60
                while (pid := _advisory_lock_pid(engine)) is None:
                    assert time.monotonic() < deadline, "the first sync never took the lock"
                    time.sleep(0.05)
                with engine.connect() as conn:
                    conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
                assert stop.wait(10), "the run did not notice that its lock session was gone"
            finally:
                gate.set()
                thread.join(120)
        assert not thread.is_alive()
        (result,) = outcome
        assert isinstance(result, LockLostError), result
        assert result.exit_code == ExitCode.LOCKED
        assert "lost the run lock" in str(result)
        assert lock.current_holder(engine) is None
        with engine.connect() as conn:  # recorded as failed, with why: not interrupted
            recorded, message = conn.execute(
                text("SELECT outcome, error_message FROM runs ORDER BY id DESC LIMIT 1")
            ).one()
        assert recorded == "failed"
        assert "lost the run lock" in str(message)
    finally:
        engine.dispose()
