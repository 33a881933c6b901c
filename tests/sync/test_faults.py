"""Faults an operator meets: signals, full disks. Each run ends cleanly, the archive intact."""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import psycopg.errors
import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from archiver.config import Settings
from archiver.errors import DatabaseError, ExitCode
from archiver.simulator import SimulatedOrg, SimulatorServer
from archiver.simulator.server import Outcome
from archiver.storage import db
from archiver.storage.store import RUNS, Store
from archiver.sync.runner import execute_sync
from archiver.sync.workers import PageNormalizer
from tests.helpers import gate_issue_events

pytestmark = pytest.mark.slow  # end-to-end: real syncs against the simulator

TOKEN = "faults-test-token"
ROOT = Path(__file__).resolve().parents[2]


class StderrWatcher:
    """Collects a process's stderr as it comes, so a test can wait for a line."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()

    def wait_for(self, needle: str, seconds: float = 60.0) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: needle in self.text, timeout=seconds)

    @property
    def text(self) -> str:
        return "".join(self.lines)

    def finish(self, timeout: float) -> str:
        self.proc.wait(timeout=timeout)
        self._thread.join(timeout=10)
        return self.text


def sync_process(
    srv: SimulatorServer, org: SimulatedOrg, db_url: str, tmpdir: Path | None = None
) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "SENTRY_URL": srv.url,
        "SENTRY_AUTH_TOKEN": TOKEN,
        "SENTRY_ORG": org.slug,
        "SENTRY_ARCHIVER_DB": db_url,
        "PYTHONPATH": str(ROOT),
    }
    env.pop("SENTRY_ARCHIVER_CONFIG", None)
    if tmpdir is not None:
        env["TMPDIR"] = str(tmpdir)
    return subprocess.Popen(
        [sys.executable, "-m", "archiver", "sync", "--concurrency", "2", "-v"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_outcomes(db_url: str) -> list[str]:
    engine = db.make_engine(db_url)
    try:
        with engine.connect() as conn:
            if not db.inspect_has_tables(engine):
                return []
            return [r.outcome for r in conn.execute(RUNS.select().order_by(RUNS.c.id))]
    finally:
        engine.dispose()


def lock_rows(db_url: str) -> int:
    engine = db.make_engine(db_url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM run_lock")).scalar_one())
    finally:
        engine.dispose()


def note_event_requests(srv: SimulatorServer) -> threading.Event:
    """An event set once the first event-list request has reached ``srv`` (the walk began)."""
    reached = threading.Event()
    dispatch = srv.dispatch

    def noted(method: str, target: str, headers: dict[str, str], base_url: str) -> Outcome:
        if "/issues/" in target and "/events/" in target:
            reached.set()
        return dispatch(method, target, headers, base_url)

    srv.dispatch = noted  # type: ignore[method-assign]
    return reached


# ------------------------------------------------------------------------------ signals


def test_ctrl_c_twice_exits_130_with_the_run_recorded_interrupted(db_url):
    org = SimulatedOrg(seed=3, events=300)
    gate = threading.Event()
    with SimulatorServer(org, token=TOKEN) as srv:
        gate_issue_events(srv, gate)  # the run cannot end before both signals have landed
        walking = note_event_requests(srv)
        proc = sync_process(srv, org, db_url)
        watcher = StderrWatcher(proc)
        try:
            assert walking.wait(60), watcher.text
            proc.send_signal(signal.SIGINT)
            assert watcher.wait_for("signal SIGINT"), watcher.text
            proc.send_signal(signal.SIGINT)
            again = watcher.wait_for("SIGINT again", seconds=10)
            gate.set()  # the requests in flight come back; the run ends
            err = watcher.finish(timeout=60)
        finally:
            gate.set()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert "Aborted!" not in err
    assert proc.returncode == ExitCode.INTERRUPTED, err
    assert again, err
    assert run_outcomes(db_url) == ["interrupted"]
    assert lock_rows(db_url) == 0


# ------------------------------------------------------------------------------ full disks


def archived(db_url: str) -> set[tuple[int, str]]:
    engine = db.make_engine(db_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT project_id, event_id FROM events")).all()
    finally:
        engine.dispose()
    return {(int(p), str(e)) for p, e in rows}


def integrity(db_url: str) -> str:
    if not db_url.startswith("sqlite:///"):
        return "ok"  # PostgreSQL keeps its own consistency; the rerun checks the content
    con = sqlite3.connect(db_url.removeprefix("sqlite:///"))
    try:
        return str(con.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        con.close()


@contextlib.contextmanager
def small_tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``path`` (root and mount rights needed, else skip)."""
    path.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root; the injected faults below still run")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()}); injected faults run")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def grow(path: Path, size: str) -> None:
    subprocess.run(["mount", "-o", f"remount,size={size}", str(path)], check=True)


