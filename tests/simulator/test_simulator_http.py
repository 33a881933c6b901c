"""The simulator over real sockets, checked against the facts in docs/sentry-api.md.

Each test names the Sentry behaviour it pins, so the simulator cannot drift from Sentry
silently: Link header bytes, the three paginators, defaults, windows, shapes, errors.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from archiver.simulator import SimulatedOrg, SimulatorConfig, SimulatorServer
from archiver.simulator.data import DAY, Issue

EXAMPLES = Path("/work/shared/sentry-examples")
TOKEN = "sim-token"
LINK = re.compile(
    r'^<(?P<prev_uri>[^>]*)&cursor=(?P<prev_c1>[^>]*)>; rel="previous"; '
    r'results="(?P<prev_results>true|false)"; '
    r'cursor="(?P<prev>[^"]*)", <(?P<next_uri>[^>]*)&cursor=(?P<next_c1>[^>]*)>; rel="next"; '
    r'results="(?P<next_results>true|false)"; cursor="(?P<next>[^"]*)"$'
)
SLIM_KEYS = {
    "id",
    "eventID",
    "groupID",
    "projectID",
    "title",
    "message",
    "location",
    "culprit",
    "user",
    "tags",
    "platform",
    "dateCreated",
    "crashFile",
    "metadata",
    "event.type",
}
DETAIL_ONLY = {
    "release",
    "userReport",
    "nextEventID",
    "previousEventID",
    "sdkUpdates",
    "resolvedWith",
}


def iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, tz=dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")


def link(response: httpx.Response) -> re.Match[str]:
    match = LINK.match(response.headers["link"])
    assert match, response.headers["link"]
    return match


def walk(
    client: httpx.Client, url: str, params: dict[str, Any] | None = None
) -> tuple[list[Any], int]:
    """Follow ``next`` cursors (taken from the cursor attribute) until results="false"."""
    items: list[Any] = []
    cursor = None
    pages = 0
    while True:
        query = dict(params or {})
        if cursor is not None:
            query["cursor"] = cursor
        response = client.get(url, params=query)
        assert response.status_code == 200, response.text
        items += response.json()
        pages += 1
        match = link(response)
        if match["next_results"] == "false":
            return items, pages
        cursor = match["next"]
        assert pages < 10_000


def example(name: str) -> Any:
    return json.loads((EXAMPLES / name).read_text())


@pytest.fixture(scope="module")
def org() -> SimulatedOrg:
    return SimulatedOrg(seed=9, events=3_000)


@pytest.fixture(scope="module")
def server(org: SimulatedOrg) -> Iterator[SimulatorServer]:
    with SimulatorServer(
        org,
        config=SimulatorConfig(
            extra_tokens={"noscope": frozenset()},
            expired_tokens=frozenset({"old-token"}),
            search_max_days=None,  # these tests read Sentry's windows, unclipped
        ),
    ) as srv:
        yield srv


@pytest.fixture(scope="module")
def client(server: SimulatorServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {TOKEN}"}) as c:
        yield c


@pytest.fixture(scope="module")
def big(org: SimulatedOrg) -> Issue:
    """The issue with the most events visible in the default 90-day window."""
    now = int(org.now())
    return max(org.live_issues(), key=lambda i: org.count(i.segments, now - 90 * DAY, now + 1))


def full_window(org: SimulatedOrg) -> dict[str, str]:
    """start/end covering the whole retention (and beyond)."""
    return {"start": iso(org.now() - 400 * DAY), "end": iso(org.now() + 10)}


# --- Link header and cursors -------------------------------------------------------------------


def test_link_header_is_byte_for_byte_sentry(
    client: httpx.Client, server: SimulatorServer, big: Issue
) -> None:
    response = client.get(f"api/0/organizations/acme/issues/{big.id}/events/")
    uri = f"{server.url}api/0/organizations/acme/issues/{big.id}/events/?"
    assert response.headers["link"] == (
        f'<{uri}&cursor=0:0:1>; rel="previous"; results="false"; cursor="0:0:1", '
        f'<{uri}&cursor=0:100:0>; rel="next"; results="true"; cursor="0:100:0"'
    )
    assert "x-hits" not in response.headers  # event lists carry no hit counts


def test_link_uri_reencodes_the_query_and_drops_cursor(
    client: httpx.Client, server: SimulatorServer, big: Issue
) -> None:
    response = client.get(
        f"api/0/organizations/acme/issues/{big.id}/events/",
        params=[
            ("start", "2024-03-01T00:00:00"),
            ("environment", "qa 2"),
            ("full", "true"),
            ("environment", "production"),
            ("cursor", "0:0:0"),
            ("end", "2024-06-01T00:00:00Z"),
        ],
    )
    match = link(response)
    assert match["next_uri"] == (
        f"{server.url}api/0/organizations/acme/issues/{big.id}/events/?start=2024-03-01T00%3A00%3A00"
        "&environment=qa+2&environment=production&full=true&end=2024-06-01T00%3A00%3A00Z"
    )
    response = client.get(
        f"api/0/organizations/acme/issues/{big.id}/events/",
        params=[
            ("statsPeriod", "14d"),
            ("environment", "qa 2"),
            ("query", ""),
            ("cursor", "0:0:0"),
            ("per_page", "5"),
        ],
    )
    assert link(response)["prev_uri"] == (
        f"{server.url}api/0/organizations/acme/issues/{big.id}/events/?statsPeriod=14d&environment=qa+2&query=&per_page=5"
    )


def test_seed_003_link_shape_parses_with_the_same_pattern() -> None:
    seed = next(Path("/work/shared/seeds").glob("003_*.txt")).read_text()
    header = next(line for line in seed.splitlines() if line.startswith("Link: "))[len("Link: ") :]
    match = LINK.match(header)
    assert match
    assert match["prev_uri"].endswith("/events/?")
    assert match["prev"] == "1534962224000:0:1"


def test_event_list_walk_yields_every_event_once(
    client: httpx.Client, org: SimulatedOrg, big: Issue
) -> None:
    params = {**full_window(org), "per_page": 37}
    events, pages = walk(client, f"api/0/organizations/acme/issues/{big.id}/events/", params)
    ids = [e["eventID"] for e in events]
    assert len(ids) == len(set(ids))
    cutoff = org.retention_cutoff()
    expected = {
        org.event_id(s, k) for s in big.segments for k in range(s.count_before(cutoff), s.n)
    }
    assert set(ids) == expected
    assert len(ids) % 37 != 0  # so the last page is partial and no empty page follows it
    assert pages == len(ids) // 37 + 1
    stamps = [(e["dateCreated"][:19], e["eventID"]) for e in events]
    assert stamps == sorted(stamps, reverse=True)  # -timestamp, then event id descending


def test_generic_offset_cursor_semantics(client: httpx.Client, big: Issue) -> None:
    first = client.get(f"api/0/organizations/acme/issues/{big.id}/events/", params={"per_page": 10})
    second = client.get(
        f"api/0/organizations/acme/issues/{big.id}/events/",
        params={"per_page": 10, "cursor": "0:10:0"},
    )
    both = client.get(f"api/0/organizations/acme/issues/{big.id}/events/", params={"per_page": 20})
    assert [e["id"] for e in first.json() + second.json()] == [e["id"] for e in both.json()]
    match = link(second)
    assert (match["prev"], match["prev_results"]) == ("0:0:1", "true")
    assert (match["next"], match["next_results"]) == ("0:20:0", "true")
    # the value part is ignored, the offset is absolute
    odd = client.get(
        f"api/0/organizations/acme/issues/{big.id}/events/",
        params={"per_page": 10, "cursor": "123:10:1"},
    )
    assert odd.json() == second.json()


def test_last_page_says_results_false(client: httpx.Client, big: Issue, org: SimulatedOrg) -> None:
    now = int(org.now())
    total = org.count(big.segments, now - 90 * DAY, now + 1)
    response = client.get(
        f"api/0/organizations/acme/issues/{big.id}/events/", params={"cursor": f"0:{total - 1}:0"}
    )
    assert len(response.json()) == 1
    assert link(response)["next_results"] == "false"
    beyond = client.get(
        f"api/0/organizations/acme/issues/{big.id}/events/", params={"cursor": f"0:{total + 50}:0"}
    )
    assert beyond.json() == []
    assert link(beyond)["next_results"] == "false"


@pytest.mark.parametrize("cursor", ["abc", "1:2", "a:b:c", "1:2:3:4", "1.5.2:0:0", ":::"])
def test_invalid_cursor_is_400(client: httpx.Client, big: Issue, cursor: str) -> None:
    for url in (
        f"api/0/organizations/acme/issues/{big.id}/events/",
        "api/0/organizations/acme/issues/",
        "api/0/organizations/acme/projects/",
    ):
        response = client.get(url, params={"cursor": cursor})
        assert response.status_code == 400
        assert response.json() == {"detail": "Invalid cursor parameter."}


def test_per_page_default_cap_and_errors(client: httpx.Client, big: Issue) -> None:
    url = f"api/0/organizations/acme/issues/{big.id}/events/"
    assert len(client.get(url).json()) == 100
    assert len(client.get(url, params={"per_page": 100}).json()) == 100
    too_many = client.get(url, params={"per_page": 101})
    assert too_many.status_code == 400
    assert too_many.json() == {"detail": "Invalid per_page value. Cannot exceed 100."}


def test_per_page_new_error_text(org: SimulatedOrg, big: Issue) -> None:
    with (
        SimulatorServer(org, config=SimulatorConfig(per_page_error="new")) as srv,
        httpx.Client(base_url=srv.url, headers={"Authorization": f"Bearer {TOKEN}"}) as c,
    ):
        for value in (0, 101):
            response = c.get(
                f"api/0/organizations/acme/issues/{big.id}/events/", params={"per_page": value}
            )
            assert response.status_code == 400
            assert response.json() == {
                "detail": "Invalid per_page value. Must be between 1 and 100."
            }


def test_projects_use_the_offset_paginator(client: httpx.Client, org: SimulatedOrg) -> None:
    first = client.get("api/0/organizations/acme/projects/", params={"per_page": 2})
    match = link(first)
    assert (match["prev"], match["prev_results"]) == ("2:-1:1", "false")
    assert (match["next"], match["next_results"]) == ("2:1:0", "true")
    projects, _ = walk(client, "api/0/organizations/acme/projects/", {"per_page": 2})
    assert sorted(p["slug"] for p in projects) == sorted(p.slug for p in org.projects)
    assert [p["slug"] for p in projects] == sorted(p["slug"] for p in projects)
    assert any(int(p["id"]) > 2**31 for p in projects)
    keys = set(example("api_listOrganizationProjects__ListAnOrganization_sProjects.json")[0])
    assert {
        "id",
        "slug",
        "name",
        "platform",
        "dateCreated",
        "team",
        "teams",
        "features",
    } <= keys & set(projects[0])


# --- issues ------------------------------------------------------------------------------------


def issue_ids(client: httpx.Client, url: str, **params: Any) -> list[int]:
    items, _ = walk(client, url, params)
    return [int(i["id"]) for i in items]


def test_issue_list_defaults_hide_resolved_ignored_and_low(
    client: httpx.Client, org: SimulatedOrg
) -> None:
    window = full_window(org)
    org_default = set(issue_ids(client, "api/0/organizations/acme/issues/", **window))
    everything = set(issue_ids(client, "api/0/organizations/acme/issues/", query="", **window))
    by_id = {i.id: i for i in org.issues}
    assert org_default == {
        i
        for i in everything
        if by_id[i].status == "unresolved" and by_id[i].priority in ("high", "medium")
    }
    assert {by_id[i].status for i in everything} == {"unresolved", "resolved", "ignored"}
    project = org.projects[0]
    url = f"api/0/projects/acme/{project.slug}/issues/"
    project_default = set(issue_ids(client, url))
    project_all = set(issue_ids(client, url, query=""))
    assert project_default == {i for i in project_all if by_id[i].status == "unresolved"}
    assert all(by_id[i].project is project for i in project_all)


def test_issue_search_window_defaults_to_90_days(client: httpx.Client, org: SimulatedOrg) -> None:
    default = set(issue_ids(client, "api/0/organizations/acme/issues/", query=""))
    wide = set(issue_ids(client, "api/0/organizations/acme/issues/", query="", **full_window(org)))
    now = int(org.now())
    cutoff = org.retention_cutoff()
    expect_default = {
        i.id for i in org.live_issues() if org.count(i.segments, now - 90 * DAY, now + 1)
    }
    expect_wide = {i.id for i in org.live_issues() if org.count(i.segments, cutoff, now + 1)}
    assert default == expect_default
    assert wide == expect_wide
    assert default < wide  # some issues only have events older than 90 days
    assert {i.id for i in org.live_issues()} - wide  # and some only have expired events


def test_issue_sequence_cursor_is_the_sort_score(client: httpx.Client, org: SimulatedOrg) -> None:
    url = "api/0/organizations/acme/issues/"
    page = client.get(url, params={"query": "", "limit": 3, "sort": "new"})
    rest = client.get(url, params={"query": "", "limit": 100, "sort": "new"}).json()
    assert page.headers["x-hits"] == str(len(rest))
    assert page.headers["x-max-hits"] == "1000"
    match = link(page)
    fourth = rest[3]
    score = (
        int(dt.datetime.fromisoformat(fourth["firstSeen"].replace("Z", "+00:00")).timestamp())
        * 1000
    )
    assert match["next"].split(":")[0] == str(score)
    following = client.get(
        url, params={"query": "", "limit": 3, "sort": "new", "cursor": match["next"]}
    )
    assert [i["id"] for i in following.json()] == [i["id"] for i in rest[3:6]]
    first_seen = [i["firstSeen"] for i in rest]
    assert first_seen == sorted(first_seen, reverse=True)


def test_issue_cursor_offsets_survive_ties() -> None:
    org = SimulatedOrg(seed=21, events=1_500)
    at = org.now() - 30
    tied = org.live_issues()[:6]
    for issue in tied:
        org.add_events(issue.id, 1, at=at)
    with (
        SimulatorServer(org) as srv,
        httpx.Client(base_url=srv.url, headers={"Authorization": f"Bearer {TOKEN}"}) as c,
    ):
        url = "api/0/organizations/acme/issues/"
        walked = issue_ids(c, url, query="", limit=2)
        assert len(walked) == len(set(walked))
        assert set(walked) == set(issue_ids(c, url, query="", limit=100))
        first = c.get(url, params={"query": "", "limit": 2})
        nxt = link(first)["next"]
        assert nxt == f"{int(at) * 1000}:2:0"  # value: the tied score; offset: 2 already seen
        assert [int(i["id"]) for i in first.json()] == sorted((i.id for i in tied), reverse=True)[
            :2
        ]


def test_issue_query_filters(client: httpx.Client, org: SimulatedOrg) -> None:
    url = "api/0/organizations/acme/issues/"
    window = full_window(org)
    by_id = {i.id: i for i in org.issues}
    for status in ("resolved", "ignored", "unresolved"):
        got = issue_ids(client, url, query=f"is:{status}", **window)
        assert got
        assert all(by_id[i].status == status for i in got)
    low = issue_ids(client, url, query="issue.priority:low", **window)
    assert low
    assert all(by_id[i].priority == "low" for i in low)
    recent = issue_ids(client, url, query=f"lastSeen:>{iso(org.now() - 2 * DAY)}", **window)
    assert all(by_id[i].last_seen > org.now() - 2 * DAY for i in recent)
    bad = client.get(url, params={"query": "assigned_or_suggested:me"})
    assert bad.status_code == 400


def test_issue_query_event_id_is_a_direct_hit(
    client: httpx.Client, org: SimulatedOrg, big: Issue
) -> None:
    ref = org.page(big.segments, 0, 2**62, 5, 1)[0][0]
    response = client.get("api/0/organizations/acme/issues/", params={"query": ref.event_id})
    assert response.headers.get("x-sentry-direct-hit") == "1"
    assert "link" not in response.headers
    [issue] = response.json()
    assert int(issue["id"]) == big.id
    assert issue["matchingEventId"] == ref.event_id


def test_project_issues_stats_period_choices(client: httpx.Client, org: SimulatedOrg) -> None:
    url = f"api/0/projects/acme/{org.projects[0].slug}/issues/"
    for ok in ("", "24h", "14d"):
        assert client.get(url, params={"statsPeriod": ok}).status_code == 200
    bad = client.get(url, params={"statsPeriod": "90d"})
    assert bad.status_code == 400
    assert bad.json() == {"detail": "Invalid stats_period. Valid choices are '', '24h', and '14d'"}


def test_issue_shapes_match_sentry_examples(client: httpx.Client, big: Issue) -> None:
    listed = client.get("api/0/organizations/acme/issues/", params={"query": ""}).json()[0]
    detail = client.get(f"api/0/organizations/acme/issues/{big.id}/").json()
    scoped = client.get(f"api/0/organizations/acme/issues/{big.id}/").json()
    assert detail == scoped
    core = {
        "id",
        "shortId",
        "title",
        "culprit",
        "level",
        "status",
        "firstSeen",
        "lastSeen",
        "count",
        "userCount",
        "permalink",
        "metadata",
        "project",
        "type",
        "priority",
        "stats",
        "substatus",
    }
    for shape, name in (
        (listed, "api_listOrganizationIssues__ReturnAListOfIssuesForAnOrganization.json"),
        (detail, "api_getOrganizationIssue__ReturnAnIssue.json"),
    ):
        sample = example(name)
        sample = sample[0] if isinstance(sample, list) else sample
        assert core <= set(sample) & set(shape)
        assert isinstance(shape["count"], str)
        assert isinstance(shape["userCount"], int)
        assert set(shape["project"]) >= {"id", "slug", "name"}
    assert {"activity", "firstRelease", "lastRelease", "seenBy", "participants"} <= set(detail)
    assert set(detail["stats"]) == {"24h", "30d"}
    assert len(detail["stats"]["24h"]) == 24


# --- event windows -----------------------------------------------------------------------------


def test_event_lists_default_to_90_days_and_expired_never_show(
    client: httpx.Client, org: SimulatedOrg
) -> None:
    now = int(org.now())
    big = max(
        org.live_issues(),
        key=lambda i: org.count(i.segments, org.retention_cutoff(), now - 90 * DAY),
    )
    cutoff = org.retention_cutoff()
    default, _ = walk(client, f"api/0/organizations/acme/issues/{big.id}/events/")
    assert len(default) == org.count(big.segments, now - 90 * DAY, now + 1)
    wide, _ = walk(client, f"api/0/organizations/acme/issues/{big.id}/events/", full_window(org))
    assert len(wide) == org.count(big.segments, cutoff, now + 1)
    assert len(wide) > len(default)  # older than 90 days needs an explicit window
    all_generated = sum(s.n for s in big.segments)
    assert len(wide) < all_generated  # the rest has expired
    period, _ = walk(
        client,
        f"api/0/organizations/acme/issues/{big.id}/events/",
        {"statsPeriod": "100d", **full_window(org)},
    )
    assert len(period) == org.count(big.segments, now - 100 * DAY, now + 1)  # statsPeriod wins


def test_start_inclusive_end_exclusive_on_whole_seconds(
    client: httpx.Client, org: SimulatedOrg, big: Issue
) -> None:
    refs, _ = org.page(big.segments, 0, 2**62, 3, 1)
    ts = refs[0].timestamp
    url = f"api/0/organizations/acme/issues/{big.id}/events/"
    same_second = {
        org.event_id(s, k)
        for s in big.segments
        for k in range(s.count_before(ts), s.count_before(ts + 1))
    }
    inclusive = client.get(url, params={"start": iso(ts), "end": iso(ts + 1)}).json()
    assert {e["eventID"] for e in inclusive} == same_second
    before = client.get(url, params={"start": iso(ts - 5), "end": iso(ts)}).json()
    assert not same_second & {e["eventID"] for e in before}  # end is exclusive
    fractional = client.get(
        url, params={"start": iso(ts) + ".700", "end": iso(ts + 1) + ".200"}
    ).json()
    assert {e["eventID"] for e in fractional} == same_second
    assert client.get(url, params={"start": iso(ts)}).status_code == 400  # both are required


def test_unknown_environment_is_empty_without_link(client: httpx.Client, big: Issue) -> None:
    response = client.get(
        f"api/0/organizations/acme/issues/{big.id}/events/", params={"environment": "nope"}
    )
    assert response.status_code == 200
    assert response.json() == []
    assert "link" not in response.headers
    prod = client.get(
        f"api/0/organizations/acme/issues/{big.id}/events/",
        params={"environment": "production", "full": "1"},
    ).json()
    assert prod
    assert all(
        {"key": "environment", "value": "production"}
        in [{"key": t["key"], "value": t["value"]} for t in e["tags"]]
        for e in prod
    )


def test_event_query_is_a_direct_hit(client: httpx.Client, org: SimulatedOrg, big: Issue) -> None:
    ref = org.page(big.segments, 0, 2**62, 7, 1)[0][0]
    response = client.get(
        f"api/0/organizations/acme/issues/{big.id}/events/", params={"query": ref.event_id}
    )
    assert response.headers["x-sentry-direct-hit"] == "1"
    assert "link" not in response.headers
    assert [e["eventID"] for e in response.json()] == [ref.event_id]


# --- shapes ------------------------------------------------------------------------------------


def test_full_and_slim_shapes_match_the_examples(client: httpx.Client, big: Issue) -> None:
    slim = client.get(f"api/0/organizations/acme/issues/{big.id}/events/").json()[0]
    full = client.get(
        f"api/0/organizations/acme/issues/{big.id}/events/", params={"full": "true"}
    ).json()[0]
    also_slim = client.get(
        f"api/0/organizations/acme/issues/{big.id}/events/", params={"full": "false"}
    ).json()[0]
    listed = example(
        "api_listOrganizationIssueEvents__ReturnAListOfErrorEventsBoundToAnIssue.json"
    )[0]
    detailed = example("api_getOrganizationIssueEvent__ReturnAnIssueEvent.json")
    assert set(slim) == set(listed) == SLIM_KEYS
    assert set(also_slim) == SLIM_KEYS  # only "true" or "1" count on issue event lists
    assert set(full) == set(detailed) - DETAIL_ONLY
    assert full["eventID"] == slim["eventID"]
    assert full["groupID"] == str(big.id)
    assert all(isinstance(full[k], str) for k in ("groupID", "projectID", "eventID", "dateCreated"))
    lookup = example("api_resolveOrganizationEventId__EventExample.json")
    assert set(lookup["event"]) <= set(full)


def test_project_events_full_is_any_non_empty_value(
    client: httpx.Client, org: SimulatedOrg
) -> None:
    project = org.projects[0]
    url = f"api/0/projects/acme/{project.slug}/events/"
    assert set(client.get(url).json()[0]) == SLIM_KEYS
    assert "entries" in client.get(url, params={"full": "false"}).json()[0]
    assert "entries" in client.get(url, params={"full": "yes"}).json()[0]
    events = client.get(url, params={"per_page": 50}).json()
    stamps = [(e["dateCreated"][:19], e["eventID"]) for e in events]
    assert stamps == sorted(stamps, reverse=True)
    assert all(e["projectID"] == str(project.id) for e in events)


def test_project_event_list_walk_covers_the_project(
    client: httpx.Client, org: SimulatedOrg
) -> None:
    project = org.projects[-1]
    events, _ = walk(client, f"api/0/projects/acme/{project.slug}/events/", {"per_page": 100})
    expected = {eid for pid, eid in org.truth(searchable_days=None) if pid == project.id}
    assert [e["eventID"] for e in events if e["eventID"] in expected] == [
        e["eventID"] for e in events
    ]
    assert {e["eventID"] for e in events} == expected


# --- single events -----------------------------------------------------------------------------


def test_issue_event_detail_adds_release_user_report_and_neighbours(
    client: httpx.Client, org: SimulatedOrg, big: Issue
) -> None:
    listed = [
        e["eventID"]
        for e in client.get(
            f"api/0/organizations/acme/issues/{big.id}/events/",
            params=full_window(org) | {"per_page": 5},
        ).json()
    ]
    latest = client.get(f"api/0/organizations/acme/issues/{big.id}/events/latest/").json()
    assert latest["eventID"] == listed[0]
    assert latest["nextEventID"] is None
    assert latest["previousEventID"] == listed[1]
    assert set(latest) == set(example("api_getOrganizationIssueEvent__ReturnAnIssueEvent.json"))
    assert latest["userReport"] is None
    assert latest["release"] is not None  # the big issue's latest event names a release
    assert {"version", "dateCreated", "authors", "lastCommit"} <= set(latest["release"])
    middle = client.get(f"api/0/organizations/acme/issues/{big.id}/events/{listed[2]}/").json()
    assert (middle["nextEventID"], middle["previousEventID"]) == (listed[1], listed[3])
    scoped = client.get(f"api/0/organizations/acme/issues/{big.id}/events/{listed[2]}/").json()
    assert scoped == middle
    oldest = client.get(f"api/0/organizations/acme/issues/{big.id}/events/oldest/").json()
    assert oldest["previousEventID"] is None
    assert oldest["nextEventID"] is not None
    assert (
        client.get(f"api/0/organizations/acme/issues/{big.id}/events/recommended/").status_code
        == 200
    )
    missing = client.get(f"api/0/organizations/acme/issues/{big.id}/events/{'f' * 32}/")
    assert missing.status_code == 404
    assert missing.json() == {
        "detail": "Event not found. The event ID may be incorrect, or its age "
        "exceeded the retention period."
    }


def test_release_in_detail_matches_release_endpoint(
    client: httpx.Client, org: SimulatedOrg
) -> None:
    for issue in org.live_issues():
        detail = client.get(f"api/0/organizations/acme/issues/{issue.id}/events/latest/")
        if detail.status_code == 200 and detail.json()["release"]:
            release = detail.json()["release"]
            tag = [t["value"] for t in detail.json()["tags"] if t["key"] == "release"]
            assert tag == [release["version"]]
            fetched = client.get(
                f"api/0/organizations/acme/releases/{quote(release['version'], safe='')}/"
            )
            assert fetched.status_code == 200
            assert fetched.json() == release
            break
    else:
        pytest.fail("no event with a release")
    assert client.get("api/0/organizations/acme/releases/no-such-version/").status_code == 404


def test_project_event_detail_and_404(client: httpx.Client, org: SimulatedOrg, big: Issue) -> None:
    ref = org.page(big.segments, 0, 2**62, 0, 1)[0][0]
    ok = client.get(f"api/0/projects/acme/{big.project.slug}/events/{ref.event_id}/")
    assert ok.status_code == 200
    assert ok.json()["eventID"] == ref.event_id
    assert set(DETAIL_ONLY) <= set(ok.json())
    other = next(p for p in org.projects if p is not big.project)
    wrong_project = client.get(f"api/0/projects/acme/{other.slug}/events/{ref.event_id}/")
    assert wrong_project.status_code == 404
    assert wrong_project.json() == {"detail": "Event not found"}
    unknown = client.get(f"api/0/projects/acme/{big.project.slug}/events/{'0' * 32}/")
    assert unknown.json() == {"detail": "Event not found"}


def test_event_id_lookup(client: httpx.Client, org: SimulatedOrg, big: Issue) -> None:
    ref = org.page(big.segments, 0, 2**62, 1, 1)[0][0]
    body = client.get(f"api/0/organizations/acme/eventids/{ref.event_id}/").json()
    assert set(body) == set(example("api_resolveOrganizationEventId__EventExample.json"))
    assert body["organizationSlug"] == "acme"
    assert body["projectSlug"] == big.project.slug
    assert body["groupId"] == str(big.id)
    assert body["eventId"] == ref.event_id
    assert body["event"]["eventID"] == ref.event_id
    assert "entries" in body["event"]
    assert client.get("api/0/organizations/acme/eventids/not-an-id/").status_code == 400
    unknown = client.get(f"api/0/organizations/acme/eventids/{'0' * 32}/")
    assert unknown.status_code == 404


# --- auth, routing -----------------------------------------------------------------------------


def test_auth_errors(server: SimulatorServer) -> None:
    url = f"{server.url}api/0/organizations/acme/projects/"
    missing = httpx.get(url)
    assert missing.status_code == 401
    assert missing.json() == {"detail": "Authentication credentials were not provided."}
    wrong = httpx.get(url, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert wrong.json() == {"detail": "Invalid token"}
    expired = httpx.get(url, headers={"Authorization": "Bearer old-token"})
    assert expired.json() == {"detail": "Token expired"}
    scopeless = httpx.get(url, headers={"Authorization": "Bearer noscope"})
    assert scopeless.status_code == 403
    assert scopeless.json() == {"detail": "You do not have permission to perform this action."}


def test_routing_errors(client: httpx.Client, big: Issue) -> None:
    no_slash = client.get(f"api/0/organizations/acme/issues/{big.id}/events")
    assert no_slash.status_code == 404
    assert "trailing slash" in no_slash.json()["detail"]
    assert client.get("api/0/organizations/other/projects/").json() == {
        "detail": "The requested resource does not exist"
    }
    assert client.get("api/0/organizations/acme/issues/1/").status_code == 404
    assert client.post("api/0/organizations/acme/projects/").status_code == 405


def test_keep_alive_reuses_one_connection(server: SimulatorServer, big: Issue) -> None:
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {TOKEN}"}) as c:
        first = c.get(f"api/0/organizations/acme/issues/{big.id}/events/", extensions={})
        assert first.http_version == "HTTP/1.1"
        assert int(first.headers["content-length"]) == len(first.content)
        for _ in range(5):
            c.get(f"api/0/organizations/acme/issues/{big.id}/")
        pool = c._transport._pool  # type: ignore[attr-defined]
        assert len(pool.connections) == 1


def test_url_prefix_sets_link_and_permalink_base(org: SimulatedOrg, big: Issue) -> None:
    config = SimulatorConfig(url_prefix="https://acme.sentry.io")
    with (
        SimulatorServer(org, config=config) as srv,
        httpx.Client(base_url=srv.url, headers={"Authorization": f"Bearer {TOKEN}"}) as c,
    ):
        response = c.get(
            f"api/0/organizations/acme/issues/{big.id}/events/", params={"per_page": 1}
        )
        assert (
            link(response)["next_uri"]
            == f"https://acme.sentry.io/api/0/organizations/acme/issues/{big.id}/events/?per_page=1"
        )
        issue = c.get(f"api/0/organizations/acme/issues/{big.id}/").json()
        assert issue["permalink"] == f"https://acme.sentry.io/organizations/acme/issues/{big.id}/"


def test_head_has_headers_only(client: httpx.Client, big: Issue) -> None:
    response = client.head(f"api/0/organizations/acme/issues/{big.id}/events/")
    assert response.status_code == 200
    assert response.content == b""
    assert int(response.headers["content-length"]) > 0
    assert "link" in response.headers


def test_date_header_follows_the_data_clock(client: httpx.Client, org: SimulatedOrg) -> None:
    """Clients pin windows on the server's Date; with a frozen data clock it must say so."""
    response = client.get("api/0/organizations/acme/projects/")
    date = email.utils.parsedate_to_datetime(response.headers["date"])
    assert int(date.timestamp()) == int(org.now())
