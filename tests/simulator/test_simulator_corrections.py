"""The simulator answers as sentry.io does per sentry-api.md's "Corrections of 2026-12-02".

Org-less group URLs (1), issue search clipped to 90 days (4), hollow events (6), user and
organisation tokens (7), performance issues whose events are transactions (8).
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from archiver.simulator import SimulatedOrg, SimulatorConfig, SimulatorServer, ordering
from archiver.simulator.data import DAY, Issue

TOKEN = "sim-token"


def iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")


def seconds(text: str) -> int:
    return int(dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())


@pytest.fixture(scope="module")
def org() -> SimulatedOrg:
    return SimulatedOrg(seed=5, events=3_000)


@contextlib.contextmanager
def client_for(org: SimulatedOrg, token: str = TOKEN, **config: Any) -> Iterator[httpx.Client]:
    """A client of a fresh server over ``org`` with these ``SimulatorConfig`` settings."""
    with SimulatorServer(org, config=SimulatorConfig(**config)) as srv:
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=srv.url, headers=headers, timeout=10) as client:
            yield client


def hot(org: SimulatedOrg) -> Issue:
    now = int(org.now())
    return max(org.live_issues(), key=lambda i: org.count(i.segments, now - 90 * DAY, now + 1))


# --- 1. org-less group URLs -----------------------------------------------------------------------


def orgless_paths(issue: Issue, event_id: str) -> list[str]:
    return [
        f"api/0/{kind}/{issue.id}/{tail}"
        for kind in ("issues", "groups")
        for tail in ("", "events/", "events/latest/", "events/oldest/", f"events/{event_id}/")
    ]


def test_orgless_group_urls_answer_404_by_default(org: SimulatedOrg) -> None:
    issue = hot(org)
    with client_for(org) as client:
        base = f"api/0/organizations/{org.slug}/issues/{issue.id}/"
        event_id = client.get(base + "events/").json()[0]["eventID"]
        for path in orgless_paths(issue, event_id):
            response = client.get(path)
            assert response.status_code == 404, path
            assert response.json() == {"detail": "The requested resource does not exist"}
        # the organisation-scoped URLs answer every one of them
        for tail in (
            "",
            "events/",
            "events/latest/",
            "events/oldest/",
            "events/recommended/",
            f"events/{event_id}/",
        ):
            assert client.get(base + tail).status_code == 200, tail


def test_orgless_group_urls_answer_410_in_a_brownout(org: SimulatedOrg) -> None:
    issue = hot(org)
    with client_for(org, orgless_urls="410") as client:
        for path in orgless_paths(issue, "a" * 32):
            response = client.get(path)
            assert response.status_code == 410, path
            assert response.json() == {"message": "This API no longer exists."}
        assert client.get(f"api/0/organizations/{org.slug}/issues/{issue.id}/").status_code == 200


def test_orgless_group_urls_can_still_be_served_as_in_the_us_region(org: SimulatedOrg) -> None:
    issue = hot(org)
    with client_for(org, orgless_urls="serve") as client:
        assert client.get(f"api/0/groups/{issue.id}/").json()["id"] == str(issue.id)
        assert client.get(f"api/0/issues/{issue.id}/events/").status_code == 200
    with pytest.raises(ValueError, match=r"^orgless_urls must be one of "):
        SimulatorConfig(orgless_urls="gone")


# --- 4. issue search never looks back more than 90 days -------------------------------------------


def listed_issue_ids(client: httpx.Client, org: SimulatedOrg, **params: str) -> set[int]:
    out: set[int] = set()
    cursor = None
    while True:
        query = {"query": "", "sort": "new", "limit": "100", **params}
        if cursor:
            query["cursor"] = cursor
        response = client.get(f"api/0/organizations/{org.slug}/issues/", params=query)
        assert response.status_code == 200, response.text
        out |= {int(row["id"]) for row in response.json()}
        link = response.headers["link"]
        if 'rel="next"; results="false"' in link:
            return out
        cursor = link.rsplit('cursor="', 1)[1].split('"')[0]


def test_issue_search_is_clipped_to_90_days_but_event_lists_are_not(org: SimulatedOrg) -> None:
    now = int(org.now())
    window = {"start": iso(org.retention_cutoff()), "end": iso(now + 1)}
    old = [
        i
        for i in org.live_issues()
        if org.count(i.segments, org.retention_cutoff(), now + 1)
        and not org.count(i.segments, now - 90 * DAY, now + 1)
    ]
    assert old, "the org has issues whose events are all 90 to 100 days old"
    with client_for(org, search_max_days=90) as client:
        listed = listed_issue_ids(client, org, **window)
        recent = {i.id for i in org.live_issues() if org.count(i.segments, now - 90 * DAY, now + 1)}
        assert listed == recent
        assert not listed & {i.id for i in old}
        # an old issue's events are still listed with an old start (up to the retention)
        events = client.get(
            f"api/0/organizations/{org.slug}/issues/{old[0].id}/events/", params=window
        ).json()
        assert events
        assert all(seconds(e["dateCreated"]) < now - 90 * DAY for e in events)
    searchable = org.truth(searchable_days=90)
    assert searchable < org.truth(searchable_days=None)
    assert not {(old[0].project.id, e["eventID"]) for e in events} & searchable


def test_issue_search_honours_an_old_start_when_not_clipped(org: SimulatedOrg) -> None:
    now = int(org.now())
    window = {"start": iso(org.retention_cutoff()), "end": iso(now + 1)}
    with client_for(org, search_max_days=None) as client:
        listed = listed_issue_ids(client, org, **window)
    assert listed == {i.id for i in org.live_issues() if org.count(i.segments, -(2**40), 2**40)}


# --- 6. hollow events -----------------------------------------------------------------------------


def test_hollow_events_are_listed_hollow_and_404_by_id(org: SimulatedOrg) -> None:
    issue = hot(org)
    base = f"api/0/organizations/{org.slug}/issues/{issue.id}/"
    with client_for(org) as client:
        listed = client.get(base + "events/", params={"full": "true"}).json()
    latest_id, middle_id = listed[0]["eventID"], listed[3]["eventID"]
    hollow = frozenset({latest_id, middle_id})
    with client_for(org, hollow_events=hollow) as client:
        full = client.get(base + "events/", params={"full": "true"}).json()
        slim = client.get(base + "events/").json()
        by_id = {e["eventID"]: e for e in full}
        for eid in hollow:
            event = by_id[eid]
            assert event["id"] == eid
            assert event["groupID"] == str(issue.id)
            assert (
                event["dateCreated"]
                == next(e for e in listed if e["eventID"] == eid)["dateCreated"]
            )
            assert event["entries"] == []
            assert event["contexts"] == {}
            assert event["user"] is None
            assert event["sdk"] is None
            assert client.get(base + f"events/{eid}/").status_code == 404
            project = f"api/0/projects/{org.slug}/{issue.project.slug}/events/{eid}/"
            assert client.get(project).status_code == 404
            assert client.get(f"api/0/organizations/{org.slug}/eventids/{eid}/").status_code == 404
        assert {e["eventID"] for e in slim} == set(by_id)
        slim_hollow = next(e for e in slim if e["eventID"] == middle_id)
        assert slim_hollow["user"] is None
        assert slim_hollow["tags"] == []
        intact = next(e for e in full if e["eventID"] not in hollow)
        assert intact["entries"]
        assert client.get(base + f"events/{intact['eventID']}/").is_success
        for which in ("latest", "recommended"):
            served = client.get(base + f"events/{which}/")
            assert served.status_code == 200
            body = served.json()
            assert body["eventID"] == latest_id
            assert body["entries"] == []
            assert body["user"] is None
            assert body["sdk"] is None
            assert not body["contexts"]


def test_hollow_rate_picks_the_same_events_on_every_request(org: SimulatedOrg) -> None:
    issue = hot(org)
    url = f"api/0/organizations/{org.slug}/issues/{issue.id}/events/"
    with client_for(org, hollow_rate=0.2) as client:
        firsts = [client.get(url, params={"full": "true", "sample": "1"}).json() for _ in range(2)]
    hollow = [{e["eventID"] for e in page if e["entries"] == []} for page in firsts]
    assert hollow[0] == hollow[1]
    assert 5 <= len(hollow[0]) <= 40  # about 20 of 100


# --- 7. tokens ------------------------------------------------------------------------------------


def test_a_user_token_sees_every_project_but_reads_only_its_own(org: SimulatedOrg) -> None:
    hidden = org.projects[1]
    issue = next(i for i in org.live_issues() if i.project is hidden)
    user = "sntryu_" + "1" * 64
    with client_for(org, user, user_tokens={user: frozenset({hidden.slug})}) as client:
        projects = client.get(f"api/0/organizations/{org.slug}/projects/").json()
        access = {p["slug"]: p["hasAccess"] for p in projects}
        assert access == {p.slug: p is not hidden for p in org.projects}
        forbidden = [
            f"api/0/projects/{org.slug}/{hidden.slug}/",
            f"api/0/projects/{org.slug}/{hidden.slug}/issues/",
            f"api/0/projects/{org.slug}/{hidden.slug}/events/",
            f"api/0/organizations/{org.slug}/issues/{issue.id}/",
            f"api/0/organizations/{org.slug}/issues/{issue.id}/events/",
            f"api/0/organizations/{org.slug}/issues/{issue.id}/events/latest/",
        ]
        for path in forbidden:
            response = client.get(path)
            assert response.status_code == 403, path
            assert response.json() == {
                "detail": "You do not have permission to perform this action."
            }
        search = f"api/0/organizations/{org.slug}/issues/"
        denied = client.get(search, params={"query": "", "project": str(hidden.id)})
        assert denied.status_code == 403
        everything = client.get(search, params={"query": "", "limit": "100"}).json()
        assert everything
        assert all(row["project"]["slug"] != hidden.slug for row in everything)
        other = org.projects[0]
        assert client.get(search, params={"query": "", "project": str(other.id)}).is_success
        assert client.get(f"api/0/projects/{org.slug}/{other.slug}/events/").is_success


def test_an_organisation_auth_token_cannot_read_projects_issues_or_events(
    org: SimulatedOrg,
) -> None:
    ci = "sntrys_" + "e" * 40
    issue = hot(org)
    project = issue.project
    with client_for(org, ci, org_auth_tokens=frozenset({ci})) as client:
        for path in (
            f"api/0/organizations/{org.slug}/",
            f"api/0/organizations/{org.slug}/projects/",
            f"api/0/organizations/{org.slug}/issues/",
            f"api/0/projects/{org.slug}/{project.slug}/issues/",
            f"api/0/projects/{org.slug}/{project.slug}/events/",
            f"api/0/organizations/{org.slug}/issues/{issue.id}/",
            f"api/0/organizations/{org.slug}/issues/{issue.id}/events/",
            f"api/0/organizations/{org.slug}/issues/{issue.id}/events/latest/",
        ):
            response = client.get(path)
            assert response.status_code == 403, path
        release = org.releases[project.index][-1].version
        releases = f"api/0/organizations/{org.slug}/releases/{release}/"
        assert client.get(releases).status_code == 200  # org:ci reads releases
    with client_for(org) as client:  # the default token is unchanged
        assert client.get(f"api/0/organizations/{org.slug}/projects/").json()[0]["hasAccess"]


# --- 8. performance issues: transactions ----------------------------------------------------------


def test_a_performance_issues_events_are_transactions(org: SimulatedOrg) -> None:
    perf = [i for i in org.live_issues() if i.kind == "performance" and i.times_seen > 1]
    assert perf, "the generated org has a performance issue"
    issue = max(perf, key=lambda i: i.times_seen)
    base = f"api/0/organizations/{org.slug}/issues/{issue.id}/"
    with client_for(org) as client:
        row = next(
            r
            for r in client.get(
                f"api/0/organizations/{org.slug}/issues/",
                params={"query": "", "limit": "100", "project": str(issue.project.id)},
            ).json()
            if r["id"] == str(issue.id)
        )
        assert row["issueCategory"] == "performance"
        full = client.get(base + "events/", params={"full": "true"}).json()
        slim = client.get(base + "events/").json()
        detail = client.get(base + f"events/{full[0]['eventID']}/").json()
    for event, second in zip(full, slim, strict=True):
        assert event["type"] == "transaction"
        assert "dateCreated" not in event
        assert isinstance(event["startTimestamp"], float)
        assert isinstance(event["endTimestamp"], float)
        assert event["startTimestamp"] < event["endTimestamp"]
        assert int(event["endTimestamp"]) == seconds(second["dateCreated"])
        assert seconds(event["dateReceived"]) >= int(event["endTimestamp"])
        assert event["measurements"]
        assert event["breakdowns"]
        spans = event["entries"][0]
        assert spans["type"] == "spans"
        assert spans["data"]
        assert all(
            event["startTimestamp"] <= s["start_timestamp"] <= s["timestamp"] for s in spans["data"]
        )
        assert event["occurrence"] is None  # lists leave it out; the detail fills it
        assert second["event.type"] == "transaction"
    assert detail["occurrence"]["eventId"] == full[0]["eventID"]
    assert "dateCreated" not in detail


# --- existing behaviour (issue 14): ties, sample=1, bursts, offset cost ---------------------------


@pytest.fixture(scope="module")
def bursty() -> tuple[SimulatedOrg, Issue, int]:
    org = SimulatedOrg(seed=11, events=300)
    issue = hot(org)
    second = int(org.now()) - 50
    org.add_events(issue.id, 250, at=second)
    return org, issue, second


def test_same_second_events_come_in_a_new_order_on_every_request(bursty: Any) -> None:
    org, issue, second = bursty
    url = f"api/0/organizations/{org.slug}/issues/{issue.id}/events/"
    window = {"start": iso(second), "end": iso(second + 1)}
    with client_for(org) as client:
        orders = [[e["eventID"] for e in client.get(url, params=window).json()] for _ in range(3)]
        samples = [
            [e["eventID"] for e in client.get(url, params={**window, "sample": "1"}).json()]
            for _ in range(3)
        ]
        deep = client.get(url, params={**window, "cursor": "0:200:0"}).json()
    assert len(orders[0]) == 100
    assert len(deep) == 50  # a burst of 250 events in one second
    assert {seconds(e["dateCreated"]) for e in deep} == {second}
    assert orders[0] != orders[1] != orders[2]  # ties: no defined order
    assert samples[0] == samples[1] == samples[2]  # sample=1: a stable order
    with client_for(org, shuffle_ties=False) as client:
        stable = [[e["eventID"] for e in client.get(url, params=window).json()] for _ in range(2)]
    assert stable[0] == stable[1]


def test_deep_offsets_cost_time_and_fail_past_the_maximum(
    bursty: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    org, issue, _ = bursty
    url = f"api/0/organizations/{org.slug}/issues/{issue.id}/events/"
    slept: list[float] = []  # the simulator's delays, recorded instead of waited
    monkeypatch.setattr(ordering, "time", SimpleNamespace(sleep=slept.append))
    with client_for(org, offset_row_delay=0.002, max_offset=250) as client:
        assert client.get(url, params={"cursor": "0:0:0"}).status_code == 200
        assert slept == []  # offset 0 costs nothing
        assert client.get(url, params={"cursor": "0:200:0"}).status_code == 200
        assert slept == [pytest.approx(0.4)]  # 200 skipped rows at 2 ms each
        failed = client.get(url, params={"cursor": "0:300:0"})
    assert failed.status_code == 500
    assert failed.json()["detail"] == "Internal Error"
