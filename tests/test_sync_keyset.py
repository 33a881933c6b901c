"""End-to-end keyset walks against the simulator: shuffled ties, bursts, request counts."""

from __future__ import annotations

import math

from archiver.errors import ExitCode
from archiver.runner import execute_sync
from archiver.simulator import SimulatedOrg, SimulatorConfig, SimulatorServer
from tests.test_sync import TOKEN, archived, settings


def _bursty_org() -> SimulatedOrg:
    org = SimulatedOrg(seed=11, events=600)
    big = max(org.live_issues(), key=lambda i: i.times_seen)
    now = int(org.now())
    org.add_events(big.id, 250, at=now - 100)  # 250 events in one second
    org.add_events(big.id, 120, at=now - 500)
    org.add_events(big.id, 90, at=now - 700, spread_seconds=2)
    return org


def test_backfill_with_shuffled_ties_and_bursts_equals_truth(db_url):
    org = _bursty_org()
    with SimulatorServer(org, token=TOKEN, config=SimulatorConfig(shuffle_ties=True)) as srv:
        result = execute_sync(settings(srv, org, db_url))
        assert result.exit_code == ExitCode.OK
        offsets = [e.offset or 0 for e in srv.log.entries() if e.family == "issue_events"]
    assert archived(db_url) == org.truth()
    assert max(offsets) <= 250


def test_requests_within_two_percent_of_one_per_hundred_events(tmp_path):
    org = SimulatedOrg(seed=7, events=1500)
    with SimulatorServer(org, token=TOKEN) as srv:
        result = execute_sync(settings(srv, org, f"sqlite:///{tmp_path}/a.db"))
        assert result.exit_code == ExitCode.OK
        pages = srv.log.by_family["issue_events"]
    ideal = sum(math.ceil(i.times_seen / 100) for i in org.live_issues())
    assert pages <= math.ceil(ideal * 1.02) + 1, (pages, ideal)
    assert archived(f"sqlite:///{tmp_path}/a.db") == org.truth()
