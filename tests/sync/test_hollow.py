"""A hollow copy (nodestore lost the body) never replaces a complete archived event.

Sentry's API doc, Correction 6: such an event is still listed with its real id, groupID and
dateCreated, but ``entries: []``, empty contexts and null ``user``/``sdk``; ``latest`` serves
it hollow too, as a "detail". Either copy must leave the archived event byte for byte.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

from archiver.normalize import is_hollow, normalize_event
from archiver.storage.store import CHILD_TABLES, Store
from archiver.sync.report import SyncReport

FIXTURES = Path(__file__).resolve().parents[2] / "archiver" / "simulator" / "fixtures"
CHILDREN = sorted(CHILD_TABLES)  # every table hanging off events.id


def full_payload() -> dict[str, Any]:
    payload: dict[str, Any] = json.loads((FIXTURES / "seed_000_event_detail.json").read_text())
    return payload


def hollow_of(payload: dict[str, Any]) -> dict[str, Any]:
    """The shape ``bind_nodes`` leaves when the body is gone: ids and date only."""
    return {
        "id": payload["id"],
        "eventID": payload.get("eventID", payload["id"]),
        "groupID": payload.get("groupID"),
        "projectID": payload.get("projectID"),
        "dateCreated": payload["dateCreated"],
        "title": "<untitled>",
        "message": "",
        "entries": [],
        "contexts": {},
        "context": {},
        "user": None,
        "sdk": None,
        "tags": [],
    }


def snapshot(engine: Engine) -> dict[str, Any]:
    with engine.connect() as conn:
        out: dict[str, Any] = {
            "events": conn.execute(
                text(
                    "SELECT raw_json, raw_zstd, raw_sha256, is_full, has_detail, updated_at "
                    "FROM events"
                )
            ).all()
        }
        for name in CHILDREN:
            out[name] = sorted(map(repr, conn.execute(text(f"SELECT * FROM {name}")).all()))
    return out


def test_a_hollow_payload_is_recognised() -> None:
    full = full_payload()
    assert not is_hollow(full)
    assert is_hollow(hollow_of(full))
    ev = normalize_event(hollow_of(full), project_id=11, issue_id=22)
    assert ev.event["is_full"] is False


def test_hollow_copies_never_replace_a_full_event(engine: Engine) -> None:
    store = Store(engine)
    full = full_payload()
    with store.transaction() as conn:
        store.write_events(conn, [normalize_event(full, project_id=11, issue_id=22)])
    before = snapshot(engine)
    assert before["events"][0].is_full
    hollow = hollow_of(full)
    report = SyncReport()
    for has_detail in (False, True):  # the list's copy, then latest's
        with store.transaction() as conn:
            result = store.write_events(
                conn, [normalize_event(copy.deepcopy(hollow), project_id=11, has_detail=has_detail)]
            )
        assert (result.inserted, result.updated, result.hollow_ignored) == (0, 0, 1)
        report.add(result)
    assert snapshot(engine) == before
    assert report.events_hollow_ignored == 2


def test_a_hollow_event_seen_first_is_archived_and_marked(engine: Engine) -> None:
    store = Store(engine)
    hollow = hollow_of(full_payload())
    with store.transaction() as conn:
        result = store.write_events(conn, [normalize_event(hollow, project_id=11, issue_id=22)])
    assert (result.inserted, result.hollow_ignored) == (1, 0)
    with engine.connect() as conn:
        row = conn.execute(text("SELECT is_full, date_created FROM events")).one()
    assert not row.is_full
    assert row.date_created is not None
    # and the complete copy, when it comes back, replaces it
    with store.transaction() as conn:
        result = store.write_events(conn, [normalize_event(full_payload(), project_id=11)])
    assert result.updated == 1
    with engine.connect() as conn:
        assert conn.execute(text("SELECT is_full FROM events")).scalar_one()
