"""End to end: what a complete archiver walk reaches equals the simulator's truth().

Also: the seed fixtures are served among the events, and ``python -m archiver.simulator`` runs.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from archiver.simulator import SimulatedOrg, SimulatorServer
from archiver.simulator.data import DAY
from archiver.simulator.fixtures import DETAIL_ONLY_KEYS, FIXTURES_DIR, load_fixture_events

TOKEN = "sim-token"
NEXT = re.compile(r'rel="next"; results="(true|false)"; cursor="([^"]+)"')
ROOT = Path(__file__).resolve().parents[2]


def walk(client: httpx.Client, url: str, params: dict[str, Any]) -> list[Any]:
    items: list[Any] = []
    cursor = ""
    while True:
        response = client.get(url, params={**params, "cursor": cursor})
        assert response.status_code == 200, response.text
        items += response.json()
        match = NEXT.search(response.headers["link"])
        assert match
        if match.group(1) == "false":
            return items
        cursor = match.group(2)


def iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, tz=dt.timezone.utc).isoformat()


@pytest.fixture(scope="module")
def org() -> SimulatedOrg:
    return SimulatedOrg(seed=17, events=4_000)


@pytest.fixture(scope="module")
def client(org: SimulatedOrg) -> Iterator[httpx.Client]:
    with (
        SimulatorServer(org) as server,
        httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {TOKEN}"}) as c,
    ):
        yield c


@pytest.mark.slow
def test_archive_walk_equals_truth(client: httpx.Client, org: SimulatedOrg) -> None:
    window = {
        "start": iso(org.now() - (org.retention_days + 1) * DAY),
        "end": iso(int(org.now()) + 1),
    }
    issues = walk(
        client, f"api/0/organizations/{org.slug}/issues/", {"query": "", "limit": 25, **window}
    )
    seen: list[tuple[int, str]] = []
    for issue in issues:
        for event in walk(
            client,
            f"api/0/organizations/acme/issues/{issue['id']}/events/",
            {"full": "true", **window},
        ):
            seen.append(
                (
                    int(event["projectID"])
                    if "projectID" in event
                    else int(issue["project"]["id"]),
                    event["eventID"],
                )
            )
    assert len(seen) == len(set(seen))
    assert set(seen) == org.truth()


def test_project_event_lists_equal_truth(client: httpx.Client, org: SimulatedOrg) -> None:
    seen = set()
    for project in walk(client, f"api/0/organizations/{org.slug}/projects/", {}):
        for event in walk(client, f"api/0/projects/{org.slug}/{project['slug']}/events/", {}):
            seen.add((int(project["id"]), event["eventID"]))
    assert seen == org.truth(searchable_days=None)  # project event lists are never clipped


@pytest.mark.parametrize(
    "directory",
    [FIXTURES_DIR, Path("/work/shared/sentry-examples")],
    ids=["fixtures", "sentry-examples"],
)
def test_fixture_events_are_served_verbatim(directory: Path) -> None:
    fixtures = load_fixture_events(directory)
    if not fixtures:
        pytest.skip(f"no fixture events in {directory} yet")
    org = SimulatedOrg(seed=17, events=4_000, fixtures_dir=directory)
    rewritten = {"id", "eventID", "groupID", "projectID", "dateCreated", "dateReceived"}
    served = [i for i in org.issues if i.fixture is not None]
    assert len(served) == len(fixtures)
    with (
        SimulatorServer(org) as server,
        httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {TOKEN}"}) as client,
    ):
        for issue in served:
            assert issue.fixture is not None
            latest = client.get(f"api/0/organizations/acme/issues/{issue.id}/events/latest/").json()
            original = issue.fixture.body
            body = {k: v for k, v in latest.items() if k in original or k not in DETAIL_ONLY_KEYS}
            assert list(body) == list(original)
            assert {k: v for k, v in body.items() if k not in rewritten} == {
                k: v for k, v in original.items() if k not in rewritten
            }
            assert latest["groupID"] == str(issue.id)
            assert latest["eventID"] == latest["id"]
            if isinstance(issue.fixture.release, dict):
                # the release object is served from the simulator's release registry
                assert latest["release"]["version"] == issue.fixture.release["version"]
            listed = walk(
                client, f"api/0/organizations/acme/issues/{issue.id}/events/", {"full": "true"}
            )
            assert {e["eventID"] for e in listed} == {
                eid
                for _, eid in org.truth()
                if org.locate_event(eid).issue is issue  # type: ignore[union-attr]
            }
            slim = client.get(f"api/0/organizations/acme/issues/{issue.id}/events/").json()[0]
            assert slim["title"] == original.get("title")


def test_standalone_entry_point() -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "archiver.simulator",
            "--port",
            "0",
            "--events",
            "300",
            "--seed",
            "2",
            "--token",
            "cli-token",
            "--now",
            "2025-01-01T00:00:00Z",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        url, org_part, token_part = line.split()
        assert url.startswith("http://127.0.0.1:")
        assert org_part == "org=acme"
        assert token_part == "token=cli-token"
        response = httpx.get(
            f"{url}api/0/organizations/acme/projects/",
            headers={"Authorization": "Bearer cli-token"},
            timeout=10,
        )
        assert response.status_code == 200
        assert len(response.json()) == 3
        issues = httpx.get(
            f"{url}api/0/organizations/acme/issues/",
            params={"query": ""},
            headers={"Authorization": "Bearer cli-token"},
            timeout=10,
        ).json()
        assert all(i["lastSeen"] < "2025-01-01" for i in issues)
        assert issues
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_fixture_loader_reads_every_document_form(tmp_path: Path) -> None:
    event: dict[str, Any] = {
        "eventID": "a" * 32,
        "id": "a" * 32,
        "entries": [],
        "platform": "python",
        "release": {"version": "1.0"},
        "nextEventID": None,
    }
    (tmp_path / "detail.json").write_text(json.dumps(event))
    (tmp_path / "lookup.json").write_text(json.dumps({"eventId": "x", "event": event}))
    (tmp_path / "list.json").write_text(json.dumps([event, {"eventID": "b", "tags": []}]))
    (tmp_path / "broken.json").write_text("{not json")
    found = load_fixture_events(tmp_path)
    assert [f.name for f in found] == ["detail#0", "list#0", "lookup#0"]
    assert all("release" not in f.body and "nextEventID" not in f.body for f in found)
    assert found[0].release == {"version": "1.0"}
    org = SimulatedOrg(seed=1, events=500, fixtures_dir=tmp_path)
    assert sum(1 for i in org.issues if i.fixture is not None) == 3
