"""End-to-end keyset walks against the simulator: shuffled ties, bursts, request counts."""

from __future__ import annotations

import math
import random
import signal
import time

import pytest

from archiver.errors import ExitCode
from archiver.simulator import SimulatedOrg, SimulatorConfig, SimulatorServer
from archiver.sync.runner import execute_sync
from tests.sync.test_sync import TOKEN, _sync_subprocess, archived, settings


def _bursty_org() -> SimulatedOrg:
    org = SimulatedOrg(seed=11, events=600)
    big = max(org.live_issues(), key=lambda i: i.times_seen)
    now = int(org.now())
    org.add_events(big.id, 250, at=now - 100)  # 250 events in one second
    org.add_events(big.id, 120, at=now - 500)
    org.add_events(big.id, 90, at=now - 700, spread_seconds=2)
    return org


@pytest.mark.slow
def test_backfill_with_shuffled_ties_and_bursts_equals_truth(db_url):
    org = _bursty_org()
    with SimulatorServer(org, token=TOKEN, config=SimulatorConfig(shuffle_ties=True)) as srv:
        result = execute_sync(settings(srv, org, db_url))
        assert result.exit_code == ExitCode.OK
        offsets = [e.offset or 0 for e in srv.log.entries() if e.family == "issue_events"]
    assert archived(db_url) == org.truth()
    assert max(offsets) <= 250


@pytest.mark.slow
def test_requests_within_two_percent_of_one_per_hundred_events(tmp_path):
    org = SimulatedOrg(seed=7, events=1500)
    with SimulatorServer(org, token=TOKEN) as srv:
        result = execute_sync(settings(srv, org, f"sqlite:///{tmp_path}/a.db"))
        assert result.exit_code == ExitCode.OK
        pages = srv.log.by_family["issue_events"]
    ideal = sum(math.ceil(i.times_seen / 100) for i in org.live_issues())
    assert pages <= math.ceil(ideal * 1.02) + 1, (pages, ideal)
    assert archived(f"sqlite:///{tmp_path}/a.db") == org.truth()


@pytest.mark.slow
def test_killed_during_a_burst_walk_and_resumed_equals_truth(tmp_path):
    org = SimulatedOrg(seed=21, events=300)
    big = max(org.live_issues(), key=lambda i: i.times_seen)
    now = int(org.now())
    for k in range(4):
        org.add_events(big.id, 450, at=now - 100 - 10 * k)
    url = f"sqlite:///{tmp_path}/a.db"
    rng = random.Random(99)
    killed = 0
    with SimulatorServer(org, token=TOKEN, config=SimulatorConfig(latency_ms=20)) as srv:
        for _ in range(4):
            proc = _sync_subprocess(srv, org, url)
            time.sleep(rng.uniform(1.0, 3.0))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                killed += 1
            proc.wait(timeout=60)
        assert killed, "no run was killed: the test proved nothing"
        final = _sync_subprocess(srv, org, url)
        _, err = final.communicate(timeout=300)
        assert final.returncode == 0, err.decode()
    assert archived(url) == org.truth()


@pytest.mark.slow
def test_an_issue_of_50000_events_never_asks_an_offset_over_200(tmp_path):
    org = SimulatedOrg(seed=3, events=60)
    big = max(org.live_issues(), key=lambda i: i.times_seen)
    org.add_events(big.id, 50_000, at=int(org.now()) - 10, spread_seconds=20_000)
    url = f"sqlite:///{tmp_path}/a.db"
    config = SimulatorConfig(max_offset=200)
    with SimulatorServer(org, token=TOKEN, config=config) as srv:
        result = execute_sync(settings(srv, org, url, workers=1))
        assert result.exit_code == ExitCode.OK
        offsets = [e.offset or 0 for e in srv.log.entries() if e.family == "issue_events"]
    assert max(offsets) < 200
    assert len(archived(url)) == org.truth_count()


@pytest.mark.slow
def test_an_old_offset_checkpoint_restarts_its_window_and_ends_equal_to_truth(tmp_path):
    from sqlalchemy import text

    from archiver.storage import db

    org = SimulatedOrg(seed=7, events=800)
    url = f"sqlite:///{tmp_path}/a.db"
    with SimulatorServer(org, token=TOKEN) as srv:
        assert execute_sync(settings(srv, org, url)).exit_code == ExitCode.OK
        engine = db.make_engine(url)
        with engine.begin() as conn:  # as an older version left a walk mid-way
            conn.execute(text("DELETE FROM events"))
            conn.execute(
                text(
                    "UPDATE sync_issues SET status='walking', walk_cursor='0:100:0', "
                    "synced_until=NULL"
                )
            )
            conn.execute(text("UPDATE sync_issues SET walk_start='1970-01-01 00:00:00.000000'"))
            conn.execute(
                text("UPDATE sync_issues SET walk_end=(SELECT max(walk_end) FROM sync_issues)")
            )
        engine.dispose()
        result = execute_sync(settings(srv, org, url))
        assert result.exit_code == ExitCode.OK
    assert archived(url) == org.truth()
