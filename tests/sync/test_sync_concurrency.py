"""A sync keeps as many requests in flight as the server allows, and no more.

The simulator enforces ``ConcurrentLimit`` with 429s and counts them (``refused``), and holds
each admitted event-list request until the wanted number are in flight at once (or 30 s went
by, when the assertion on ``reached`` fails): no timing in the assertions.
"""

from __future__ import annotations

import hashlib
import threading
import time
from pathlib import Path

from archiver.sentry.client import SentryClient
from archiver.sentry.ratelimit import family_of
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


def test_another_client_holding_slots_lowers_the_number_in_flight(tmp_path: Path) -> None:
    """Another client of the token keeps 2 of the 4 slots: the sync meets concurrency 429s,
    halves its target each time and grows it back (AIMD), and still archives everything. A
    client that kept sending 4 would be refused about every other request."""
    org = SimulatedOrg(seed=3, events=400)
    config = SimulatorConfig(rate_limits=with_concurrent_limit({}, 4))
    with SimulatorServer(org, token=TOKEN, config=config) as srv:
        key = hashlib.sha256(TOKEN.encode()).hexdigest()[:16]  # the simulator's per-token key
        for _ in range(2):
            assert srv.limiter.acquire(FAMILY, key).allowed
        first = threading.Event()

        def hold(family: str, active: int) -> None:
            """Hold the sync's requests (after its first) until it was refused once."""
            if family != FAMILY:
                return
            if not first.is_set():
                first.set()
                return
            for _ in range(300):
                if srv.limiter.refused["concurrent"]:
                    return
                time.sleep(0.1)

        srv.limiter.hold = hold
        clients: list[SentryClient] = []
        db_url = f"sqlite:///{tmp_path / 'a.db'}"
        settings = sync_settings(srv.url, TOKEN, org, db_url, concurrency=8, workers=0)
        assert execute_sync(settings, on_client=clients.append).exit_code == 0
        assert archived(db_url) == org.truth()
        refused = srv.limiter.refused["concurrent"]
        assert refused > 0
        assert clients[0].stats.rate_limited_waits == refused
        assert refused < srv.log.by_family[FAMILY] / 3
        events = family_of(f"api/0/organizations/{org.slug}/issues/1/events/")
        assert clients[0].limiter.gate(events).limit == 4
