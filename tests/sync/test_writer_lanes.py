"""The writer's lanes: pages of different issues committed at once, each issue's in order
(:mod:`archiver.sync.lanes`), and what PostgreSQL does when two lanes meet on one event."""

from __future__ import annotations

import copy
import threading
import time
from concurrent.futures import Future
from typing import Any

import pytest
from sqlalchemy import Engine, text

from archiver.normalize import normalize_event
from archiver.storage.encode import encode_event
from archiver.storage.store import Store
from archiver.sync import writer as writer_module
from archiver.sync.handoff import Handed, Inbox, InFlight, PageWork, Shutdown, WalkEnded
from archiver.sync.lanes import Lanes
from archiver.sync.report import Progress, SyncReport
from archiver.sync.spool import PageFiles
from archiver.sync.state import IssueWalk, WalkStatus
from tests.storage.test_stacks import simulated, wait_for_lock_waiters


def ended(issue_id: int, n: int = 0) -> WalkEnded:
    """An item of issue ``issue_id``; ``n`` tells items of one issue apart."""
    return WalkEnded(IssueWalk(issue_id, 1, WalkStatus.DONE, walk_events=n), WalkStatus.DONE)


def test_one_issues_items_are_written_in_order_and_one_at_a_time() -> None:
    written: list[tuple[int, int]] = []
    active: set[int] = set()
    overlaps: list[int] = []
    lock = threading.Lock()

    def write(item: Handed) -> None:
        with lock:
            if item.walk.issue_id in active:
                overlaps.append(item.walk.issue_id)
            active.add(item.walk.issue_id)
        time.sleep(0.001)
        with lock:
            active.discard(item.walk.issue_id)
            written.append((item.walk.issue_id, item.walk.walk_events))

    lanes = Lanes(2, write)
    for n in range(30):
        for issue in (1, 2, 3):
            lanes.put(ended(issue, n))
    lanes.close()
    assert overlaps == []
    for issue in (1, 2, 3):
        assert [n for i, n in written if i == issue] == list(range(30))


def test_items_of_two_issues_are_written_at_once() -> None:
    """Each write waits for the other issue's: only two lanes writing at once get past."""
    both = threading.Barrier(2, timeout=10)

    def write(item: Handed) -> None:
        both.wait()

    lanes = Lanes(2, write)
    lanes.put(ended(1))
    lanes.put(ended(2))
    lanes.close()  # a BrokenBarrierError (one at a time) would be raised here


def test_a_lanes_error_stops_the_writing_and_is_raised() -> None:
    """After the first error no item is written; queued ones are dropped; close raises it."""
    failing = threading.Event()
    go_on = threading.Event()
    written: list[int] = []
    dropped: list[int] = []

    def write(item: Handed) -> None:
        if item.walk.issue_id == 1:
            failing.set()
            assert go_on.wait(10)
            raise RuntimeError("the database went away")
        written.append(item.walk.issue_id)

    lanes = Lanes(1, write, drop=lambda item: dropped.append(item.walk.issue_id), backlog=5)
    lanes.put(ended(1))
    assert failing.wait(10)
    lanes.put(ended(2))
    lanes.put(ended(3))
    go_on.set()
    with pytest.raises(RuntimeError, match="went away"):
        lanes.close()
    assert written == []
    assert sorted(dropped) == [2, 3]
    with pytest.raises(RuntimeError, match="went away"):
        lanes.put(ended(4))


def test_put_waits_while_the_lanes_hold_their_backlog() -> None:
    release = threading.Event()

    def write(item: Handed) -> None:
        release.wait(10)

    lanes = Lanes(1, write, backlog=1)
    lanes.put(ended(1))  # being written
    lanes.put(ended(2))  # the backlog
    third = threading.Thread(target=lanes.put, args=(ended(3),))
    third.start()
    third.join(0.2)
    assert third.is_alive()  # waits for room
    release.set()
    third.join(10)
    assert not third.is_alive()
    lanes.close()


def _page(issue_id: int, payload: dict[str, Any]) -> PageWork:
    event = encode_event(
        normalize_event(copy.deepcopy(payload), project_id=7, issue_id=issue_id), "postgresql"
    )
    walk = IssueWalk(issue_id, event.project_id, WalkStatus.DONE, walk_events=1)
    return PageWork(walk, [event], [], None, 0, PageFiles("/nonexistent", "/nonexistent"))


@pytest.mark.postgres
def test_an_event_two_lanes_insert_at_once_is_stored_once(
    pg_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sentry merging two issues lists an event under both for a while: two lanes may both
    find it new. The second waits on the natural key's index for the first, which commits;
    PostgreSQL then aborts the second (unique violation), which is written again and finds
    the event stored."""
    (payload,) = simulated(1)
    pg = pg_engine
    store = Store(pg)
    first_written, go_on = threading.Event(), threading.Event()
    write_events = store.write_events

    def pausing(conn: Any, batch: Any) -> Any:
        result = write_events(conn, batch)
        if not first_written.is_set():  # the first page's first attempt
            first_written.set()
            assert go_on.wait(30)
        return result

    other = {**payload, "id": "f" * 32, "eventID": "f" * 32}  # another event, same stacks
    with store.transaction() as conn:  # as discovery stores them before the walks
        store.ensure_issues(conn, {70: 7, 71: 7})
        # its stacks are stored already: the two lanes meet on the event itself
        store.write_events(conn, _page(70, other).events)  # type: ignore[arg-type]
    monkeypatch.setattr(store, "write_events", pausing)
    inbox = Inbox(Shutdown(threading.Event()))
    report = SyncReport()
    writer = writer_module.Writer(store, inbox, InFlight(1 << 20), report, Progress(), lanes=2)
    done: Future[None] = Future()
    done.set_result(None)
    errors: list[BaseException] = []

    def write() -> None:
        try:
            writer.run([done])
        except BaseException as exc:
            errors.append(exc)

    assert inbox.put(_page(70, payload))
    writing = threading.Thread(target=write)
    writing.start()
    assert first_written.wait(30), errors
    assert inbox.put(_page(71, payload))
    wait_for_lock_waiters(pg)  # the other lane's COPY waits for the first's new event
    go_on.set()
    writing.join(60)
    assert errors == []
    assert report.pages == 2
    with pg.connect() as conn:
        stored = conn.execute(text("SELECT count(*) FROM events")).scalar_one()
        walks = conn.execute(text("SELECT issue_id FROM sync_issues ORDER BY 1")).all()
    assert stored == 2  # the other event, and this one once
    assert [w[0] for w in walks] == [70, 71]
