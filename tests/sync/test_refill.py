"""More walks for a running walk (archiver.sync.refill): when asked, what is started, errors."""

from __future__ import annotations

import threading
from concurrent.futures import Future

import pytest

from archiver.errors import InterruptedRun
from archiver.sync.handoff import Shutdown
from archiver.sync.refill import Refill
from archiver.sync.state import IssueWalk, WalkStatus


def _walk(issue: int) -> IssueWalk:
    return IssueWalk(issue_id=issue, project_id=1, status=WalkStatus.PENDING)


class Pool:
    """Walks started as futures the test ends by hand."""

    def __init__(self) -> None:
        self.started: list[int] = []
        self.futures: dict[int, Future[None]] = {}

    def start(self, walk: IssueWalk) -> Future[None]:
        future: Future[None] = Future()
        self.started.append(walk.issue_id)
        self.futures[walk.issue_id] = future
        return future


def _running(n: int) -> list[Future[None]]:
    return [Future() for _ in range(n)]


def test_more_walks_are_asked_for_only_when_few_are_left():
    pool = Pool()
    walks = _running(3)
    asked = threading.Event()
    answers = iter([[_walk(10), _walk(11)], None])

    def more() -> list[IssueWalk] | None:
        asked.set()
        return next(answers)

    futures = list(walks)
    refill = Refill(more, pool.start, futures, Shutdown(threading.Event()), low=2)
    thread = threading.Thread(target=refill.run)
    thread.start()
    assert not asked.wait(0.3)  # three walks going, two is low: nothing asked yet
    walks[0].set_result(None)
    walks[1].set_result(None)  # one left: low
    assert asked.wait(5)
    for _ in range(500):  # the refill thread starts them right after the answer
        if len(futures) == 5:
            break
        threading.Event().wait(0.01)
    assert pool.started == [10, 11]
    assert futures[3:] == [pool.futures[10], pool.futures[11]]  # the writer waits for them
    for future in [walks[2], *pool.futures.values()]:
        future.set_result(None)
    thread.join(5)
    assert not thread.is_alive()  # None: nothing more to ask for


def test_an_empty_answer_asks_again_and_none_ends():
    pool = Pool()
    answers = iter([[], [], [_walk(7)], None])
    refill = Refill(lambda: next(answers), pool.start, [], Shutdown(threading.Event()), low=1)

    def end_walks() -> None:
        while refill_thread.is_alive():
            for future in list(pool.futures.values()):
                if not future.done():
                    future.set_result(None)
            threading.Event().wait(0.01)

    refill_thread = threading.Thread(target=refill.run)
    refill_thread.start()
    ender = threading.Thread(target=end_walks)
    ender.start()
    refill_thread.join(5)
    ender.join(5)
    assert pool.started == [7]


def test_a_stop_request_ends_the_asking_without_failing_the_run():
    stop = threading.Event()
    shutdown = Shutdown(stop)

    def more() -> list[IssueWalk] | None:
        stop.set()
        raise InterruptedRun("stopped on request")

    Refill(more, Pool().start, [], shutdown, low=1).run()
    assert shutdown.fatal is None


def test_an_error_asking_for_more_ends_the_run_with_it():
    shutdown = Shutdown(threading.Event())

    def more() -> list[IssueWalk] | None:
        raise RuntimeError("discovery broke")

    with pytest.raises(RuntimeError, match="discovery broke"):
        Refill(more, Pool().start, [], shutdown, low=1).run()
    assert isinstance(shutdown.fatal, RuntimeError)
    assert shutdown.requested


def test_nothing_is_started_once_the_run_stops():
    stop = threading.Event()
    pool = Pool()

    def more() -> list[IssueWalk] | None:
        stop.set()  # the run stops while the next project was being discovered
        return [_walk(1), _walk(2)]

    Refill(more, pool.start, [], Shutdown(stop), low=1).run()
    assert pool.started == []
