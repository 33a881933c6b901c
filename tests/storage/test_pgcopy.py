"""PostgreSQL's COPY write path: the same rows as the INSERT path, and the store's guarantees.

The store's other tests run on PostgreSQL through COPY already (it is the default there);
these compare it value for value with the INSERT path (``encode_event(copy=False)``) on text
that COPY's format must escape, and check what COPY changed: a staging table, child rows
copied straight in, a transaction rolled back after the staging table was made.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from archiver.normalize import NormalizedEvent, normalize_event
from archiver.storage import pgcopy
from archiver.storage.encode import EncodedEvent, copy_field, encode_event
from archiver.storage.models import CHILD_TABLES
from archiver.storage.stacks import collect_garbage
from archiver.storage.store import Store
from tests.helpers import (
    copy_fields,
    delete_events,
    event_row,
)

FIXTURES = Path(__file__).resolve().parents[2] / "archiver" / "simulator" / "fixtures"
CHILDREN = sorted(CHILD_TABLES)
# Text COPY's format must escape, or that a careless encoder would break.
ODD = [
    "tab\there",
    "line\nend",
    "carriage\r\nreturn",
    "back\\slash \\N \\t \\\\ end\\",
    "\\N",
    "unicode: é ü ß 漢字 🙂 עברית \u200b \u0301",
    "quotes ' \" and ;,|",
    "x" * 200_000,
    "",
]


def payload() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((FIXTURES / "seed_000_event_detail.json").read_text())
    return loaded


def odd_payload() -> dict[str, Any]:
    p = payload()
    p["message"] = "\n".join(ODD[:7])
    p["title"] = ODD[0] + ODD[3]
    p["tags"] = [*p.get("tags", []), *({"key": f"odd{i}", "value": v} for i, v in enumerate(ODD))]
    p["dateCreated"] = "2024-05-01T23:30:00.123456-07:00"  # another day in UTC
    p["contexts"] = {**(p.get("contexts") or {}), "odd": {"type": "odd", "values": ODD}}
    p["user"] = None
    frames = p["entries"][0]["data"]["values"][0]["stacktrace"]["frames"]
    frames[0].update(function=ODD[0] + ODD[3], module=ODD[5], vars={"odd": ODD[:7]})
    frames[1]["context"] = [[i, v] for i, v in enumerate(ODD, start=1)]
    return p


def normalized(p: dict[str, Any], project_id: int, **kw: Any) -> NormalizedEvent:
    return normalize_event(copy.deepcopy(p), project_id=project_id, issue_id=22, **kw)


def rows(engine: Engine, project_id: int) -> dict[str, list[tuple[Any, ...]]]:
    """Every stored row of the project's events, without keys, stamps or the project id."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    with engine.connect() as conn:
        events = conn.execute(
            text("SELECT * FROM events WHERE project_id = :p ORDER BY event_id"), {"p": project_id}
        ).mappings()
        skip = {"id", "project_id", "archived_at", "updated_at"}
        out["events"] = [tuple(v for k, v in r.items() if k not in skip) for r in events]
        for name in [*CHILDREN, "frames"]:  # the frames view: the stacks' frames as well
            found = conn.execute(
                text(
                    f"SELECT c.* FROM {name} c JOIN events e ON e.id = c.event_pk "
                    "WHERE e.project_id = :p"
                ),
                {"p": project_id},
            ).mappings()
            out[name] = sorted(
                (tuple(v for k, v in r.items() if k != "event_pk") for r in found), key=repr
            )
    return out


def test_copy_fields_round_trip() -> None:
    values = [*ODD, None]
    line = "\t".join(map(copy_field, values)).encode()
    assert b"\n" not in line
    assert copy_fields(line) == values


def test_postgresql_events_are_encoded_for_copy() -> None:
    ev = normalized(payload(), 11)
    copied = encode_event(ev, "postgresql")
    assert copied.copy is not None
    assert (copied.event, copied.children) == ((), {})
    assert encode_event(ev, "postgresql", copy=False).copy is None
    assert encode_event(ev, "sqlite").copy is None
    tuples = event_row(encode_event(ev, "postgresql", copy=False))
    assert event_row(copied)["raw_json"] == tuples["raw_json"]
    assert event_row(copied)["event_id"] == tuples["event_id"]


