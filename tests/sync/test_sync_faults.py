"""A sync under faults that must end it promptly and cleanly, never hang it.

Each sync here runs in a thread with a deadline, so a regression fails the test instead of
hanging the suite.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from archiver.config import Settings
from archiver.errors import ApiError, DatabaseError, ExitCode
from archiver.simulator import SimulatedOrg, SimulatorServer
from archiver.storage import db
from archiver.storage.store import Store
from archiver.sync import spool
from archiver.sync.runner import SyncOutcome, execute_sync

TOKEN = "sim-fault-token"
DEADLINE = 30.0


@pytest.fixture
def org() -> SimulatedOrg:
    return SimulatedOrg(seed=11, events=600)


@pytest.fixture
def server(org: SimulatedOrg) -> Iterator[SimulatorServer]:
    with SimulatorServer(org, token=TOKEN) as srv:
        yield srv


def settings(server: SimulatorServer, org: SimulatedOrg, db_url: str, **kw: Any) -> Settings:
    values: dict[str, Any] = {
        "url": server.url,
        "token": TOKEN,
        "org": org.slug,
        "db": db_url,
        "concurrency": 4,
        "workers": 0,
    }
    values.update(kw)
    return Settings(**values)


def sync_within(deadline: float, run: Callable[[], SyncOutcome]) -> SyncOutcome | BaseException:
    """Run a sync in a thread; its outcome or the error it raised. Fails past ``deadline``."""
    result: list[SyncOutcome | BaseException] = []

    def target() -> None:
        try:
            result.append(run())
        except BaseException as exc:
            result.append(exc)

    thread = threading.Thread(target=target, daemon=True, name="sync-under-test")
    thread.start()
    thread.join(deadline)
    if thread.is_alive():
        pytest.fail(f"the sync did not end within {deadline:.0f} s (hung)")
    return result[0]


def test_an_issue_list_cursor_cycle_fails_discovery_instead_of_looping(tmp_path, org, server):
    """A -> B -> A on the issue search: refused as an API error, not walked for ever."""
    dispatch = server.dispatch
    cycle = {"": "0:100:0", "0:100:0": "0:200:0", "0:200:0": "0:100:0"}

    def cycling(method: str, target: str, headers: dict[str, str], base_url: str) -> Any:
        if not re.search(r"/organizations/[^/]+/issues/(\?|$)", target):
            return dispatch(method, target, headers, base_url)
        found = re.search(r"&cursor=([^&]*)", target)
        if found:  # the simulator answers its first page; the Link header says where we are
            target = target.replace(found.group(0), "")
        outcome = dispatch(method, target, headers, base_url)
        nxt = cycle[found.group(1).replace("%3A", ":") if found else ""]
        link = f'<{base_url}{target}>; rel="next"; results="true"; cursor="{nxt}"'
        others = [(k, v) for k, v in outcome.response.headers if k.lower() != "link"]
        response = replace(outcome.response, headers=[*others, ("Link", link)])
        return replace(outcome, response=response)

    server.dispatch = cycling
    got = sync_within(
        DEADLINE, lambda: execute_sync(settings(server, org, f"sqlite:///{tmp_path}/a.db"))
    )
    assert isinstance(got, ApiError), got
    assert got.exit_code == ExitCode.API
    assert "repeated the cursor '0:100:0'" in str(got)


def archived(db_url: str) -> set[tuple[int, str]]:
    engine = db.make_engine(db_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT project_id, event_id FROM events")).all()
    finally:
        engine.dispose()
    return {(int(p), str(e)) for p, e in rows}


def last_run(db_url: str) -> tuple[str, str | None]:
    engine = db.make_engine(db_url)
    try:
        with engine.connect() as conn:
            outcome, message = conn.execute(
                text("SELECT outcome, error_message FROM runs ORDER BY id DESC")
            ).first()  # type: ignore[misc]
    finally:
        engine.dispose()
    return outcome, message


@pytest.mark.slow
def test_a_writer_error_ends_the_run_promptly_and_a_rerun_completes(
    db_url, org, server, monkeypatch
):
    """A database error in the writer ends the run (exit 7), recorded failed, lock released.

    Before, the walk threads waited for ever to hand their pages to a writer that was gone,
    and the main thread waited for them in the executor's shutdown.
    """
    real = Store.write_events
    calls = [0]

    def failing(self: Store, conn: Any, events: Any) -> Any:
        calls[0] += 1
        if calls[0] == 3:
            raise OperationalError("INSERT INTO events", {}, Exception("database or disk is full"))
        return real(self, conn, events)

    monkeypatch.setattr(Store, "write_events", failing)
    got = sync_within(DEADLINE, lambda: execute_sync(settings(server, org, db_url)))
    assert isinstance(got, DatabaseError), got
    assert got.exit_code == ExitCode.DATABASE
    assert "database or disk is full" in str(got)
    outcome, message = last_run(db_url)
    assert outcome == "failed"
    assert message is not None
    assert "database or disk is full" in message
    alive = [t.name for t in threading.enumerate() if t.name.startswith(("run-lock", "walk"))]
    assert alive == []
    kept = archived(db_url)
    assert kept  # the two pages committed before the error stay
    assert kept < org.truth()

    monkeypatch.setattr(Store, "write_events", real)
    again = sync_within(DEADLINE, lambda: execute_sync(settings(server, org, db_url)))
    assert isinstance(again, SyncOutcome), again  # the lock was released: no LockHeldError
    assert again.exit_code == ExitCode.OK
    assert archived(db_url) == org.truth()


def test_a_killed_runs_spool_is_removed_even_when_the_next_run_walks_nothing(
    tmp_path, org, server, monkeypatch
):
    """Only a run that built a spool cleaned up after killed ones: a run with nothing to walk
    left their directories behind (the flake of the kill-and-resume test)."""
    spools = tmp_path / "tmp"
    spools.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spools))
    url = f"sqlite:///{tmp_path}/a.db"
    assert execute_sync(settings(server, org, url)).exit_code == ExitCode.OK
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    stale = spools / f"{spool.PREFIX}{int(dead.stdout)}-killed"
    stale.mkdir()
    (stale / "0.rows").write_bytes(b"left by SIGKILL")

    again = execute_sync(settings(server, org, url))
    assert again.exit_code == ExitCode.OK
    assert again.report.issues_walked == 0  # nothing to walk: no spool of its own
    assert not stale.exists()
