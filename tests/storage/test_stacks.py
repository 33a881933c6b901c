"""Stack frames stored once per distinct stack: the ``frames`` view answers as the table did.

Events of an issue share their stacks (``stacks``, ``stack_frames``); their per-event values
(which stacks, the thread id, ``vars``) are theirs (``event_stacks``, ``frame_vars``).
Migration 0007 moves an existing ``frames`` table over, exactly, and back on a downgrade.
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from sqlalchemy import Engine, text

from archiver.normalize import NormalizedEvent, normalize_event
from archiver.simulator.data import SimulatedOrg
from archiver.simulator.payloads import EventRenderer
from archiver.storage import db
from archiver.storage.stacks import FRAME_COLUMNS, FRAME_VALUES, split_frames, stack_key
from archiver.storage.store import Store
from tests.helpers import delete_events, orphans
from tests.storage.old_frames import write_0004
from tests.storage.test_pgcopy import ODD, odd_payload

ORDER = "event_pk, stack_kind, stack_index, is_raw, position"
JSON_COLUMNS = {"pre_context", "post_context", "vars"}


def simulated(n: int = 120) -> list[dict[str, Any]]:
    """The first ``n`` events of a small simulated organisation, as full payloads."""
    org = SimulatedOrg(seed=3, events=600)
    renderer = EventRenderer(org, cache_bytes=0)
    out = []
    for pid, eid in sorted(org.truth())[:n]:
        ref = org.locate_event(eid)
        assert ref is not None
        payload = renderer.as_dict(ref)
        payload.setdefault("projectID", str(pid))
        out.append(payload)
    return out


def odd_events() -> list[dict[str, Any]]:
    """Text COPY must escape in frames and vars; a second copy of the stack with other vars."""
    first = odd_payload()
    second = copy.deepcopy(first)
    second.update(id="d" * 32, eventID="d" * 32)
    frames = second["entries"][0]["data"]["values"][0]["stacktrace"]["frames"]
    frames[0]["vars"] = {"other": "vars", "n": [1, 2.5, None]}
    return [first, second]


def normalized(payloads: Sequence[dict[str, Any]]) -> list[NormalizedEvent]:
    return [normalize_event(copy.deepcopy(p), project_id=7, issue_id=70) for p in payloads]


def expected_frames(events: Sequence[NormalizedEvent]) -> list[tuple[Any, ...]]:
    """The frames rows normalize made, keyed by the event's natural key."""
    out = []
    for ev in events:
        for r in ev.children["frames"]:
            out.append((ev.project_id, ev.event_id, *(r[c] for c in FRAME_COLUMNS[1:])))
    return sorted(out, key=repr)


def stored_frames(engine: Engine) -> list[tuple[Any, ...]]:
    """The rows of the ``frames`` view as Python values, keyed like :func:`expected_frames`."""
    columns = ", ".join(f"f.{c}" for c in FRAME_COLUMNS[1:])
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                f"SELECT e.project_id, e.event_id, {columns} FROM frames f "
                "JOIN events e ON e.id = f.event_pk"
            )
        ).all()
    out = []
    for row in rows:
        values = dict(zip(("project_id", "event_id", *FRAME_COLUMNS[1:]), row, strict=True))
        for c in JSON_COLUMNS:
            if isinstance(values[c], str):  # SQLite hands back JSON text
                values[c] = json.loads(values[c])
        for c in ("is_raw", "in_app"):
            if values[c] is not None:
                values[c] = bool(values[c])
        out.append(tuple(values.values()))
    return sorted(out, key=repr)


def raw_frames(engine: Engine) -> list[tuple[Any, ...]]:
    """``SELECT * FROM frames`` exactly as the database answers it."""
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(f"SELECT * FROM frames ORDER BY {ORDER}"))]


def count(engine: Engine, table: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


def write(engine: Engine, events: Sequence[NormalizedEvent | Any]) -> None:
    store = Store(engine)
    with store.transaction() as conn:
        store.write_events(conn, events)


@pytest.fixture(scope="module")
def sim_payloads() -> list[dict[str, Any]]:
    return simulated()


# --------------------------------------------------------------------------- pure split


def test_split_keeps_per_event_values_apart_and_keys_only_the_stack() -> None:
    a, b = normalized(odd_events())
    stacks_a, vars_a, shared_a = split_frames(a.children["frames"])
    stacks_b, vars_b, shared_b = split_frames(b.children["frames"])
    assert shared_a == shared_b  # other vars, same stack
    assert [s[-1] for s in stacks_a] == [s[-1] for s in stacks_b]
    assert vars_a != vars_b
    assert [(kind, i, raw, pos) for kind, i, raw, pos, _ in vars_a] == [("exception", 0, False, 0)]
    for key, frames in shared_a.items():
        assert stack_key(frames) == key
        assert len(key) == 16
    # Any other value of a frame makes another stack (of the two, the one with that frame).
    changed = [dict(r) for r in a.children["frames"]]
    changed[1]["lineno"] = (changed[1]["lineno"] or 0) + 1
    assert len(shared_a) == 2
    assert len(split_frames(changed)[2].keys() - shared_a.keys()) == 1


# --------------------------------------------------------------------------- the view


def test_frames_view_answers_what_normalize_produced(engine: Engine, sim_payloads) -> None:
    events = normalized([*sim_payloads, *odd_events()])
    write(engine, events)
    assert stored_frames(engine) == expected_frames(events)
    n_frames = sum(len(ev.children["frames"]) for ev in events)
    assert count(engine, "frames") == n_frames
    # Stored once per distinct stack: far fewer frames rows than the view shows.
    assert count(engine, "stack_frames") * 4 < n_frames
    with engine.connect() as conn:
        frame_counts = conn.execute(
            text(
                "SELECT s.frame_count, (SELECT count(*) FROM stack_frames f "
                "WHERE f.stack_key = s.stack_key) FROM stacks s"
            )
        ).all()
    assert all(a == b for a, b in frame_counts)
    n_vars = sum(1 for ev in events for r in ev.children["frames"] if r["vars"] is not None)
    assert count(engine, "frame_vars") == n_vars


def test_writing_the_same_events_again_stores_nothing_twice(engine: Engine, sim_payloads) -> None:
    events = normalized(sim_payloads[:40])
    write(engine, events)
    tables = ("stacks", "stack_frames", "event_stacks", "frame_vars", "frames")
    before = {t: count(engine, t) for t in tables}
    write(engine, normalized(sim_payloads[:40]))
    # Copies of the same events under other ids: new event rows, the same stacks.
    copies = copy.deepcopy(sim_payloads[:40])
    for p in copies:
        p["id"] = p["eventID"] = "f" * 8 + p["eventID"][8:]
    write(engine, normalized(copies))
    after = {t: count(engine, t) for t in tables}
    assert after["stacks"] == before["stacks"]
    assert after["stack_frames"] == before["stack_frames"]
    assert after["event_stacks"] == 2 * before["event_stacks"]
    assert after["frames"] == 2 * before["frames"]


def test_a_changed_event_has_its_stacks_and_vars_replaced(engine: Engine) -> None:
    first, _ = odd_events()
    write(engine, normalized([first]))
    changed = copy.deepcopy(first)
    frames = changed["entries"][0]["data"]["values"][0]["stacktrace"]["frames"]
    frames[0]["vars"] = None
    frames[1]["function"] = "renamed"
    events = normalized([changed])
    write(engine, events)
    assert stored_frames(engine) == expected_frames(events)
    assert count(engine, "frame_vars") == 0
    old, new = (split_frames(ev.children["frames"])[2] for ev in normalized([first, changed]))
    assert len(new.keys() - old.keys()) == 1  # one of its two stacks changed
    assert count(engine, "event_stacks") == 2
    assert count(engine, "stacks") == 3  # the old stack stays until a purge collects it


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)  # COPY is PostgreSQL's
def test_stacks_written_by_copy_and_by_insert_meet(engine: Engine) -> None:
    """PostgreSQL: an event written by INSERT and one by COPY with the same stack share it."""
    from archiver.storage.encode import encode_event

    a, b = normalized(odd_events())
    write(engine, [encode_event(a, "postgresql", copy=False)])
    write(engine, [encode_event(b, "postgresql")])
    assert count(engine, "stacks") == 2  # the event's two, once
    assert stored_frames(engine) == expected_frames([a, b])
    assert ODD[5] in {row[9] for row in stored_frames(engine)}  # module, escaped and back


