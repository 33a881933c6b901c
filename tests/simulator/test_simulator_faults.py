"""Rate limits, fault injection, determinism and the request log of the simulator."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import httpx
import pytest

from archiver.simulator import (
    FaultConfig,
    RateLimit,
    ScheduledFault,
    SimulatedOrg,
    SimulatorConfig,
    SimulatorServer,
    rate_limit_preset,
)
from archiver.simulator.data import DAY, Issue
from archiver.simulator.ratelimit import RateLimiter

TOKEN = "sim-token"


class FakeWall:
    """A wall clock the test moves by hand (rate-limit windows without sleeping)."""

    def __init__(self, now: float = 1_700_000_000.25) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def org() -> SimulatedOrg:
    return SimulatedOrg(seed=13, events=1_500)


def hot(org: SimulatedOrg) -> Issue:
    now = int(org.now())
    return max(org.live_issues(), key=lambda i: org.count(i.segments, now - 90 * DAY, now + 1))


def serve(org: SimulatedOrg, config: SimulatorConfig) -> tuple[SimulatorServer, httpx.Client]:
    server = SimulatorServer(org, config=config).start()
    client = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {TOKEN}"})
    return server, client


@pytest.fixture
def fresh_org() -> SimulatedOrg:
    return SimulatedOrg(seed=13, events=1_500)


# --- rate limits -------------------------------------------------------------------------------


def test_sentry_preset_values() -> None:
    limits = rate_limit_preset("sentry")
    assert limits["issue_event_details"] == RateLimit(15, 1)
    assert limits["project_event_details"] == RateLimit(5, 1)
    assert limits["eventids"] == RateLimit(1, 1)
    assert limits["project_issues"].limit == 5
    assert limits["project_events"] == RateLimit(60, 60, 1)
    assert limits["issue_events"] == RateLimit(40, 1, 25)
    assert rate_limit_preset("none") == {}


def test_rate_limit_headers_and_429(org: SimulatedOrg) -> None:
    wall = FakeWall()
    server, client = serve(org, SimulatorConfig.preset("sentry", wall_clock=wall))
    try:
        issue = hot(org)
        url = f"api/0/organizations/acme/issues/{issue.id}/events/latest/"
        answers = [client.get(url) for _ in range(16)]
        assert [r.status_code for r in answers] == [200] * 15 + [429]
        first = answers[0].headers
        assert first["x-sentry-rate-limit-limit"] == "15"
        assert first["x-sentry-rate-limit-remaining"] == "14"
        assert first["x-sentry-rate-limit-reset"] == str(int(wall.now) + 1)
        assert "x-sentry-rate-limit-concurrentlimit" not in first
        refused = answers[-1]
        assert refused.json() == (
            "You are attempting to use this endpoint too frequently. "
            "Limit is 15 requests in 1 seconds"
        )
        assert refused.headers["x-sentry-rate-limit-remaining"] == "0"
        assert "retry-after" not in refused.headers
        wall.now += 1  # next window
        assert client.get(url).status_code == 200
        listed = client.get(f"api/0/organizations/acme/issues/{issue.id}/events/")
        assert listed.headers["x-sentry-rate-limit-concurrentlimit"] == "25"
        assert listed.headers["x-sentry-rate-limit-concurrentremaining"] == "24"
        assert client.get(f"api/0/organizations/acme/eventids/{'0' * 32}/").status_code == 404
        assert client.get(f"api/0/organizations/acme/eventids/{'0' * 32}/").status_code == 429
    finally:
        client.close()
        server.stop()


def test_429_detail_form_and_retry_after(org: SimulatedOrg) -> None:
    wall = FakeWall(1_700_000_000.0)
    config = SimulatorConfig(
        rate_limits={"organization_projects": RateLimit(2, 10)},
        rate_limit_body="detail",
        retry_after=True,
        wall_clock=wall,
    )
    server, client = serve(org, config)
    try:
        statuses = [client.get("api/0/organizations/acme/projects/") for _ in range(3)]
        assert [r.status_code for r in statuses] == [200, 200, 429]
        assert statuses[2].json() == {
            "detail": "You are attempting to use this endpoint too frequently. "
            "Limit is 2 requests in 10 seconds"
        }
        assert statuses[2].headers["retry-after"] == "10"
        assert statuses[0].headers["x-sentry-rate-limit-reset"] == str(1_700_000_010)
    finally:
        client.close()
        server.stop()


def test_concurrency_limit_is_enforced() -> None:
    limiter = RateLimiter({"project_events": RateLimit(60, 60, 1)}, FakeWall())
    first = limiter.acquire("project_events", "k")
    second = limiter.acquire("project_events", "k")
    assert first.allowed
    assert not second.allowed
    assert second.reason == "concurrent"
    assert dict(second.headers)["X-Sentry-Rate-Limit-ConcurrentRemaining"] == "0"
    limiter.release("project_events", "k")
    assert limiter.acquire("project_events", "k").allowed
    assert limiter.acquire("project_events", "other-token").allowed  # per token


# --- transport faults --------------------------------------------------------------------------


def test_scheduled_500_and_proxy_502(org: SimulatedOrg) -> None:
    schedule = (ScheduledFault("error", at=2), ScheduledFault("error", at=4))
    server, client = serve(
        org, SimulatorConfig(faults=FaultConfig(schedule=schedule, error_statuses=(500,)))
    )
    try:
        answers = [client.get("api/0/organizations/acme/projects/") for _ in range(4)]
        assert [r.status_code for r in answers] == [200, 500, 200, 500]
        body = answers[1].json()
        assert body["detail"] == "Internal Error"
        assert len(body["errorId"]) == 32
    finally:
        client.close()
        server.stop()
    server, client = serve(
        org, SimulatorConfig(faults=FaultConfig(error_rate=1.0, error_statuses=(502,)))
    )
    try:
        gateway = client.get("api/0/organizations/acme/projects/")
        assert gateway.status_code == 502
        assert gateway.headers["content-type"] == "text/html"
    finally:
        client.close()
        server.stop()


def test_connection_cut_mid_body(org: SimulatedOrg) -> None:
    server, client = serve(
        org, SimulatorConfig(faults=FaultConfig(schedule=(ScheduledFault("cut", at=1),)))
    )
    try:
        issue = hot(org)
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            client.get(
                f"api/0/organizations/acme/issues/{issue.id}/events/", params={"full": "true"}
            )
        assert (
            client.get(f"api/0/organizations/acme/issues/{issue.id}/events/").status_code == 200
        )  # the client reconnects
        assert server.log.entries()[0].faults == ("cut",)
    finally:
        client.close()
        server.stop()


def test_connection_cut_sends_headers_then_part_of_the_body(org: SimulatedOrg) -> None:
    server = SimulatorServer(org, config=SimulatorConfig(faults=FaultConfig(cut_rate=1.0))).start()
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            sock.sendall(
                b"GET /api/0/organizations/acme/projects/ HTTP/1.1\r\nHost: x\r\n"
                b"Authorization: Bearer sim-token\r\n\r\n"
            )
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = int(
            next(
                line.split(b":")[1]
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length")
            )
        )
        assert head.startswith(b"HTTP/1.1 200")
        assert 0 < len(body) < length
    finally:
        server.stop()


def test_truncated_json_with_matching_content_length(org: SimulatedOrg) -> None:
    server, client = serve(org, SimulatorConfig(faults=FaultConfig(truncate_rate=1.0)))
    try:
        response = client.get("api/0/organizations/acme/projects/")
        assert response.status_code == 200
        assert int(response.headers["content-length"]) == len(response.content)
        with pytest.raises(ValueError, match=r"line \d+ column \d+ \(char \d+\)$"):
            response.json()
    finally:
        client.close()
        server.stop()


def test_slow_responses_are_labelled(org: SimulatedOrg) -> None:
    server, client = serve(org, SimulatorConfig(faults=FaultConfig(slow_rate=1.0, slow_ms=1)))
    try:
        assert client.get("api/0/organizations/acme/projects/").status_code == 200
        assert server.log.entries()[-1].faults == ("slow",)
    finally:
        client.close()
        server.stop()


def test_429_bursts(org: SimulatedOrg) -> None:
    faults = FaultConfig(seed=1, burst_rate=0.2, burst_length=4)
    server, client = serve(org, SimulatorConfig(faults=faults))
    try:
        statuses = [client.get("api/0/organizations/acme/projects/").status_code for _ in range(60)]
        runs = "".join("x" if s == 429 else "." for s in statuses).split(".")
        assert any(len(run) >= 4 for run in runs)
        refused = client.get("api/0/organizations/acme/projects/")
        if refused.status_code == 429:
            assert refused.json().startswith(
                "You are attempting to use this endpoint too frequently."
            )
    finally:
        client.close()
        server.stop()


# --- data faults -------------------------------------------------------------------------------


def test_issue_deleted_during_a_walk(fresh_org: SimulatedOrg) -> None:
    issue = hot(fresh_org)
    schedule = (ScheduledFault("delete_issue", at=3, family="issue_events"),)
    server, client = serve(fresh_org, SimulatorConfig(faults=FaultConfig(schedule=schedule)))
    try:
        url = f"api/0/organizations/acme/issues/{issue.id}/events/"
        walked = client.get(url, params={"per_page": 10}).json()
        walked += client.get(url, params={"per_page": 10, "cursor": "0:10:0"}).json()
        assert len(walked) == 20
        gone = client.get(url, params={"per_page": 10, "cursor": "0:20:0"})
        assert gone.status_code == 404
        assert gone.json() == {"detail": "The requested resource does not exist"}
        assert client.get(f"api/0/organizations/acme/issues/{issue.id}/").status_code == 404
        seen = {(issue.project.id, e["eventID"]) for e in walked}
        assert not seen & fresh_org.truth()
        assert seen <= fresh_org.truth(include_deleted=True)
    finally:
        client.close()
        server.stop()


def test_merged_issue_answers_as_its_target(fresh_org: SimulatedOrg) -> None:
    issue = hot(fresh_org)
    server, client = serve(fresh_org, SimulatorConfig(faults=FaultConfig(merge_issue_after=2)))
    try:
        url = f"api/0/organizations/acme/issues/{issue.id}/events/"
        before = client.get(url, params={"per_page": 100}).json()
        after = client.get(url, params={"per_page": 100}).json()  # merged just before this one
        target = fresh_org.resolve_issue(issue.id)
        assert target is not None
        assert target is not issue
        assert {e["groupID"] for e in after} == {str(target.id)}
        assert client.get(f"api/0/organizations/acme/issues/{issue.id}/").json()["id"] == str(
            target.id
        )
        moved = fresh_org.locate_event(before[0]["eventID"])
        assert moved is not None
        assert moved.issue is target
    finally:
        client.close()
        server.stop()


def test_new_events_arrive_while_walking(fresh_org: SimulatedOrg) -> None:
    issue = hot(fresh_org)
    truth = fresh_org.truth_count()
    server, client = serve(
        fresh_org, SimulatorConfig(faults=FaultConfig(new_events_every=2, new_events_count=3))
    )
    try:
        url = f"api/0/organizations/acme/issues/{issue.id}/events/"
        first = client.get(url, params={"per_page": 5}).json()
        second = client.get(url, params={"per_page": 5}).json()  # 3 new events arrived first
        assert fresh_org.truth_count() == truth + 3
        assert [e["eventID"] for e in second[3:]] == [e["eventID"] for e in first[:2]]
        assert second[0]["dateCreated"][:19] >= first[0]["dateCreated"][:19]
    finally:
        client.close()
        server.stop()


def test_clock_advances_and_events_expire(fresh_org: SimulatedOrg) -> None:
    before = fresh_org.truth_count()
    server, client = serve(
        fresh_org, SimulatorConfig(faults=FaultConfig(advance_every=1, advance_seconds=5 * DAY))
    )
    try:
        client.get("api/0/organizations/acme/projects/")
        assert fresh_org.truth_count() < before
    finally:
        client.close()
        server.stop()


# --- determinism and counters ------------------------------------------------------------------


def _session(seed: int) -> list[tuple[int, str]]:
    org = SimulatedOrg(seed=5, events=1_000)
    faults = FaultConfig(
        seed=seed, error_rate=0.2, truncate_rate=0.1, burst_rate=0.05, new_events_every=3
    )
    server, client = serve(org, SimulatorConfig(faults=faults))
    out = []
    try:
        issue = hot(org)
        for n in range(25):
            response = client.get(
                f"api/0/organizations/acme/issues/{issue.id}/events/",
                params={"cursor": f"0:{n * 7}:0", "per_page": 7, "full": "1"},
            )
            body = response.content.decode()
            if response.status_code == 500:
                body = body[:30]  # errorId differs by design only across seeds
            out.append((response.status_code, body))
    finally:
        client.close()
        server.stop()
    return out


def test_same_seed_same_responses() -> None:
    assert _session(1) == _session(1)
    assert _session(1) != _session(2)


def test_request_log_counts(org: SimulatedOrg) -> None:
    server, client = serve(org, SimulatorConfig())
    try:
        client.get("api/0/organizations/acme/projects/")
        client.get("api/0/organizations/acme/issues/")
        client.get("api/0/organizations/acme/issues/")
        client.get("api/0/nowhere/")
        assert server.log.total == 4
        assert server.log.by_family["organization_issues"] == 2
        assert server.log.by_status[200] == 3
        assert server.log.by_status[404] == 1
        assert [e.family for e in server.log.entries()] == [
            "organization_projects",
            "organization_issues",
            "organization_issues",
            None,
        ]
    finally:
        client.close()
        server.stop()


@pytest.fixture
def running(org: SimulatedOrg) -> Iterator[SimulatorServer]:
    with SimulatorServer(org, token=None) as srv:
        yield srv


def test_token_none_disables_auth(running: SimulatorServer) -> None:
    assert httpx.get(f"{running.url}api/0/organizations/acme/projects/").status_code == 200


def test_only_loopback() -> None:
    with pytest.raises(ValueError, match=r"^the simulator binds to the loopback interface only$"):
        SimulatorServer(SimulatedOrg(seed=1, events=100), host="0.0.0.0")
