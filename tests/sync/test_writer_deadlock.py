"""Two syncs sharing a PostgreSQL archive insert the same new stacks (issue 17, leases).

Events of different projects (so of different processes) may share stacks, which are stored
once, keyed by their hash (:mod:`archiver.storage.stacks`). Within one call the keys go in
sorted order, but a page is written in several batches, each in its own sorted order: two
pages that meet the same new stacks in opposite batch orders wait for each other, and
PostgreSQL aborts one of the two transactions (deadlock detected). The writer then writes that
page again instead of failing the run.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from archiver.storage import db
from archiver.storage.encode import EncodedEvent, encode_event
from archiver.storage.stacks import insert_stacks, split_frames
from archiver.storage.store import Store
from archiver.sync import writer as writer_module
from archiver.sync.handoff import Inbox, InFlight, PageWork, Shutdown
from archiver.sync.report import Progress, SyncReport
from archiver.sync.spool import PageFiles
from archiver.sync.state import IssueWalk, WalkStatus
from tests.helpers import pg_database
from tests.storage.test_stacks import normalized, simulated, wait_for_lock_waiters


@pytest.fixture
def pg(pg_template: str) -> Iterator[Engine]:
    """An archive whose sessions detect a deadlock quickly (the writer's, here)."""
    with pg_database(template=pg_template) as url:
        name = make_url(url).database
        engine = db.make_engine(url)
        with engine.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            conn.execute(text(f"ALTER DATABASE \"{name}\" SET deadlock_timeout = '20ms'"))
        engine.dispose()  # new sessions take the setting
        yield engine
        engine.dispose()


def two_events_with_their_own_stacks() -> tuple[list[EncodedEvent], list[bytes]]:
    """Two events, each with a stack the other lacks: (events, one key each)."""
    events = normalized(simulated(60))
    chosen: list[Any] = []
    keys: list[bytes] = []
    seen: set[bytes] = set()
    for ev in events:
        own = set(split_frames(ev.children["frames"])[2]) - seen
        if own and not set(split_frames(ev.children["frames"])[2]) & seen:
            chosen.append(ev)
            keys.append(min(own))
            seen |= own
        if len(chosen) == 2:
            break
    assert len(chosen) == 2
    return [encode_event(ev, "postgresql") for ev in chosen], keys


def page(events: Sequence[EncodedEvent]) -> PageWork:
    first = events[0]
    assert first.issue_id is not None
    walk = IssueWalk(first.issue_id, first.project_id, WalkStatus.WALKING, walk_events=2)
    return PageWork(walk, list(events), [], None, 0, PageFiles("/nonexistent", "/nonexistent"))


@pytest.mark.postgres
def test_a_page_aborted_by_a_deadlock_on_shared_stacks_is_written_again(pg, monkeypatch):
    """The writer's page inserts stack K1 (first batch), then K2 (second batch); another
    sync's transaction inserted K2, then waits for K1: a cycle. PostgreSQL aborts the writer's
    transaction; the writer writes the page again (once the other committed) and the run
    goes on."""
    monkeypatch.setattr(writer_module, "WRITE_BATCH_BYTES", 0)  # an event per batch
    events, (k1, k2) = two_events_with_their_own_stacks()
    store = Store(pg)
    first_batch_done, go_on = threading.Event(), threading.Event()
    write_events = store.write_events

    def pausing(conn: Any, batch: Any) -> Any:
        result = write_events(conn, batch)
        if not first_batch_done.is_set():  # the first attempt's first batch only
            first_batch_done.set()
            assert go_on.wait(30)
        return result

    monkeypatch.setattr(store, "write_events", pausing)
    shutdown = Shutdown(threading.Event())
    inbox = Inbox(shutdown)
    report = SyncReport()
    writer = writer_module.Writer(store, inbox, InFlight(1 << 20), report, Progress())
    done: Future[None] = Future()
    done.set_result(None)
    errors: list[BaseException] = []

    def write() -> None:
        try:
            assert inbox.put(page(events))
            writer.run([done])
        except BaseException as exc:
            errors.append(exc)

    other_errors: list[BaseException] = []

    def other_sync() -> None:
        try:
            with pg.connect() as conn:
                conn.execute(text("SET deadlock_timeout = '60s'"))  # the writer detects it
                conn.commit()
                with conn.begin():
                    insert = text(
                        "INSERT INTO stacks (stack_key, frame_count) VALUES (:k, 1) "
                        "ON CONFLICT DO NOTHING"
                    )
                    conn.execute(insert, {"k": k2})
                    holding_k2.set()
                    conn.execute(insert, {"k": k1})  # waits for the writer's K1
        except BaseException as exc:  # pragma: no cover - reported below
            other_errors.append(exc)

    holding_k2 = threading.Event()
    writing = threading.Thread(target=write)
    writing.start()
    assert first_batch_done.wait(30), errors  # the writer holds K1
    other = threading.Thread(target=other_sync)
    other.start()
    assert holding_k2.wait(30), other_errors
    wait_for_lock_waiters(pg)  # the other waits for K1
    go_on.set()  # the writer's second batch waits for K2: a deadlock
    writing.join(60)
    other.join(60)
    assert other_errors == []
    assert errors == []
    assert report.pages == 1
    assert report.events_new == 2
    with pg.connect() as conn:
        stored = conn.execute(text("SELECT count(*) FROM events")).scalar_one()
        walked = conn.execute(text("SELECT walk_events FROM sync_issues")).scalar_one()
    assert (stored, walked) == (2, 2)


@pytest.mark.postgres
def test_one_call_inserts_its_stacks_in_key_order_so_opposite_orders_only_wait(pg):
    """Within one call (one batch) the keys go sorted whatever order they come in: a second
    writer with the same new keys waits for the first, it never deadlocks with it."""
    k1, k2 = sorted([b"\x01" * 16, b"\x02" * 16])
    new: list[list[bytes]] = []
    errors: list[BaseException] = []

    def second() -> None:
        try:
            with pg.begin() as conn:
                new.append(insert_stacks(conn, {k1: 1, k2: 1}))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    with pg.connect() as conn:
        conn.execute(text("SET deadlock_timeout = '60s'"))
        conn.commit()
        with conn.begin():
            assert insert_stacks(conn, {k2: 1, k1: 1}) == [k1, k2]
            thread = threading.Thread(target=second)
            thread.start()
            wait_for_lock_waiters(pg)
    thread.join(60)
    assert errors == []
    assert new == [[]]  # both stored by the first
