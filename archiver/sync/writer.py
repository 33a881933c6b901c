"""The writer: each page's rows and the walk's checkpoint in one transaction.

The run's calling thread takes what the walk threads hand over (:mod:`archiver.sync.handoff`)
and commits it, each walk's items in order: alone on SQLite, and on PostgreSQL in two lanes,
pages of different issues on two connections at once (:mod:`archiver.sync.lanes`). A page's
events, its new releases, a merge it revealed and the checkpoint after it commit together or
not at all, so a run killed at any instant resumes every walk at its last committed page and
re-reads at most that one page. On PostgreSQL those commits do not wait for the disk, as
SQLite's do not (see :meth:`Store.transaction`): a server crash may lose the last pages with
their checkpoints, which the next run fetches again.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import replace
from typing import BinaryIO

from sqlalchemy import Connection

from archiver.storage.conflicts import retry_conflicts
from archiver.storage.encode import EncodedEvent
from archiver.storage.store import Store, WriteResult
from archiver.sync import interrupts
from archiver.sync.handoff import Handed, Inbox, InFlight, PageWork, WalkEnded
from archiver.sync.lanes import Lanes
from archiver.sync.report import Progress, SyncReport
from archiver.sync.state import WalkStatus
from archiver.sync.workers import SpooledEvent, release_free_memory

# Events the writer opens and writes at a time, in bytes of pickled rows: a page of 100 large
# events (100 KB each) is written in ten batches, so only a tenth of its row objects exist at
# once; a page of small events is one batch.
WRITE_BATCH_BYTES = 1024 * 1024
# The same for events in PostgreSQL's COPY form: they are bytes, about their pickled size in
# memory, and every batch repeats the page's lookups and sends one COPY per table (on
# PostgreSQL that repetition was a tenth of the writer's and the server's CPU): a page of
# events of up to 40 KB each is one batch.
COPY_BATCH_BYTES = 4 * 1024 * 1024
# Pages written between two returns of freed memory to the system (release_free_memory).
TRIM_EVERY_PAGES = 10
# Connections committing pages at once on PostgreSQL (see archiver.sync.lanes); SQLite: one.
POSTGRESQL_LANES = 2


def lanes_for(dialect: str) -> int:
    """How many pages the writer commits at once on a database of ``dialect``."""
    return POSTGRESQL_LANES if dialect == "postgresql" else 1


class Writer:
    """Commits handed-over pages and walk ends until every walk has ended."""

    def __init__(
        self,
        store: Store,
        inbox: Inbox,
        in_flight: InFlight,
        report: SyncReport,
        progress: Progress,
        on_progress: Callable[[SyncReport, Progress], None] | None = None,
        guard: Callable[[Connection, int], None] | None = None,
        lanes: int = 1,
    ) -> None:
        """``guard(conn, project_id)`` runs last in each transaction, before its commit: it
        raises (and the page rolls back) when the run must not write any more for that
        project (its run lock, or the project's lease, is lost).
        ``lanes`` > 1 commits pages of different issues on that many connections at once
        (:mod:`archiver.sync.lanes`; PostgreSQL only)."""
        self.guard = guard
        self.lanes = lanes
        self._lock = threading.Lock()  # the report and progress, when lanes write at once
        self.store = store
        self.inbox = inbox
        self.in_flight = in_flight
        self.report = report
        self.progress = progress
        self.on_progress = on_progress
        # Issues whose gone_at this writer's commits cleared: a page of theirs clears it again
        # only after a walk end marked them gone. The writer serves one run (on a shared
        # archive, its projects under their leases): no other process marks them in between.
        self._answered: set[int] = set()

    def run(self, walks: Sequence[Future[None]]) -> None:
        """Write until the inbox is empty and every walk is over: here on one connection,
        or in lanes, each on its own (PostgreSQL)."""
        if self.lanes <= 1:
            with self.store.sessions.pinned():
                self._run(walks, None)
            return
        self._run(walks, Lanes(self.lanes, self.handle, _drop, self.store.sessions.pinned))

    def _run(self, walks: Sequence[Future[None]], lanes: Lanes | None) -> None:
        try:
            while True:
                interrupts.check()  # a second Ctrl-C, raised here rather than at any bytecode
                item = self.inbox.get(timeout=0.1)
                if lanes is not None:
                    lanes.check()
                if item is None:
                    if all(f.done() for f in walks) and self.inbox.empty():
                        break
                    continue
                if lanes is None:
                    self.handle(item)
                else:
                    lanes.put(item)
        except BaseException:
            if lanes is not None:
                lanes.close(abandon=True)
            raise
        if lanes is not None:
            lanes.close()

    def handle(self, item: Handed) -> None:
        """Commit one page or walk end (in a lane's thread when there are lanes)."""
        if isinstance(item, PageWork):
            try:
                # a page the database aborted for a conflict with another writer (PostgreSQL:
                # a deadlock on shared new stacks) is written again, not the run failed
                retry_conflicts(functools.partial(self.write_page, item))
            finally:
                item.files.discard()
            self.in_flight.release(item.held)
            if self.report.pages % TRIM_EVERY_PAGES == 0:
                release_free_memory()
        else:
            self.write_end(item)
        if self.on_progress is not None:
            with self._lock:
                self.on_progress(self.report, self.progress)

    def write_page(self, work: PageWork) -> None:
        with self.store.transaction(wait_for_disk=False) as conn:
            if work.releases:
                # by version: syncs sharing a PostgreSQL archive upsert the same releases
                # (one table for the organization) in one order, so they never deadlock
                releases = sorted(work.releases, key=lambda r: str(r["version"]))
                self.store.upsert_releases(conn, releases)
            result = WriteResult()
            with contextlib.ExitStack() as files:
                spooled = any(isinstance(ev, SpooledEvent) for ev in work.events)
                rows = files.enter_context(open(work.files.rows, "rb")) if spooled else None
                for batch in opened(work.events, rows):
                    result += self.store.write_events(conn, batch)
            issue_id = work.walk.issue_id
            if issue_id not in self._answered:
                self.store.clear_issues_gone(conn, [issue_id])  # it answered
            if work.merged_into is not None:
                self.store.mark_issue_merged(conn, work.walk.issue_id, work.merged_into)
            self.store.save_issue_walk(conn, work.walk.row())
            if self.guard is not None:
                self.guard(conn, work.walk.project_id)
        with self._lock:
            self._answered.add(issue_id)  # committed
            self.report.add(result)
            self.report.pages += 1
            self.report.releases += len(work.releases)
            if work.merged_into is not None:
                self.report.merged[work.walk.issue_id] = work.merged_into
            self.progress.events += len(work.events)
            if work.walk.status == WalkStatus.DONE:
                self.report.issues_walked += 1
                self.progress.issues_done += 1

    def write_end(self, end: WalkEnded) -> None:
        if end.status == WalkStatus.GONE:
            self._answered.discard(end.walk.issue_id)
        with self.store.transaction(wait_for_disk=False) as conn:
            walk = replace(end.walk, status=end.status)
            self.store.save_issue_walk(conn, walk.row(), error=end.error)
            if end.status == WalkStatus.GONE:
                self.store.mark_issue_gone(conn, end.walk.issue_id)
            if self.guard is not None:
                self.guard(conn, end.walk.project_id)
        with self._lock:
            self.progress.issues_done += 1
            if end.status == WalkStatus.GONE:
                self.report.gone.append(end.walk.issue_id)
            elif end.status == WalkStatus.FAILED:
                self.report.failures.append({"issue_id": end.walk.issue_id, "error": end.error})


def _drop(item: Handed) -> None:
    """A page that will not be written: its spool files go (the next run fetches it again)."""
    if isinstance(item, PageWork):
        item.files.discard()


def opened(
    events: Sequence[SpooledEvent | EncodedEvent], rows: BinaryIO | None = None
) -> Iterator[list[EncodedEvent]]:
    """A page's events, opened in batches of about :data:`WRITE_BATCH_BYTES` (of
    :data:`COPY_BATCH_BYTES` for events in COPY form); spooled ones are read from the page's
    ``rows`` file."""
    batch: list[EncodedEvent] = []
    size = 0
    limit = WRITE_BATCH_BYTES
    for item in events:
        if isinstance(item, SpooledEvent):
            if rows is None:
                raise ValueError("a spooled event without its rows file")
            event = item.read(rows)
            batch.append(event)
            size += item.length
            limit = WRITE_BATCH_BYTES if event.copy is None else COPY_BATCH_BYTES
        else:
            batch.append(item)
        if size >= limit:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch
