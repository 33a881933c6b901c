"""The facts the views read (``events.day``, ``user_key``, raised exception, crash frame).

Written by ``normalize.event_facts`` for new events, backfilled by migration 0004 for events
archived before it: both must agree with each other and with what the 0003 views computed.
"""

from __future__ import annotations

import datetime as dt
import random
import string
from typing import Any

import pytest
from sqlalchemy import Engine, inspect, text

from archiver.normalize import INDEXED_MAX, NormalizedEvent, event_facts, normalize_event
from archiver.storage import db
from archiver.storage.models import EVENTS
from archiver.storage.store import Store
from scripts.cookbook import cell
from tests.helpers import drop_pg_database, new_pg_database
from tests.storage.old_frames import write_old_children
from tests.storage.test_views import (
    API,
    BOOM,
    JS,
    SLOW,
    VIEWS,
    WEB,
    archive,
    event,
    frame,
    projects_and_issues,
)

FACTS = (
    "day",
    "user_key",
    "exception_position",
    "exception_type",
    "crash_position",
    "crash_function",
    "crash_module",
    "crash_filename",
    "crash_lineno",
)


def facts_of(payload: dict[str, Any]) -> dict[str, Any]:
    ev = normalize_event(payload)
    return {k: ev.event[k] for k in FACTS}


def test_facts_of_a_chained_exception():
    (_, _, _, _, slow, _) = archive()
    assert facts_of(slow) == {
        "day": dt.date(2024, 5, 2),
        "user_key": "ip:10.0.0.1",
        "exception_position": 1,
        "exception_type": "TimeoutError",
        # the top in-app frame of the raised exception, not the library frame above it
        "crash_position": 1,
        "crash_function": "fetch",
        "crash_module": "app.fetch",
        "crash_filename": "fetch.py",
        "crash_lineno": 42,
    }


def test_user_key_takes_id_then_email_then_username_then_ip():
    def key(user: dict[str, Any] | None) -> str | None:
        return facts_of(event(1, "2024-05-01T00:00:00Z", issue=1, project=1, exc=[], user=user))[
            "user_key"
        ]

    assert key({"id": "u1", "email": "a@example.com", "ip_address": "10.0.0.1"}) == "id:u1"
    assert key({"id": "", "email": "a@example.com"}) == "id:"  # like COALESCE: '' is a value
    assert key({"email": "a@example.com", "username": "ann"}) == "email:a@example.com"
    assert key({"username": "ann", "ip_address": "10.0.0.1"}) == "username:ann"
    assert key({"ip_address": "10.0.0.1"}) == "ip:10.0.0.1"
    assert key({"name": "Ann"}) is None
    assert key(None) is None
    assert key({"id": "x" * 5000}) == "id:" + "x" * (INDEXED_MAX - 3)


def test_no_exception_no_in_app_frame_and_no_date():
    message = event(1, "2024-05-01T00:00:00Z", issue=1, project=1, exc=[])
    del message["dateCreated"]
    assert facts_of(message) == dict.fromkeys(FACTS)
    vendor = facts_of(
        event(
            2,
            "2024-05-01T23:00:00-02:00",
            issue=1,
            project=1,
            exc=[("TypeError", [frame("vendor", False)])],
        )
    )
    assert vendor["day"] == dt.date(2024, 5, 2)  # the UTC day
    assert (vendor["exception_position"], vendor["exception_type"]) == (0, "TypeError")
    assert vendor["crash_position"] is vendor["crash_function"] is None


def test_raw_frames_and_unknown_in_app_are_not_crash_frames():
    children: dict[str, list[dict[str, Any]]] = {
        "exceptions": [{"position": 0, "type": None, "is_last": True}],
        "frames": [
            {
                "stack_kind": "exception",
                "stack_index": 0,
                "is_raw": False,
                "position": 0,
                "function": "mine",
                "module": None,
                "filename": None,
                "lineno": None,
                "in_app": True,
            },
            {
                "stack_kind": "exception",
                "stack_index": 0,
                "is_raw": False,
                "position": 1,
                "function": "unknown",
                "in_app": None,
            },
            {
                "stack_kind": "exception",
                "stack_index": 0,
                "is_raw": True,
                "position": 2,
                "function": "raw",
                "in_app": True,
            },
            {
                "stack_kind": "thread",
                "stack_index": 0,
                "is_raw": False,
                "position": 3,
                "function": "thread",
                "in_app": True,
            },
        ],
    }
    facts = event_facts({"date_created": dt.datetime(2024, 5, 1, 23, 30)}, children)
    assert facts == {
        "day": dt.date(2024, 5, 1),
        "user_key": None,  # a naive datetime is UTC
        "exception_position": 0,
        "exception_type": None,  # an exception without a type counts
        "crash_position": 0,
        "crash_function": "mine",
        "crash_module": None,
        "crash_filename": None,
        "crash_lineno": None,
    }


# --------------------------------------------------------------------------- migration 0004


