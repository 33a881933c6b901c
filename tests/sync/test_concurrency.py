"""A sync keeps as many requests in flight as the server allows, and no more.

The simulator enforces ``ConcurrentLimit`` with 429s and counts them (``refused``), and holds
each admitted event-list request until the wanted number are in flight at once (or 30 s went
by, when the assertion on ``reached`` fails): no timing in the assertions.
"""

from __future__ import annotations

import threading
from pathlib import Path

from archiver.simulator import SimulatedOrg, SimulatorConfig, SimulatorServer
from archiver.simulator.config import with_concurrent_limit
from archiver.sync.runner import execute_sync
from tests.helpers import archived, sync_settings

TOKEN = "sim-concurrency-token"
FAMILY = "issue_events"


def hold_until(srv: SimulatorServer, in_flight: int) -> threading.Event:
    """Hold event-list requests until ``in_flight`` of them are in flight at once.

    The first goes through: the client sends it alone, to learn the server's limits.
    """
    reached = threading.Event()
    first = threading.Event()

    def hold(family: str, active: int) -> None:
        if family != FAMILY:
            return
        if not first.is_set():
            first.set()
            return
        if active >= in_flight:
            reached.set()
        reached.wait(30)

    srv.limiter.hold = hold
    return reached


def sync(srv: SimulatorServer, org: SimulatedOrg, tmp_path: Path, concurrency: int) -> None:
    db_url = f"sqlite:///{tmp_path / 'a.db'}"
    settings = sync_settings(srv.url, TOKEN, org, db_url, concurrency=concurrency, workers=0)
    assert execute_sync(settings).exit_code == 0
    assert archived(db_url) == org.truth()


def test_in_flight_follows_the_servers_concurrent_limit(tmp_path: Path) -> None:
    org = SimulatedOrg(seed=3, events=400)
    config = SimulatorConfig(rate_limits=with_concurrent_limit({}, 3))
    with SimulatorServer(org, token=TOKEN, config=config) as srv:
        reached = hold_until(srv, 3)
        sync(srv, org, tmp_path, concurrency=8)
        assert reached.is_set()  # the allowance is used: 3 at once
        assert srv.limiter.peak[FAMILY] == 3
        assert srv.limiter.refused["concurrent"] == 0


def test_a_server_without_headers_gets_the_configured_concurrency(tmp_path: Path) -> None:
    org = SimulatedOrg(seed=3, events=400)
    with SimulatorServer(org, token=TOKEN) as srv:
        reached = hold_until(srv, 5)
        sync(srv, org, tmp_path, concurrency=5)
        assert reached.is_set()
        assert srv.limiter.peak[FAMILY] == 5
