"""What passes from the walk threads to the writer, and when both sides stop.

The walk threads (:mod:`archiver.sync.walk`) put fetched pages and walk ends into a small
inbox; the writer (:mod:`archiver.sync.writer`), the run's calling thread, takes them out one
at a time. :class:`Shutdown` is the one rule both sides consult to know the run is ending:
a stop request (a signal) lets the writer drain what is in flight, a fatal error (a bad
token) makes everyone give up at once.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass
from typing import Any

from archiver.storage.encode import EncodedEvent
from archiver.sync.spool import PageFiles
from archiver.sync.state import IssueWalk, WalkStatus
from archiver.sync.workers import SpooledEvent

# Two pages waiting are enough to keep the writer busy; every page more is memory (a page of
# 100 full events is several MB, even pickled) and buys no speed.
INBOX_PAGES = 2


@dataclass
class PageWork:
    """A fetched, normalized page on its way to the writer, with the checkpoint after it."""

    walk: IssueWalk
    events: list[SpooledEvent | EncodedEvent]
    releases: list[dict[str, Any]]
    merged_into: int | None
    held: int  # bytes of the in-flight budget this page holds until it is committed
    files: PageFiles  # where its events are spooled; removed once committed


@dataclass
class WalkEnded:
    """A walk that ended without a page to carry its end (empty window, 404, failure)."""

    walk: IssueWalk
    status: WalkStatus
    error: str | None = None


Handed = PageWork | WalkEnded


# Page bytes in flight: enough that the next big page is fetched and normalized while the
# writer commits the last one, small enough that a few pages of very large events cannot
# dominate the process (see the README's performance notes for the measurements).
IN_FLIGHT_BYTES = 16 * 1024 * 1024
FIRST_PAGE_ESTIMATE = 1024 * 1024
MIN_PAGE_ESTIMATE = 64 * 1024


class InFlight:
    """A budget of page bytes fetched but not yet committed: bounds the writer's memory.

    Pages are counted in pages elsewhere (the writer's queue holds two), but Sentry events
    range from a few KB to several hundred: a page of 100 large events is tens of MB once
    decoded, and a few of them in flight would dominate the process. So before each request a
    walk reserves the size of its previous page; it waits while the pages in flight already
    exceed the budget (never when nothing is in flight, so one page bigger than the budget
    still goes through), and the writer gives the bytes back when the page is committed.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._cond = threading.Condition()

    def acquire(self, amount: int, stop: threading.Event) -> None:
        with self._cond:
            while self.used and self.used + amount > self.limit and not stop.is_set():
                self._cond.wait(timeout=0.2)
            self.used += amount

    def try_acquire(self, amount: int) -> bool:
        """Reserve ``amount`` only if it fits now (a walk reading ahead must never wait for
        a budget that its own unfinished page holds)."""
        with self._cond:
            if self.used and self.used + amount > self.limit:
                return False
            self.used += amount
            return True

    def release(self, amount: int) -> None:
        with self._cond:
            self.used = max(0, self.used - amount)
            self._cond.notify_all()

    def adjust(self, delta: int) -> None:
        """The reservation was an estimate: count what actually arrived."""
        if delta < 0:
            self.release(-delta)
        else:
            with self._cond:
                self.used += delta


class Shutdown:
    """The run's stop request and its fatal error, consulted by walkers and writer alike."""

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop
        self.fatal: BaseException | None = None

    @property
    def requested(self) -> bool:
        return self.stop.is_set()

    def fail(self, exc: BaseException) -> None:
        """End the run with ``exc``: every side gives up without waiting for the others."""
        if self.fatal is None:
            self.fatal = exc
        self.stop.set()

    @property
    def failed(self) -> bool:
        return self.fatal is not None


class ProjectStop(threading.Event):
    """The stop of one project's walk: set on its own when the project's lease is lost (the
    run goes on with other projects), and set whenever the run's own stop is."""

    def __init__(self, run: threading.Event) -> None:
        super().__init__()
        self.run = run

    def is_set(self) -> bool:
        return super().is_set() or self.run.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Until either stop is set (checked every 0.1 s), or ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.is_set():
            left = 0.1 if deadline is None else min(0.1, deadline - time.monotonic())
            if left <= 0:
                return False
            super().wait(left)
        return True


class _Wake:
    """Put by :meth:`Inbox.wake`: not handed to the writer, only ends its wait."""


_WAKE = _Wake()


class Inbox:
    """The writer's queue of handed-over pages and walk ends."""

    def __init__(self, shutdown: Shutdown, size: int = INBOX_PAGES) -> None:
        self.shutdown = shutdown
        self._queue: queue.Queue[Handed | _Wake] = queue.Queue(maxsize=size)

    def put(self, item: Handed) -> bool:
        """Hand over to the writer; gives up (False) when the run failed and the writer is
        gone."""
        while True:
            try:
                self._queue.put(item, timeout=0.2)
                return True
            except queue.Full:
                if self.shutdown.requested and self.shutdown.failed:
                    return False

    def get(self, timeout: float) -> Handed | None:
        """The next item, or None when none came within ``timeout`` seconds or on a wake."""
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            return None
        return None if isinstance(item, _Wake) else item

    def wake(self) -> None:
        """End the writer's wait now (a walk ended: maybe the last one), without blocking:
        a full inbox has the writer busy anyway, and it looks again after each item.

        Without it the writer saw the last walk's end only when its wait timed out, a tenth
        of a second at the end of every run with the machine idle.
        """
        try:
            self._queue.put_nowait(_WAKE)
        except queue.Full:
            pass

    def empty(self) -> bool:
        return self._queue.empty()
