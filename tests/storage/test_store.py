"""The store on SQLite and PostgreSQL: idempotent, bulk, richer payloads win."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from sqlalchemy import text

from archiver.normalize import CHILD_NAMES, normalize_event
from archiver.storage.store import IssueWalkRow, Store
from tests.helpers import orphans

FIXTURES = Path(__file__).resolve().parents[2] / "archiver" / "simulator" / "fixtures"
CHILDREN = list(CHILD_NAMES)


def seed_events():
    return [
        normalize_event(p, project_id=11, issue_id=22, has_detail=i < 2)
        for i, p in enumerate(seed_payloads())
    ]


def seed_payloads():
    payloads = [
        json.loads((FIXTURES / "seed_000_event_detail.json").read_text()),
        json.loads((FIXTURES / "seed_004_latest_event.json").read_text()),
        json.loads((FIXTURES / "seed_002_eventid_lookup.json").read_text())["event"],
    ]
    payloads[1]["eventID"] = "b" * 32  # 000 and 004 share their id in the docs
    payloads.extend(json.loads((FIXTURES / "seed_003_issue_events.json").read_text()))
    return payloads


def counts(engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()
            for t in ["events", *CHILDREN]
        }


def test_seed_rows_land_exactly(engine):
    store = Store(engine)
    with store.transaction() as conn:
        result = store.write_events(conn, seed_events())
    assert result.inserted == 4
    with engine.connect() as conn:
        pk = conn.execute(
            text("SELECT id FROM events WHERE event_id = '9999aaaaca8b46d797c23c6077c6ff01'")
        ).scalar_one()
        tags = conn.execute(
            text("SELECT key, value FROM event_tags WHERE event_pk = :p ORDER BY position"),
            {"p": pk},
        ).all()
        exc = conn.execute(text("SELECT type FROM exceptions WHERE event_pk = :p"), {"p": pk}).all()
        frames = conn.execute(
            text(
                "SELECT is_raw, count(*) FROM frames WHERE event_pk = :p"
                " GROUP BY is_raw ORDER BY is_raw"
            ),
            {"p": pk},
        ).all()
        crumbs = conn.execute(
            text("SELECT count(*) FROM breadcrumbs WHERE event_pk = :p"), {"p": pk}
        ).scalar_one()
        url = conn.execute(
            text("SELECT url FROM requests WHERE event_pk = :p"), {"p": pk}
        ).scalar_one()
        ctx = {
            r[0]
            for r in conn.execute(text("SELECT key FROM contexts WHERE event_pk = :p"), {"p": pk})
        }
        created = conn.execute(
            text("SELECT date_created FROM events WHERE id = :p"), {"p": pk}
        ).scalar_one()
    assert len(tags) == 6
    assert tags[0] == ("browser", "Chrome 83.0.4103")
    assert exc == [("ForbiddenError",)]
    assert [tuple(r) for r in frames] == [(False, 2), (True, 2)]
    assert crumbs == 3
    assert url.startswith("https://sentry.io/")
    assert {"browser", "os"} <= ctx
    assert str(created).startswith("2020-06-17")


def test_rearchiving_changes_nothing(engine):
    store = Store(engine)
    with store.transaction() as conn:
        store.write_events(conn, seed_events())
    before = counts(engine)
    with engine.connect() as conn:
        stamps = conn.execute(text("SELECT id, updated_at FROM events ORDER BY id")).all()
    with store.transaction() as conn:
        again = store.write_events(conn, seed_events() + seed_events())
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 4)
    assert counts(engine) == before
    with engine.connect() as conn:
        assert conn.execute(text("SELECT id, updated_at FROM events ORDER BY id")).all() == stamps


def test_a_changed_payload_replaces_children_never_appends(engine):
    store = Store(engine)
    events = seed_events()
    with store.transaction() as conn:
        store.write_events(conn, events)
    before = counts(engine)
    payload = json.loads(events[0].event["raw_json"])
    changed = copy.deepcopy(payload)
    changed["tags"] = changed["tags"][:2]
    with store.transaction() as conn:
        result = store.write_events(
            conn, [normalize_event(changed, project_id=11, has_detail=True)]
        )
    assert result.updated == 1
    after = counts(engine)
    assert after["events"] == before["events"]
    assert after["event_tags"] == before["event_tags"] - 4
    assert after["frames"] == before["frames"]


def test_a_poorer_payload_never_replaces_a_richer_one(engine):
    store = Store(engine)
    events = seed_events()
    with store.transaction() as conn:
        store.write_events(conn, events[:1])
    slim = {k: v for k, v in json.loads(events[0].event["raw_json"]).items() if k != "entries"}
    with store.transaction() as conn:
        result = store.write_events(conn, [normalize_event(slim, project_id=11)])
    assert result.unchanged == 1
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM frames")).scalar_one() == 4


def test_rows_and_checkpoint_commit_together(engine):
    store = Store(engine)
    walk = IssueWalkRow(
        issue_id=22,
        project_id=11,
        status="walking",
        synced_until=None,
        walk_start=None,
        walk_end=None,
        walk_cursor="0:100:0",
        walk_events=100,
    )
    try:
        with store.transaction() as conn:
            store.ensure_issues(conn, {22: 11})
            store.write_events(conn, seed_events())
            store.save_issue_walk(conn, walk)
            raise RuntimeError("killed mid-page")
    except RuntimeError:
        pass
    assert counts(engine)["events"] == 0
    with store.transaction() as conn:
        assert store.issue_walk(conn, 22) is None
        store.ensure_issues(conn, {22: 11})
        store.write_events(conn, seed_events())
        store.save_issue_walk(conn, walk)
    with store.transaction() as conn:
        assert store.issue_walk(conn, 22) == walk


def test_deleting_an_event_row_cascades_on_sqlite_only(engine):
    """SQLite deletes the child rows with their event (ON DELETE CASCADE); PostgreSQL has no
    foreign key to do it (migration 0008): whatever deletes events deletes their rows first."""
    store = Store(engine)
    with store.transaction() as conn:
        store.write_events(conn, seed_events())
    with store.transaction() as conn:
        conn.execute(text("DELETE FROM events"))
    if engine.dialect.name == "sqlite":
        assert set(counts(engine).values()) == {0}
        assert orphans(engine) == {}
    else:
        assert counts(engine)["events"] == 0
        assert {"event_tags", "breadcrumbs", "event_stacks"} <= orphans(engine).keys()


def test_a_replaced_event_keeps_only_its_new_rows(engine):
    """A changed payload replaces its event's rows (never appends): the writer deletes the old
    ones itself, and none is left without its event."""
    store = Store(engine)
    events = seed_events()
    with store.transaction() as conn:
        store.write_events(conn, events)
    before = counts(engine)
    changed = []
    for payload in seed_payloads():
        payload["tags"] = (payload.get("tags") or [])[:1]
        payload["entries"] = [{"type": "message", "data": {"formatted": "replaced"}}]
        changed.append(normalize_event(payload, project_id=11, issue_id=22, has_detail=True))
    with store.transaction() as conn:
        assert store.write_events(conn, changed).updated == len(events)
    after = counts(engine)
    assert after["events"] == before["events"]
    assert after["event_tags"] == sum(len(ev.children["event_tags"]) for ev in changed)
    assert before["breadcrumbs"] > 0
    assert before["frames"] > 0
    with engine.connect() as conn:
        for table in ("breadcrumbs", "event_stacks", "frame_vars", "exceptions", "requests"):
            assert conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one() == 0, table
    assert orphans(engine) == {}


def test_times_seen_of_more_issues_than_one_statement_may_name(engine):
    """A first backfill of a big organisation orders all its walks by size (PostgreSQL takes
    at most 65,535 parameters in one statement)."""
    store = Store(engine)
    with store.transaction() as conn:
        store.upsert_issues(
            conn,
            [
                {"id": 7, "project_id": 1, "times_seen": 12},
                {"id": 69_999, "project_id": 1, "times_seen": 3},
            ],
        )
        found = store.times_seen(conn, list(range(1, 70_001)))
    assert found == {7: 12, 69_999: 3}
