"""On PostgreSQL the writer commits pages of different issues on two connections at once.

Why: a page's commit is mostly the server's work (the COPY of its rows, the checkpoint), and
the writer waits for it. With one connection the server works on one page at a time while
the walks wait for the writer, and on a small machine a part of the CPU stays idle; with two
lanes the server works on two pages at once (the README's issue-17 figures). SQLite has one
write lock per archive, so there the writer stays one lane (its own thread, no lanes).

What stays as with one writer:

* an issue's pages and its walk's end commit in the order its walk handed them over: while
  an issue has an item in a lane, its next items go to that lane; otherwise to the least
  busy one;
* each page commits with its checkpoint, alone in its transaction, so a run killed at any
  moment resumes every walk at its last committed page;
* the first error of any lane ends the writing: no lane starts another item, and the error
  is raised once every lane has finished the transaction it was in.

Pages of two lanes may meet on rows they share (a new stack, a release, an event listed by
two issues while Sentry merges them): PostgreSQL makes the second wait for the first, and a
page it aborts for the conflict is written again (:mod:`archiver.storage.conflicts`).
"""

from __future__ import annotations

import contextlib
import threading
from collections import deque
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from archiver.sync.handoff import Handed

# Items waiting in a lane besides the one it writes: none, the writer's inbox is the backlog
# (two per lane measured no faster), so the walks feel the writer's pace directly.
BACKLOG_PER_LANE = 0


class Lanes:
    """Threads that each write items in order; one issue's items all in one lane at a time."""

    def __init__(
        self,
        count: int,
        write: Callable[[Handed], None],
        drop: Callable[[Handed], None] = lambda item: None,
        around: Callable[[], AbstractContextManager[Any]] = contextlib.nullcontext,
        backlog: int = BACKLOG_PER_LANE,
    ) -> None:
        """``write(item)`` commits one item; ``drop(item)`` gives up one that will not be
        written (the writing ended with an error); each lane's thread writes inside
        ``around()`` (the store's pinned connection: one per lane)."""
        self._write = write
        self._drop = drop
        self._around = around
        self._limit = count * (1 + backlog)
        self._cond = threading.Condition()
        self._queues: list[deque[Handed]] = [deque() for _ in range(count)]
        self._busy = [False] * count
        self._owner: dict[int, tuple[int, int]] = {}  # issue id -> (its lane, items there)
        self._error: BaseException | None = None
        self._closing = False
        self._threads = [
            threading.Thread(target=self._run, args=(i,), name=f"writer-{i}", daemon=True)
            for i in range(count)
        ]
        for thread in self._threads:
            thread.start()

    def put(self, item: Handed) -> None:
        """Queue ``item`` for its lane; waits while the lanes hold their backlog. Raises the
        error of a lane that failed (nothing more is written then)."""
        issue = item.walk.issue_id
        with self._cond:
            while self._pending() >= self._limit and self._error is None:
                self._cond.wait()
            self.check()
            lane, count = self._owner.get(issue, (-1, 0))
            if lane < 0:
                lane = min(range(len(self._queues)), key=self._load)
            self._owner[issue] = (lane, count + 1)
            self._queues[lane].append(item)
            self._cond.notify_all()

    def check(self) -> None:
        """Raise the first error a lane met, if any."""
        if self._error is not None:
            raise self._error

    def close(self, *, abandon: bool = False) -> None:
        """Wait until every queued item is written (``abandon``: only the ones being written;
        the others are dropped), then raise the first error a lane met, unless abandoning."""
        with self._cond:
            self._closing = True
            if abandon:
                self._drop_queued()
            self._cond.notify_all()
        for thread in self._threads:
            thread.join()
        if not abandon:
            self.check()

    def _pending(self) -> int:
        return sum(len(q) for q in self._queues) + sum(self._busy)

    def _load(self, lane: int) -> int:
        return len(self._queues[lane]) + self._busy[lane]

    def _drop_queued(self) -> None:
        for queue in self._queues:
            while queue:
                self._drop(queue.popleft())

    def _next(self, lane: int) -> Handed | None:
        with self._cond:
            while True:
                if self._error is not None:
                    return None
                if self._queues[lane]:
                    self._busy[lane] = True
                    return self._queues[lane].popleft()
                if self._closing:
                    return None
                self._cond.wait()

    def _run(self, lane: int) -> None:
        try:
            with self._around():
                while (item := self._next(lane)) is not None:
                    try:
                        self._write(item)
                    except BaseException as exc:  # recorded before another item can start
                        self._fail(exc)
                    finally:
                        self._done(lane, item)
        except BaseException as exc:  # the connection could not be had or given back
            self._fail(exc)

    def _fail(self, exc: BaseException) -> None:
        """Record the first error (the dispatcher raises it) and drop what is queued."""
        with self._cond:
            if self._error is None:
                self._error = exc
            self._drop_queued()
            self._cond.notify_all()

    def _done(self, lane: int, item: Handed) -> None:
        with self._cond:
            self._busy[lane] = False
            issue = item.walk.issue_id
            _, count = self._owner.pop(issue)
            if count > 1:
                self._owner[issue] = (lane, count - 1)
            self._cond.notify_all()
