"""The run lock: one writer at a time on SQLite and PostgreSQL, stale locks taken over."""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, delete, insert, text

from archiver.cli import cli
from archiver.errors import ExitCode, LockHeldError
from archiver.simulator import SimulatedOrg, SimulatorServer
from archiver.storage import db, lock
from tests.helpers import ROOT, archiver_process, gate_issue_events, source_args

TOKEN = "lock-test-token"

HOLDER_SCRIPT = """
import sys
from archiver.storage import db, lock
engine = db.make_engine(sys.argv[1])
with lock.acquire(engine, "holder-script"):
    print("held", flush=True)
    sys.stdin.readline()
print("released", flush=True)
"""


def lock_row(engine: Engine) -> lock.Holder | None:
    with engine.connect() as conn:
        return lock.read_holder(conn)


def put_row(engine: Engine, *, host: str, pid: int, heartbeat_age: dt.timedelta) -> None:
    now = dt.datetime.now(dt.timezone.utc)
    with engine.begin() as conn:
        conn.execute(delete(lock.RUN_LOCK))
        conn.execute(
            insert(lock.RUN_LOCK).values(
                id=lock.LOCK_ROW_ID,
                host=host,
                pid=pid,
                command="sync",
                acquired_at=now - heartbeat_age - dt.timedelta(hours=1),
                heartbeat_at=now - heartbeat_age,
            )
        )


def take(engine: Engine, command: str = "sync") -> None:
    with lock.acquire(engine, command):
        pass


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.fixture
def holder_process(db_url: str) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the lock until its stdin gets a line (or it is killed)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER_SCRIPT, db_url],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip() == "held", proc.stderr.read() if proc.stderr else ""
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)


def test_acquire_writes_the_holder_and_release_removes_it(engine):
    with lock.acquire(engine, "sync") as held:
        row = lock_row(engine)
        assert row is not None
        assert (row.host, row.pid, row.command) == (socket.gethostname(), os.getpid(), "sync")
        assert lock.current_holder(engine) == row
        assert held.beat() is True
    assert lock_row(engine) is None
    assert lock.current_holder(engine) is None
    with lock.acquire(engine, "sync"):  # and it can be taken again
        pass


def test_second_acquire_is_refused_naming_the_holder(engine):
    with lock.acquire(engine, "sync"), pytest.raises(LockHeldError) as info:
        take(engine, "purge")
    message = str(info.value)
    assert info.value.exit_code == ExitCode.LOCKED
    assert f"host {socket.gethostname()}" in message
    assert f"pid {os.getpid()}" in message
    assert "since" in message


def test_lock_held_by_another_process_refuses_then_frees(db_url, engine, holder_process):
    with pytest.raises(LockHeldError, match=f"pid {holder_process.pid}"):
        take(engine)
    holder = lock.current_holder(engine)
    assert holder is not None
    assert holder.pid == holder_process.pid
    assert holder_process.stdin is not None
    assert holder_process.stdout is not None
    holder_process.stdin.write("\n")
    holder_process.stdin.flush()
    assert holder_process.stdout.readline().strip() == "released"
    assert holder_process.wait(timeout=30) == 0
    with lock.acquire(engine, "sync"):
        assert lock_row(engine).pid == os.getpid()  # type: ignore[union-attr]