# --------------------------------------------------------------------------- concurrency


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)  # SQLite: one writer
@pytest.mark.parametrize("first_commits", [True, False])
def test_two_writers_inserting_one_new_stack_at_once(engine: Engine, first_commits: bool) -> None:
    """PostgreSQL: the second waits on the first's uncommitted stack, then stores it only if
    the first rolled back; neither fails."""
    a, b = normalized(odd_events())
    store = Store(engine)
    write(engine, [normalize_event(odd_payload(), project_id=7, issue_id=70)])  # projects
    with engine.begin() as conn:
        delete_events(conn)  # and their rows: no ON DELETE CASCADE on PostgreSQL
        conn.execute(text("DELETE FROM stack_frames"))
        conn.execute(text("DELETE FROM stacks"))
    errors: list[BaseException] = []
    started = threading.Event()

    def second() -> None:
        try:
            started.set()
            with store.transaction() as conn:
                store.write_events(conn, [b])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    with engine.connect() as conn, conn.begin() as tx:
        store.write_events(conn, [a])
        thread = threading.Thread(target=second)
        thread.start()
        started.wait()
        wait_for_lock_waiters(engine)
        if first_commits:
            tx.commit()
        else:
            tx.rollback()
    thread.join()
    assert errors == []
    expected = expected_frames([a, b] if first_commits else [b])
    assert stored_frames(engine) == expected
    assert count(engine, "stacks") == 2
    # No foreign key holds event_stacks to stacks on PostgreSQL (migration 0008): the second
    # writer's rows point at a stored stack whether the first committed it or not.
    assert orphans(engine) == {}


def wait_for_lock_waiters(engine: Engine) -> None:
    """Until another session of this database waits for a lock (the second writer)."""
    with engine.connect() as conn:
        for _ in range(2000):
            waiting = conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock'"
                )
            ).scalar_one()
            if waiting:
                return
            conn.execute(text("SELECT pg_sleep(0.01)"))
            conn.commit()
    raise AssertionError("the second writer never waited for the first")


# --------------------------------------------------------------------------- migration 0007


@pytest.fixture
def archive_0004(empty_db_url: str, sim_payloads) -> Iterator[tuple[Engine, list[Any]]]:
    engine = db.make_engine(empty_db_url)
    db.upgrade(engine, "0004")
    events = normalized([*sim_payloads, *odd_events()])
    write_0004(engine, events)
    yield engine, events
    engine.dispose()


@pytest.mark.slow
def test_upgrade_from_0004_moves_every_frame_exactly(archive_0004) -> None:
    engine, events = archive_0004
    before = raw_frames(engine)
    assert len(before) == sum(len(ev.children["frames"]) for ev in events)
    db.upgrade(engine)
    assert db.schema_diff(engine) == []
    assert raw_frames(engine) == before
    assert stored_frames(engine) == expected_frames(events)
    assert count(engine, "stack_frames") * 4 < len(before)
    # The keys the migration computed are the writer's: writing the events again adds none.
    stacks = count(engine, "stacks")
    write(engine, [normalize_event(copy.deepcopy(p), project_id=8) for p in odd_events()])
    assert count(engine, "stacks") == stacks
    db.downgrade(engine, "0004")
    assert raw_frames(engine)[: len(before)] == before
    db.upgrade(engine)
    assert raw_frames(engine)[: len(before)] == before


def test_the_view_has_the_columns_of_the_former_table(engine: Engine) -> None:
    with engine.connect() as conn:
        columns = list(conn.execute(text("SELECT * FROM frames")).keys())
    assert tuple(columns) == FRAME_COLUMNS
    assert FRAME_COLUMNS[6 : 6 + len(FRAME_VALUES)] == FRAME_VALUES
