"""A revoked token stops ``schedule`` (exit 4): retrying it every tick can never succeed."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from apscheduler.triggers.interval import IntervalTrigger

from archiver.errors import AuthError, ExitCode
from archiver.operations.scheduler import SyncScheduler
from archiver.simulator import SimulatedOrg, SimulatorServer

ROOT = Path(__file__).resolve().parents[2]


def test_an_auth_error_stops_the_scheduler_and_is_raised():
    calls = []

    def run(stop: threading.Event) -> None:
        calls.append(time.monotonic())
        raise AuthError("HTTP 401 from /api/0/: Invalid token", status=401)

    sched = SyncScheduler(IntervalTrigger(seconds=1), run, run_now=True)
    done: list[BaseException] = []

    def forever() -> None:
        try:
            sched.run_forever()
        except BaseException as exc:
            done.append(exc)

    thread = threading.Thread(target=forever, daemon=True)
    thread.start()
    thread.join(timeout=20)
    if thread.is_alive():
        sched.stop.set()
        thread.join(timeout=10)
        pytest.fail(f"the scheduler kept going after a 401: {len(calls)} runs")
    assert len(calls) == 1
    assert len(done) == 1, done
    assert isinstance(done[0], AuthError), done
    assert [r.outcome for r in sched.history] == ["failed"]
    assert sched.history[0].exit_code == ExitCode.AUTH


def test_schedule_exits_4_when_the_token_is_refused(tmp_path):
    org = SimulatedOrg(seed=3, events=50)
    with SimulatorServer(org, token="the-real-token") as srv:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SENTRY_")}
        env["PYTHONPATH"] = str(ROOT)
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "archiver",
                "schedule",
                "--every",
                "1s",
                "--now",
                "--url",
                srv.url,
                "--auth-token",
                "a-revoked-token",
                "--org",
                org.slug,
                "--db",
                f"sqlite:///{tmp_path / 'a.db'}",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert proc.returncode == ExitCode.AUTH, proc.stderr
    assert "401" in proc.stderr
    assert "stopping the scheduler" in proc.stderr
    assert proc.stderr.count("run 1 failed") == 1
    assert "run 2" not in proc.stderr