def test_copy_stores_what_insert_stores(pg_engine: Engine) -> None:
    store = Store(pg_engine)
    p = odd_payload()
    with store.transaction() as conn:
        result = store.write_events(
            conn, [encode_event(normalized(p, 11), "postgresql", copy=False)]
        )
        assert result.inserted == 1
        ev = encode_event(normalized(p, 12), "postgresql")
        assert ev.copy is not None
        assert store.write_events(conn, [ev]).inserted == 1
    by_insert, by_copy = rows(pg_engine, 11), rows(pg_engine, 12)
    assert by_copy == by_insert
    with pg_engine.connect() as conn:
        stored = conn.execute(
            text(
                "SELECT key, value FROM event_tags t JOIN events e ON e.id = t.event_pk "
                "WHERE e.project_id = 12 AND key LIKE 'odd%'"
            )
        )
        tags = sorted(tuple(r) for r in stored)
    expected = [(r["key"], r["value"]) for r in normalized(p, 12).children["event_tags"]]
    assert tags == sorted(t for t in expected if t[0].startswith("odd"))
    assert len(tags) == len(ODD)
    assert set(ODD[:7]) <= {value for _, value in tags}  # indexed text is cut at 1,000
    assert all(by_copy[name] for name in ("event_tags", "contexts", "frames", "frame_vars"))


def test_copy_stores_the_stack_frames_insert_stores(pg_engine: Engine) -> None:
    """A stack new to the archive: its frames go in by COPY as by INSERT, text escaped."""
    store = Store(pg_engine)
    p = odd_payload()
    with store.transaction() as conn:
        store.write_events(conn, [encode_event(normalized(p, 11), "postgresql", copy=False)])
    by_insert = rows(pg_engine, 11)
    with store.transaction() as conn:
        delete_events(conn)  # and their rows: no ON DELETE CASCADE on PostgreSQL
        stacks, frames = collect_garbage(conn)
    assert stacks > 0
    assert frames > 0
    with store.transaction() as conn:
        assert store.write_events(conn, [normalized(p, 12)]).inserted == 1
    by_copy = rows(pg_engine, 12)
    assert by_copy == by_insert
    assert ODD[5] in {f[7] for f in by_copy["frames"]}  # module


def test_same_page_twice_leaves_one_copy(pg_engine: Engine) -> None:
    store = Store(pg_engine)
    page: list[NormalizedEvent | EncodedEvent] = [normalized(odd_payload(), 11)]
    page.append(normalized(odd_payload(), 11))  # the same event twice in one batch
    with store.transaction() as conn:
        assert store.write_events(conn, page).inserted == 1
    once = rows(pg_engine, 11)
    with store.transaction() as conn:
        result = store.write_events(conn, page)
    assert (result.inserted, result.updated, result.unchanged) == (0, 0, 1)
    assert rows(pg_engine, 11) == once
    with pg_engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM events")).scalar_one() == 1


def test_an_updated_event_has_its_child_rows_replaced(pg_engine: Engine) -> None:
    store = Store(pg_engine)
    first = payload()
    with store.transaction() as conn:
        store.write_events(conn, [normalized(first, 11)])
    with pg_engine.connect() as conn:
        archived_at = conn.execute(text("SELECT archived_at FROM events")).scalar_one()
    changed = copy.deepcopy(first)
    changed["tags"] = [{"key": "only", "value": "this\tone"}]
    with store.transaction() as conn:
        assert store.write_events(conn, [normalized(changed, 11)]).updated == 1
    with pg_engine.connect() as conn:
        tags = conn.execute(text("SELECT key, value FROM event_tags")).all()
        stored = conn.execute(text("SELECT count(*), min(archived_at) FROM events")).one()
    assert [tuple(t) for t in tags] == [("only", "this\tone")]
    assert tuple(stored) == (1, archived_at)


