"""Issue Platform (performance) events are transactions: dated by endTimestamp, spans kept."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Engine, text

from archiver.normalize import normalize_event
from archiver.storage.store import Store

END = 1764672000.25  # 2025-12-02T10:40:00.25Z


def transaction(**overrides: Any) -> dict[str, Any]:
    """A list item of a performance issue's events, built from sentry-api.md's field list."""
    payload: dict[str, Any] = {
        "id": "c" * 32,
        "eventID": "c" * 32,
        "groupID": "77",
        "projectID": "11",
        "type": "transaction",
        "title": "GET /api/orders",
        "transaction": "GET /api/orders",
        "platform": "python",
        "startTimestamp": END - 1.5,
        "endTimestamp": END,
        "dateReceived": "2025-12-02T10:40:03.000000Z",
        "measurements": {"fcp": {"value": 120.0, "unit": "millisecond"}},
        "breakdowns": {"span_ops": {"ops.db": {"value": 900.0, "unit": "millisecond"}}},
        "entries": [
            {
                "type": "spans",
                "data": [
                    {
                        "span_id": "a" * 16,
                        "op": "db",
                        "description": "SELECT 1",
                        "start_timestamp": END - 1.4,
                        "timestamp": END - 1.3,
                    },
                ],
            },
            {"type": "request", "data": {"method": "GET", "url": "https://x.test/api/orders"}},
        ],
        "contexts": {"trace": {"type": "trace", "op": "http.server"}},
        "user": None,
        "sdk": {"name": "sentry.python", "version": "2.0.0"},
        "tags": [{"key": "transaction", "value": "GET /api/orders"}],
        "occurrence": None,
    }
    payload.update(overrides)
    return payload


def test_a_transaction_is_dated_by_its_end() -> None:
    ev = normalize_event(transaction())
    row = ev.event
    assert row["type"] == "transaction"
    assert row["date_created"] == dt.datetime.fromtimestamp(END, dt.timezone.utc)
    assert row["day"] == dt.date(2025, 12, 2)
    assert row["is_full"] is True
    assert [e["type"] for e in ev.children["event_entries"]] == ["spans", "request"]
    assert ev.children["event_entries"][0]["data"][0]["op"] == "db"
    assert ev.children["event_problems"] == []


def test_without_end_the_receive_time_dates_it() -> None:
    payload = transaction()
    del payload["endTimestamp"]
    row = normalize_event(payload).event
    assert row["date_created"] == dt.datetime(2025, 12, 2, 10, 40, 3, tzinfo=dt.timezone.utc)


def test_transactions_are_stored_and_read_by_the_views(engine: Engine) -> None:
    store = Store(engine)
    with store.transaction() as conn:
        store.write_events(conn, [normalize_event(transaction())])
    with engine.connect() as conn:
        row = conn.execute(text("SELECT type, date_created, day FROM events")).one()
        assert row.type == "transaction"
        assert row.date_created is not None
        assert row.day is not None
        spans = (
            conn.execute(text("SELECT type FROM event_entries ORDER BY position")).scalars().all()
        )
        assert spans == ["spans", "request"]
        views = (
            conn.execute(
                text(
                    "SELECT name FROM sqlite_master WHERE type = 'view'"
                    if engine.dialect.name == "sqlite"
                    else "SELECT viewname FROM pg_views WHERE schemaname = 'public'"
                )
            )
            .scalars()
            .all()
        )
        for view in views:
            conn.execute(text(f"SELECT * FROM {view}")).all()
