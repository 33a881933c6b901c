"""Faults an operator meets: signals, full disks. Each run ends cleanly, the archive intact."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from sqlalchemy import text

from archiver.errors import ExitCode
from archiver.simulator import SimulatedOrg, SimulatorServer
from archiver.simulator.server import Outcome
from archiver.storage import db
from archiver.storage.store import RUNS
from tests.helpers import gate_issue_events

TOKEN = "faults-test-token"
ROOT = Path(__file__).resolve().parent.parent


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
