"""An event whose detail request answers something unusable never fails the rest of its issue.

A listed event that needs the event detail endpoint (``detail = always`` here; a list item
without its ``entries`` alike) can get an answer the walk cannot use: a body that is not JSON
on every retry, JSON that is not an object, an object without the event's id or with another
event's, or a 404 (Sentry's Correction 6: an event whose body nodestore lost answers 404 by
id). Like a malformed list item, the event is archived from what the list gave (its listed
copy, ``has_detail`` false) with an ``event_problems`` row saying why, counted in the run's
summary, and the rest of its issue is archived as usual.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from archiver.errors import ExitCode
from archiver.simulator import SimulatedOrg, SimulatorConfig, SimulatorServer
from archiver.sync.runner import SyncOutcome, counts, execute_sync, summary_lines
from tests.helpers import archived, query_rows, simulated, sync_settings
from tests.sync.test_malformed_events import RewritingProxy

pytestmark = pytest.mark.slow  # end-to-end: real syncs against the simulator

TOKEN = "sim-detail-token"
OTHER_ID = "f" * 32

org, server = simulated(TOKEN, seed=11, events=60)


def _new_events(org: SimulatedOrg) -> list[str]:
    """Three new events in one issue, due for the next walk (ids oldest first)."""
    ids = org.add_events(org.live_issues()[0].id, 3)
    org.advance(2)  # walks end before the server's current second
    return ids


def _sync(url: str, org: SimulatedOrg, db_url: str) -> SyncOutcome:
    settings = sync_settings(url, TOKEN, org, db_url, concurrency=2, detail="always", max_retries=1)
    outcome = execute_sync(settings)
    assert outcome.report.failures == []
    assert outcome.exit_code == ExitCode.OK
    return outcome


def _detail_of(target: str, change: Callable[[bytes], bytes]) -> Callable[[bytes], bytes]:
    """Rewrites the detail answer of event ``target`` (an object holding its id) only."""
    needle = f'"id":"{target}"'.encode()

    def rewrite(body: bytes) -> bytes:
        if body.startswith(b"{") and needle in body:
            return change(body)
        return body

    return rewrite


def _without_ids(body: bytes) -> bytes:
    payload = json.loads(body)
    del payload["id"], payload["eventID"]
    return json.dumps(payload).encode()


def _other_id(target: str) -> Callable[[bytes], bytes]:
    return lambda body: body.replace(target.encode(), OTHER_ID.encode())


def _assert_kept_as_listed(db_url: str, outcome: SyncOutcome, event_id: str) -> None:
    ((has_detail,),) = query_rows(
        db_url, "SELECT has_detail FROM events WHERE event_id = :eid", eid=event_id
    )
    assert not has_detail
    problems = query_rows(
        db_url,
        "SELECT p.path, p.problem FROM event_problems p JOIN events e ON e.id = p.event_pk "
        "WHERE e.event_id = :eid",
        eid=event_id,
    )
    assert ("$", "detail_unusable") in problems
    report = outcome.report
    assert [event_id in entry for entry in report.details_unusable] == [True]
    assert counts(outcome)["events_detail_unusable"] == 1
    assert any("detail unusable" in line and event_id in line for line in summary_lines(outcome))
    # The other events of the run came with their detail, as always.
    ((others,),) = query_rows(
        db_url, "SELECT count(*) FROM events WHERE has_detail AND event_id != :eid", eid=event_id
    )
    assert others == len(archived(db_url)) - 1


@pytest.mark.parametrize(
    "kind", ["invalid_json", "not_an_object", "no_id", "another_event", "empty_object"]
)
def test_an_unusable_detail_keeps_the_listed_copy_and_the_rest_of_the_issue(
    db_url: str, org: SimulatedOrg, server: SimulatorServer, kind: str
) -> None:
    ids = _new_events(org)
    target = ids[1]
    change: Callable[[bytes], bytes] = {
        "invalid_json": lambda body: body[: len(body) // 2],
        "not_an_object": lambda body: b"[" + body + b"]",
        "no_id": _without_ids,
        "another_event": _other_id(target),
        "empty_object": lambda body: b"{}",
    }[kind]
    with RewritingProxy(server.url, _detail_of(target, change)) as proxy:
        outcome = _sync(proxy.url, org, db_url)
    assert proxy.served, "the proxy never rewrote the event's detail"
    assert archived(db_url) == org.truth()  # the event under its own id, and the rest
    _assert_kept_as_listed(db_url, outcome, target)


def test_a_list_item_without_its_entries_whose_detail_is_unusable(
    db_url: str, org: SimulatedOrg, server: SimulatorServer
) -> None:
    """The ordinary setting (``detail = auto``): only an item listed without ``entries`` (a
    server that ignored ``full=true`` for it) asks for its detail."""
    ids = _new_events(org)
    target = ids[1]
    detail = _detail_of(target, lambda body: body[: len(body) // 2])

    def rewrite(body: bytes) -> bytes:
        if body.startswith(b"[") and target.encode() in body:
            items = json.loads(body)
            for item in items:
                if item.get("id") == target:
                    del item["entries"]
            return json.dumps(items).encode()
        return detail(body)

    with RewritingProxy(server.url, rewrite) as proxy:
        settings = sync_settings(proxy.url, TOKEN, org, db_url, concurrency=2, max_retries=1)
        outcome = execute_sync(settings)
    assert outcome.report.failures == []
    assert outcome.exit_code == ExitCode.OK
    assert archived(db_url) == org.truth()
    assert outcome.report.details_fetched == 0  # the only detail asked was unusable
    assert [target in entry for entry in outcome.report.details_unusable] == [True]
    ((has_detail, is_full, problems),) = query_rows(
        db_url,
        "SELECT has_detail, is_full, problem_count FROM events WHERE event_id = :eid",
        eid=target,
    )
    assert (bool(has_detail), bool(is_full), problems) == (False, False, 1)


def test_a_detail_answering_404_keeps_the_listed_copy(db_url: str, org: SimulatedOrg) -> None:
    ids = _new_events(org)
    config = SimulatorConfig(hollow_events=frozenset({ids[1]}))
    with SimulatorServer(org, token=TOKEN, config=config) as srv:
        outcome = _sync(srv.url, org, db_url)
    assert archived(db_url) == org.truth()
    _assert_kept_as_listed(db_url, outcome, ids[1])