def test_a_hollow_copy_never_replaces_a_complete_one(pg_engine: Engine) -> None:
    store = Store(pg_engine)
    full = payload()
    with store.transaction() as conn:
        store.write_events(conn, [normalized(full, 11, has_detail=True)])
    before = rows(pg_engine, 11)
    hollow = {k: full[k] for k in ("id", "eventID", "dateCreated")}
    hollow.update(title="<untitled>", message="", entries=[], contexts={}, tags=[])
    with store.transaction() as conn:
        result = store.write_events(conn, [normalized(hollow, 11, has_detail=True)])
    assert (result.updated, result.hollow_ignored) == (0, 1)
    assert rows(pg_engine, 11) == before


def write_then_fail(store: Store) -> None:
    with store.transaction() as conn:
        store.write_events(conn, [normalized(payload(), 11)])
        raise RuntimeError("abort")


def test_a_rolled_back_write_leaves_the_next_one_working(pg_engine: Engine) -> None:
    """The staging table made in a rolled-back transaction is gone; the next write makes it
    again, and batches after the first in one transaction find it empty."""
    store = Store(pg_engine)
    with pytest.raises(RuntimeError, match="abort"):
        write_then_fail(store)
    with store.transaction() as conn:
        assert store.write_events(conn, [normalized(payload(), 11)]).inserted == 1
        assert store.write_events(conn, [normalized(odd_payload(), 12)]).inserted == 1
    with pg_engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM events")).scalar_one() == 2


def test_a_batch_of_new_and_changed_events(pg_engine: Engine) -> None:
    """New events are copied straight into ``events``, changed ones through the staging
    table; both get their own child rows in the same batch."""
    store = Store(pg_engine)
    first = payload()
    with store.transaction() as conn:
        store.write_events(conn, [normalized(first, 11)])
    changed = copy.deepcopy(first)
    changed["tags"] = [{"key": "changed", "value": "yes"}]
    other = copy.deepcopy(first)
    other.update(id="c" * 32, eventID="c" * 32, tags=[{"key": "new", "value": "yes"}])
    with store.transaction() as conn:
        result = store.write_events(conn, [normalized(changed, 11), normalized(other, 11)])
    assert (result.inserted, result.updated) == (1, 1)
    with pg_engine.connect() as conn:
        tags = conn.execute(
            text("SELECT e.event_id, t.key FROM event_tags t JOIN events e ON e.id = t.event_pk")
        ).all()
    assert sorted(tuple(t) for t in tags) == [
        (first["eventID"], "changed"),
        ("c" * 32, "new"),
    ]


def test_the_raw_json_is_compressed_with_lz4(pg_engine: Engine) -> None:
    with pg_engine.connect() as conn:
        values = conn.execute(
            text("SELECT enumvals FROM pg_settings WHERE name = 'default_toast_compression'")
        ).scalar()
    if not values or "lz4" not in values:
        pytest.skip("this PostgreSQL has no LZ4")
    store = Store(pg_engine)
    with store.transaction() as conn:
        store.write_events(conn, [normalized(payload(), 11)])
    raw = payload()
    raw["message"] = "long " * 10_000  # long enough to be compressed
    with store.transaction() as conn:
        store.write_events(conn, [normalized(raw, 12)])
    with pg_engine.connect() as conn:
        found = conn.execute(
            text("SELECT pg_column_compression(raw_json) FROM events WHERE project_id = 12")
        ).scalar_one()
    assert found == "lz4"


def test_a_session_setting_the_server_refuses_leaves_writes_working(
    pg_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As on a server where the role may not run PL/pgSQL: the defaults stay, writes go on."""
    monkeypatch.setattr(pgcopy, "_SESSION_SQL", "SELECT no_such_function()")
    store = Store(pg_engine)
    with store.transaction() as conn:
        assert store.write_events(conn, [normalized(payload(), 11)]).inserted == 1
    with pg_engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM events")).scalar_one() == 1