def _acquire_eventually(engine: Engine, seconds: float = 20.0) -> lock.HeldLock:
    """PostgreSQL frees a killed client's advisory lock when its backend notices the EOF."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            cm = lock.acquire(engine, "sync")
            held = cm.__enter__()
            held._cm = cm  # type: ignore[attr-defined]
            return held
        except LockHeldError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_lock_of_a_killed_process_is_taken_over(db_url, engine, holder_process, caplog):
    old_pid = holder_process.pid
    holder_process.kill()  # SIGKILL: no cleanup at all
    holder_process.wait(timeout=30)
    assert lock_row(engine).pid == old_pid  # type: ignore[union-attr]
    with caplog.at_level(logging.WARNING, logger="archiver.storage.lock"):
        held = _acquire_eventually(engine)
    try:
        assert lock_row(engine).pid == os.getpid()  # type: ignore[union-attr]
        assert f"pid {old_pid}" in caplog.text
        assert "taking over" in caplog.text
    finally:
        held._cm.__exit__(None, None, None)  # type: ignore[attr-defined]
    assert lock_row(engine) is None


def test_row_of_a_dead_pid_on_this_host_is_stale(engine, caplog):
    put_row(engine, host=socket.gethostname(), pid=dead_pid(), heartbeat_age=dt.timedelta(0))
    with (
        caplog.at_level(logging.WARNING, logger="archiver.storage.lock"),
        lock.acquire(engine, "sync"),
    ):
        assert lock_row(engine).pid == os.getpid()  # type: ignore[union-attr]
    assert "taking over" in caplog.text


def test_row_naming_this_pid_but_not_held_here_is_stale(engine):
    """A container restarted with the same pid (often 1) must not lock itself out."""
    put_row(engine, host=socket.gethostname(), pid=os.getpid(), heartbeat_age=dt.timedelta(0))
    with lock.acquire(engine, "sync"):
        assert lock.current_holder(engine) is not None


def test_other_host_with_old_heartbeat_is_stale(engine):
    put_row(engine, host="elsewhere.example", pid=4242, heartbeat_age=dt.timedelta(minutes=30))
    with lock.acquire(engine, "sync"):
        assert lock_row(engine).host == socket.gethostname()  # type: ignore[union-attr]


def test_other_host_with_fresh_heartbeat(engine):
    """SQLite trusts a fresh heartbeat; PostgreSQL trusts the advisory lock (free here)."""
    put_row(engine, host="elsewhere.example", pid=4242, heartbeat_age=dt.timedelta(seconds=5))
    if engine.dialect.name == "sqlite":
        with pytest.raises(LockHeldError, match=r"host elsewhere\.example, pid 4242"):
            take(engine)
        assert lock.current_holder(engine) is not None
    else:
        assert lock.current_holder(engine) is None
        with lock.acquire(engine, "sync"):
            assert lock_row(engine).host == socket.gethostname()  # type: ignore[union-attr]


def test_heartbeat_notices_a_takeover(engine):
    lost: list[bool] = []
    with lock.acquire(engine, "sync", heartbeat_every=0, on_lost=lambda: lost.append(True)) as held:
        put_row(engine, host="elsewhere.example", pid=4242, heartbeat_age=dt.timedelta(0))
        assert held.beat() is False
        assert lost == [True]
        assert held.lost
    assert lock_row(engine).host == "elsewhere.example"  # type: ignore[union-attr]  # not ours


def test_heartbeat_moves_forward(engine):
    with lock.acquire(engine, "sync", heartbeat_every=0) as held:
        before = lock_row(engine).heartbeat_at  # type: ignore[union-attr]
        with engine.begin() as conn:  # age it, then beat
            conn.execute(
                lock.RUN_LOCK.update().values(heartbeat_at=before - dt.timedelta(minutes=5))
            )
        assert held.beat()
        assert lock_row(engine).heartbeat_at >= before  # type: ignore[union-attr]


def test_missing_schema_is_a_database_error(empty_db_url):
    from archiver.errors import DatabaseError

    engine = db.make_engine(empty_db_url)
    try:
        with pytest.raises(DatabaseError, match="db upgrade"), lock.acquire(engine, "sync"):
            pass
    finally:
        engine.dispose()


def test_concurrent_sync_is_refused_with_exit_5_and_writes_nothing(db_url, holder_process):
    org = SimulatedOrg(seed=3, events=200)
    with SimulatorServer(org, token=TOKEN) as srv:
        result = CliRunner().invoke(
            cli, ["sync", *source_args(srv.url, TOKEN, org, db_url), "--quiet"]
        )
    assert result.exit_code == ExitCode.LOCKED, result.output
    assert "another sync holds the archive" in result.output
    assert f"pid {holder_process.pid}" in result.output
    assert TOKEN not in result.output
    engine = db.make_engine(db_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM runs")).scalar_one() == 0
            assert conn.execute(text("SELECT count(*) FROM events")).scalar_one() == 0
    finally:
        engine.dispose()


def _sync_process(url: str, org: SimulatedOrg, db_url: str) -> subprocess.Popen[str]:
    return archiver_process(url, TOKEN, org, db_url, "sync", "--quiet", "--concurrency", "2")


@pytest.mark.slow
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_two_sync_processes_one_is_refused(db_url, engine):
    """Real processes: while a sync runs, a second one exits 5 at once; the first completes.

    SQLite only: on PostgreSQL syncs share the archive (tests/sync/test_sync_leases.py)."""
    org = SimulatedOrg(seed=9, events=400)
    with SimulatorServer(org, token=TOKEN) as srv:
        gate = threading.Event()
        gate_issue_events(srv, gate)  # the first sync cannot finish before we say so
        first = _sync_process(srv.url, org, db_url)
        try:
            deadline = time.monotonic() + 60
            while lock.current_holder(engine) is None:
                assert first.poll() is None, first.communicate()
                assert time.monotonic() < deadline, "the first sync never took the lock"
                time.sleep(0.05)
            second = _sync_process(srv.url, org, db_url)
            _, err = second.communicate(timeout=60)
            assert second.returncode == ExitCode.LOCKED, err
            assert f"pid {first.pid}" in err
            assert "another sync holds the archive" in err
        finally:
            gate.set()
            _, err = first.communicate(timeout=120)
        assert first.returncode == 0, err
    assert lock.current_holder(engine) is None
    with engine.connect() as conn:
        runs = conn.execute(text("SELECT outcome, pid FROM runs")).all()
        archived = conn.execute(text("SELECT count(*) FROM events")).scalar_one()
    assert runs == [("success", first.pid)]  # the refused sync recorded nothing
    assert archived == len(org.truth())
