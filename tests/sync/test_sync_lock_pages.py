"""Each page's transaction checks that the run still owns the archive's lock (issue 15).

The heartbeat looks every 30 s; between two beats a run that lost its lock (its PostgreSQL
lock session terminated, or its SQLite ``run_lock`` row taken over) must not commit one more
page. Here the heartbeat is made too slow to notice, the lock is taken away right after a
committed page, and no row may be committed after that moment: the run stops with exit 5 and
is recorded ``failed`` with the lock-lost message.

The writer writes one page at a time here: with PostgreSQL's two lanes
(:mod:`archiver.sync.lanes`) there is no moment between two pages, and the other lane's page,
checked just before the loss, may still commit (as any page checked just before a loss may).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Connection, text

from archiver.config import Settings
from archiver.errors import ExitCode, LockLostError
from archiver.simulator import SimulatedOrg, SimulatorServer
from archiver.storage import db
from archiver.storage import lock as run_lock
from archiver.sync import writer
from archiver.sync.report import Progress, SyncReport
from archiver.sync.runner import execute_sync

pytestmark = pytest.mark.slow  # end-to-end: real syncs against the simulator

TOKEN = "sim-test-token"
LOSE_AFTER_PAGES = 3


@pytest.fixture
def server() -> Iterator[SimulatorServer]:
    with SimulatorServer(SimulatedOrg(seed=7, events=1500), token=TOKEN) as srv:
        yield srv


def _take_the_lock_away(conn: Connection) -> None:
    """What another process (or a DBA) can do to this run's lock between two of its pages."""
    if conn.dialect.name == "postgresql":
        ended = conn.execute(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_locks WHERE locktype = "
                "'advisory' AND granted AND database = "
                "(SELECT oid FROM pg_database WHERE datname = current_database())"
            )
        ).scalar_one()
        assert ended == 1
    else:
        changed = conn.execute(text("UPDATE run_lock SET pid = pid + 1")).rowcount
        assert changed == 1


def _count(conn: Connection, table: str) -> int:
    return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


def test_no_page_commits_after_the_lock_is_lost(
    db_url: str, server: SimulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(run_lock, "HEARTBEAT_EVERY", 3600.0)  # only the pages can notice
    monkeypatch.setattr(writer, "POSTGRESQL_LANES", 1)  # a moment between two pages
    engine = db.make_engine(db_url)
    at_loss: dict[str, int] = {}

    def on_progress(report: SyncReport, progress: Progress) -> None:
        # called by the writer right after a commit: the loss falls between two pages
        if report.pages == LOSE_AFTER_PAGES and not at_loss:
            with engine.begin() as conn:
                _take_the_lock_away(conn)
                at_loss["events"] = _count(conn, "events")
                at_loss["walks"] = _count(conn, "sync_issues")

    settings = Settings(url=server.url, token=TOKEN, org=server.org.slug, db=db_url, concurrency=2)
    try:
        with pytest.raises(LockLostError) as caught:
            execute_sync(settings, on_progress=on_progress)
        assert caught.value.exit_code == ExitCode.LOCKED
        assert at_loss["events"] > 0
        with engine.connect() as conn:
            assert _count(conn, "events") == at_loss["events"]
            assert _count(conn, "sync_issues") == at_loss["walks"]
            outcome, message = conn.execute(
                text("SELECT outcome, error_message FROM runs ORDER BY id DESC LIMIT 1")
            ).one()
    finally:
        engine.dispose()
    assert outcome == "failed"
    assert "lost the run lock" in str(message)