def test_a_full_archive_disk_names_the_archive_exits_7_and_the_rerun_completes(tmp_path):
    org = SimulatedOrg(seed=3, events=2000)
    with small_tmpfs(tmp_path / "disk", "2m") as disk, SimulatorServer(org, token=TOKEN) as srv:
        url = f"sqlite:///{disk}/a.db"
        proc = sync_process(srv, org, url)
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == ExitCode.DATABASE, err
        assert f"the disk is full: the archive's disk ({disk}/a.db, 0 bytes free)" in err
        assert "Traceback" not in err
        assert integrity(url) == "ok"
        assert run_outcomes(url) == ["failed"]
        grow(disk, "64m")
        proc = sync_process(srv, org, url)
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == ExitCode.OK, err
        assert archived(url) == org.truth()
        assert integrity(url) == "ok"


def test_a_full_spool_names_tmpdir_exits_7_and_the_rerun_completes(db_url, tmp_path):
    org = SimulatedOrg(seed=3, events=2000)
    with small_tmpfs(tmp_path / "tmp", "256k") as tmp, SimulatorServer(org, token=TOKEN) as srv:
        proc = sync_process(srv, org, db_url, tmpdir=tmp)
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == ExitCode.DATABASE, err
        assert f"the spool's disk is full: TMPDIR {tmp} (" in err
        assert "Traceback" not in err
        assert integrity(db_url) == "ok"
        assert run_outcomes(db_url) == ["failed"]
        assert list(tmp.iterdir()) == []  # the run removed its spool
        proc = sync_process(srv, org, db_url, tmpdir=tmp_path)
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == ExitCode.OK, err
    assert archived(db_url) == org.truth()
    assert integrity(db_url) == "ok"


def fails_on_call(number: int, original: Callable[..., Any], exc: BaseException) -> Any:
    """``original``, except that its ``number``-th call raises ``exc``."""
    calls = itertools.count(1)

    def patched(*args: Any, **kwargs: Any) -> Any:
        if next(calls) == number:
            raise exc
        return original(*args, **kwargs)

    return patched


def disk_full_from_the_driver(db_url: str) -> OperationalError:
    """What SQLAlchemy raises when the database's disk is full, for this backend."""
    if db_url.startswith("sqlite"):
        orig: Exception = sqlite3.OperationalError("database or disk is full")
    else:
        orig = psycopg.errors.DiskFull('could not extend file "base/16384/16397"')
    return OperationalError("INSERT INTO events ...", {}, orig)


def test_a_full_database_disk_injected_names_it_and_the_rerun_completes(
    db_url, tmp_path, monkeypatch
):
    org = SimulatedOrg(seed=5, events=600)
    settings = Settings(url="", token=TOKEN, org=org.slug, db=db_url, workers=0, concurrency=2)
    with SimulatorServer(org, token=TOKEN) as srv:
        settings = replace(settings, url=srv.url)
        with monkeypatch.context() as m:
            full = disk_full_from_the_driver(db_url)
            m.setattr(Store, "write_events", fails_on_call(3, Store.write_events, full))
            with pytest.raises(DatabaseError) as caught:
                execute_sync(settings)
        if db_url.startswith("sqlite"):
            path = Path(db_url.removeprefix("sqlite:///")).resolve()
            assert f"the disk is full: the archive's disk ({path}, " in str(caught.value)
            assert "SQLite's temporary directory (TMPDIR " in str(caught.value)
        else:
            assert "the database server's disk is full (PostgreSQL " in str(caught.value)
        assert caught.value.exit_code == ExitCode.DATABASE
        assert integrity(db_url) == "ok"
        assert run_outcomes(db_url) == ["failed"]
        assert 0 < len(archived(db_url)) < len(org.truth())  # committed pages are kept
        assert execute_sync(settings).exit_code == ExitCode.OK
    assert archived(db_url) == org.truth()


def test_a_full_spool_injected_names_tmpdir_and_the_rerun_completes(db_url, tmp_path, monkeypatch):
    org = SimulatedOrg(seed=5, events=600)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the spool goes
    settings = Settings(url="", token=TOKEN, org=org.slug, db=db_url, workers=0, concurrency=2)
    with SimulatorServer(org, token=TOKEN) as srv:
        settings = replace(settings, url=srv.url)
        with monkeypatch.context() as m:
            full = OSError(errno.ENOSPC, "No space left on device")
            m.setattr(PageNormalizer, "spooled", fails_on_call(3, PageNormalizer.spooled, full))
            with pytest.raises(DatabaseError) as caught:
                execute_sync(settings)
        assert f"the spool's disk is full: TMPDIR {tmp_path} (" in str(caught.value)
        assert caught.value.exit_code == ExitCode.DATABASE
        assert integrity(db_url) == "ok"
        assert run_outcomes(db_url) == ["failed"]
        assert list(tmp_path.glob("sentry-archiver-spool-*")) == []
        assert execute_sync(settings).exit_code == ExitCode.OK
    assert archived(db_url) == org.truth()