def odd_archive() -> list[dict[str, Any]]:
    """``archive()`` of test_views and the shapes the backfill must get right too."""
    no_type = event(
        7,
        "2024-05-03T01:00:00Z",
        issue=JS,
        project=WEB,
        exc=[("X", [frame("a", True, 5), {"function": "b", "inApp": None, "lineNo": 6}])],
        user={"username": "ann"},
    )
    no_type["entries"][0]["data"]["values"][0]["type"] = None
    no_date = event(
        8,
        "2024-05-03T02:00:00Z",
        issue=BOOM,
        project=API,
        exc=[],
        user={"id": "", "email": "e@example.com"},
    )
    del no_date["dateCreated"]
    raw_only = event(
        9,
        "2024-05-03T03:00:00+05:00",
        issue=SLOW,
        project=API,
        exc=[("KeyError", [frame("lib", False)])],
        env=None,
    )
    raw_only["entries"][0]["data"]["values"][0]["rawStacktrace"] = {
        "frames": [frame("raw_main", True, 9)]
    }
    return [*archive(), no_type, no_date, raw_only]


def write(engine: Engine, events: list[NormalizedEvent]) -> None:
    store = Store(engine)
    with store.transaction() as conn:
        projects_and_issues(store, conn)
        store.write_events(conn, events)


def write_0003(engine: Engine, events: list[NormalizedEvent]) -> None:
    """What a writer before 0004 stored: the same rows, without the facts columns."""
    store = Store(engine)
    with store.transaction() as conn:
        projects_and_issues(store, conn)
        rows = [{k: v for k, v in ev.event.items() if k not in FACTS} for ev in events]
        store.upsert(conn, EVENTS, rows, keys=["project_id", "event_id"])
        pks = store._existing(conn, [(ev.project_id, ev.event_id) for ev in events])
        for ev in events:
            pk = pks[(ev.project_id, ev.event_id)][0]
            write_old_children(store, conn, pk, ev)


def snapshot(engine: Engine) -> dict[str, list[tuple[str, ...]]]:
    """Every view's rows and every event's facts, as text, in a fixed order."""
    out: dict[str, list[tuple[str, ...]]] = {}
    with engine.connect() as conn:
        for view in sorted(VIEWS):
            out[view] = sorted(
                tuple(cell(v) for v in r) for r in conn.execute(text(f"SELECT * FROM {view}"))
            )
        columns = ", ".join(FACTS)
        if "day" in {c["name"] for c in inspect(conn).get_columns("events")}:
            out["facts"] = [
                tuple(cell(v) for v in r)
                for r in conn.execute(
                    text(f"SELECT event_id, {columns} FROM events ORDER BY event_id")
                )
            ]
    return out


@pytest.mark.slow
def test_upgrade_backfills_what_the_writer_writes(empty_db_url: str, tmp_path: Any):
    """An archive written before 0004 and upgraded answers like one written after it."""
    old = db.make_engine(empty_db_url)
    db.upgrade(old, "0003")
    write_0003(old, [normalize_event(p) for p in odd_archive()])
    before = snapshot(old)
    assert "facts" not in before
    assert before["v_crash_frames"]
    db.upgrade(old)
    after = snapshot(old)
    old.dispose()

    if empty_db_url.startswith("sqlite"):
        url, admin = f"sqlite:///{tmp_path}/fresh.db", None
    else:  # the same backend: both archives must agree cell for cell
        url, admin = new_pg_database()
    try:
        fresh = db.make_engine(url)
        db.upgrade(fresh)
        write(fresh, [normalize_event(p) for p in odd_archive()])
        written = snapshot(fresh)
        fresh.dispose()
    finally:
        if admin is not None:
            drop_pg_database(url, admin)

    assert {v: after[v] for v in VIEWS} == {v: before[v] for v in VIEWS}  # 0003's answers
    assert after == written
    assert (
        "0" * 31 + "9",
        "2024-05-02",
        "NULL",
        "0",
        "KeyError",
        "NULL",
        "NULL",
        "NULL",
        "NULL",
        "NULL",
    ) in after["facts"]  # a raw (unsymbolicated) in-app frame is no crash


def test_the_longest_crash_text_fits_every_index(engine: Engine):
    """Exception type, frame function, module and file of 1,000 incompressible characters each.

    A PostgreSQL index entry holds at most 2,704 bytes: the indexes with three such columns
    exist on SQLite only, and the event is archived on both databases.
    """
    rnd = random.Random(6)

    def noise() -> str:
        return "".join(rnd.choice(string.ascii_letters + string.digits) for _ in range(1500))

    exc_type, function, module, filename, user = noise(), noise(), noise(), noise(), noise()
    payload = event(
        1,
        "2024-05-01T00:00:00Z",
        issue=BOOM,
        project=API,
        user={"id": user},
        exc=[
            (
                exc_type,
                [
                    {
                        "function": function,
                        "module": module,
                        "filename": filename,
                        "lineNo": 1,
                        "inApp": True,
                    }
                ],
            )
        ],
    )
    write(engine, [normalize_event(payload)])
    with engine.connect() as conn:
        crash = conn.execute(
            text("SELECT exception_type, function, module, filename FROM v_crash_frames")
        ).one()
        (user_key,) = conn.execute(text("SELECT user_key FROM v_events")).one()
    assert tuple(crash) == (
        exc_type[:INDEXED_MAX],
        function[:INDEXED_MAX],
        module[:INDEXED_MAX],
        filename[:INDEXED_MAX],
    )
    assert user_key == ("id:" + user)[:INDEXED_MAX]
    indexes = {ix["name"] for ix in inspect(engine).get_indexes("events")}
    sqlite_only = {"ix_events_day_exceptions", "ix_events_crash_frames"}
    assert sqlite_only <= indexes if engine.dialect.name == "sqlite" else not sqlite_only & indexes
    assert "ix_events_day_users" in indexes
