"""The fetch side of one issue's walk: keyset requests, detail fetches, pages to the writer.

A walk thread asks for the top of the issue's pinned window (see :mod:`archiver.sync.keyset`
for why never a deep offset), streams the body into the run's spool, lets a worker process
normalize it (:mod:`archiver.sync.workers`), fetches the detail of events the list left
hollow, and hands the page with the checkpoint after it to the writer. It never writes: the
checkpoint becomes true only when the writer commits the page.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, replace
from typing import Any

from archiver.config import Settings
from archiver.errors import ApiError, AuthError, InterruptedRun, NotFoundError, WalkBroken
from archiver.normalize import Scrubber, normalize_release, normalize_scrubbed
from archiver.sentry.body import BodyFile
from archiver.sentry.client import Page, SentryClient
from archiver.sentry.concurrency import first_in_line
from archiver.storage.encode import EncodedEvent, encode_event
from archiver.sync import keyset
from archiver.sync.clock import FLOOR, ServerClock, epoch, floor_second, from_epoch
from archiver.sync.details import fetch_detail
from archiver.sync.diskfull import is_disk_full, spool_full
from archiver.sync.handoff import (
    FIRST_PAGE_ESTIMATE,
    MIN_PAGE_ESTIMATE,
    Inbox,
    InFlight,
    PageWork,
    WalkEnded,
)
from archiver.sync.prefetch import in_thread, read_keys, worth_reading_ahead
from archiver.sync.report import SyncReport
from archiver.sync.spool import PageFiles, Spool
from archiver.sync.state import IssueWalk, WalkStatus
from archiver.sync.workers import PageJob, PageNormalizer, SpooledEvent

log = logging.getLogger("archiver.sync.walk")


class Releases:
    """Release versions already archived or attempted: each is fetched once per archive."""

    def __init__(self, known: Iterable[str]) -> None:
        self._seen = set(known)
        self._lock = threading.Lock()

    def claim(self, version: str) -> bool:
        with self._lock:
            if version in self._seen:
                return False
            self._seen.add(version)
            return True


@dataclass(frozen=True)
class Pipeline:
    """Where a walk's pages go after the socket: the spool's files and the page workers."""

    normalizer: PageNormalizer
    spool: Spool


@dataclass(frozen=True)
class _Fetched:
    """A page as its request left it: the state before and after it, its spool files, the
    bytes it holds, and (``pending``) the wait for its worker when its keys were read ahead."""

    before: keyset.WalkState
    page: Page  # the worker's items, or the listed keys while ``pending``
    keys: list[keyset.Key]
    state: keyset.WalkState
    keep: list[int]
    files: PageFiles
    size: int
    held: int
    pending: Callable[[], Any] | None


def _key(item: Any) -> keyset.Key:
    """A listed event's id and second: from the worker for a spooled event, else read here."""
    if isinstance(item, keyset.Key):  # read ahead from the body (:mod:`.prefetch`)
        return item
    if isinstance(item, SpooledEvent):
        return keyset.Key(item.event_id, item.second)
    return keyset.event_key(item)


class Walker:
    """Walks issues' events, one issue per call of :meth:`walk`, from any number of threads."""

    def __init__(
        self,
        client: SentryClient,
        settings: Settings,
        *,
        scrubber: Scrubber | None,
        dialect: str,
        clock: ServerClock,
        report: SyncReport,
        inbox: Inbox,
        in_flight: InFlight,
        releases: Releases,
        pipeline: Pipeline,
    ) -> None:
        assert settings.org
        self.client = client
        self.settings = settings
        self.org: str = settings.org
        self.scrubber = scrubber
        self.dialect = dialect
        self.clock = clock
        self.report = report
        self.inbox = inbox
        self.shutdown = inbox.shutdown
        self.in_flight = in_flight
        self.releases = releases
        self.pipeline = pipeline

    def walk(self, walk: IssueWalk) -> None:
        """Walk one issue; its end (done, gone or failed) always reaches the writer. Its waits
        for the server end when its project's walk stops, not only with the run."""
        with self.client.stopping(self.shutdown.stop):
            self._walk_one(walk)

    def _walk_one(self, walk: IssueWalk) -> None:
        latest = [walk]  # the checkpoint of the last page handed to the writer
        try:
            self._walk(latest)
        except InterruptedRun:
            return  # a stop cut a wait short: the walk resumes from its last committed page
        except NotFoundError as exc:
            self._not_found(latest[0], exc)
        except AuthError as exc:
            if exc.status != 403:
                self.shutdown.fail(exc)  # the token itself is refused: nothing else can work
                return
            # No access to this issue's project (a user token that is not a member): the
            # issue fails, the other projects' walks go on.
            log.error("issue %s: %s", walk.issue_id, exc)
            self.inbox.put(WalkEnded(latest[0], WalkStatus.FAILED, str(exc)))
        except ApiError as exc:
            log.error("issue %s: %s", walk.issue_id, exc)
            self.inbox.put(WalkEnded(latest[0], WalkStatus.FAILED, str(exc)))
        except Exception as exc:  # a bug must not take the other walks down with it
            if is_disk_full(exc):  # the spool's disk: every walk would fail alike
                self.shutdown.fail(spool_full(self.pipeline.spool.path))
                return
            log.exception("issue %s: unexpected error", walk.issue_id)
            self.inbox.put(WalkEnded(latest[0], WalkStatus.FAILED, f"{type(exc).__name__}: {exc}"))

    def _not_found(self, walk: IssueWalk, exc: NotFoundError) -> None:
        """A 404 from the issue's event list: gone only if its details say 404 as well.

        A 404 is not proof of deletion: a merge in progress answers 404 for a while, and an
        issue reached the wrong way (another region) answers 404 although it exists. So the
        organisation-scoped issue details confirm it; when they answer, the walk has failed
        for now and the next run walks it again. A gone issue keeps everything archived.
        """
        try:
            self.client.get_issue(self.org, walk.issue_id)
        except InterruptedRun:
            return
        except AuthError as refused:
            if refused.status != 403:
                self.shutdown.fail(refused)
                return
            self.inbox.put(WalkEnded(walk, WalkStatus.FAILED, str(refused)))
            return
        except NotFoundError:
            log.warning("issue %s no longer exists (404); keeping what is archived", walk.issue_id)
            self.inbox.put(WalkEnded(walk, WalkStatus.GONE, "404: the issue no longer exists"))
            return
        except ApiError as confirm:
            error = f"{exc}; confirming with the issue's details failed: {confirm}"
            log.error("issue %s: %s", walk.issue_id, error)
            self.inbox.put(WalkEnded(walk, WalkStatus.FAILED, error))
            return
        error = (
            f"{exc}, but the issue's details answer: not gone (a merge in progress?); "
            "it is walked again by the next run"
        )
        log.warning("issue %s: %s", walk.issue_id, error)
        self.inbox.put(WalkEnded(walk, WalkStatus.FAILED, error))

    def _begin(self, walk: IssueWalk) -> tuple[IssueWalk, keyset.WalkState]:
        """The walk's state: resumed from its checkpoint, or a new window pinned now."""
        state = None
        if walk.walk_start is not None and walk.walk_end is not None:
            state = keyset.decode(epoch(walk.walk_start), epoch(walk.walk_end), walk.walk_cursor)
            if state is None and walk.walk_cursor is not None:
                # An older version's offset cursor: restart that window from its start
                # (what is archived stays; upserts make the repeat harmless).
                state = keyset.begin(epoch(walk.walk_start), epoch(walk.walk_end))
        if state is not None:
            return walk, state
        earliest = self.settings.earliest or FLOOR
        start = walk.synced_until - self.settings.overlap if walk.synced_until else FLOOR
        start = max(start, earliest)
        end = floor_second(self.clock.now())
        walk = replace(
            walk,
            status=WalkStatus.WALKING,
            walk_start=start,
            walk_end=end,
            walk_cursor=None,
            walk_events=0,
        )
        return walk, keyset.begin(epoch(start), epoch(end))

    def _walk(self, latest: list[IssueWalk]) -> None:
        """Walk one issue's events by moving ``end`` (see :mod:`archiver.sync.keyset`).

        Each request asks for offset 0 of ``[start, end)`` (or pages one crowded second
        alone in a stable order); each page is committed with the walk's state, so a resume
        continues exactly where the last committed page left it. While a worker normalizes
        a page, the next one is already asked (:mod:`archiver.sync.prefetch`); pages still
        reach the writer one after the other, in order.
        """
        walk, state = self._begin(latest[0])
        job = PageJob(
            walk.project_id,
            walk.issue_id,
            self.dialect,
            self.settings.detail == "always",
            self.settings.scrub,
            self.settings.scrub_key,
        )
        estimate = FIRST_PAGE_ESTIMATE
        stop = self.shutdown.stop
        ahead: Future[_Fetched] | None = None
        try:
            while not stop.is_set():
                if ahead is not None:
                    fetched, ahead = ahead.result(), None
                elif state.done:  # an empty window: nothing to ask
                    self._end_empty(walk, latest)
                    return
                else:
                    self.in_flight.acquire(estimate, stop)
                    if stop.is_set():
                        self.in_flight.release(estimate)
                        return
                    fetched = self._request(walk, state, job, estimate)
                ahead = self._read_ahead(walk, fetched, job)
                work, state = self._finish(walk, fetched, job)
                if ahead is not None and state != fetched.state:  # the worker disagreed
                    self._drop(ahead)
                    ahead = None
                estimate = max(work.held, MIN_PAGE_ESTIMATE)
                if not self.inbox.put(work):
                    work.files.discard()
                    self.in_flight.release(work.held)
                    return
                walk = latest[0] = work.walk
                if state.done:
                    return
        finally:
            if ahead is not None:
                self._drop(ahead)

    def _end_empty(self, walk: IssueWalk, latest: list[IssueWalk]) -> None:
        walk = replace(walk, status=WalkStatus.DONE, synced_until=walk.walk_end, walk_cursor=None)
        if self.inbox.put(WalkEnded(walk, WalkStatus.DONE)):
            latest[0] = walk

    def _read_ahead(
        self, walk: IssueWalk, fetched: _Fetched, job: PageJob
    ) -> Future[_Fetched] | None:
        """Ask the page after ``fetched`` now, if its worker is still normalizing it."""
        state = fetched.state
        if fetched.pending is None or state.done or self.shutdown.stop.is_set():
            return None
        estimate = max(fetched.size, MIN_PAGE_ESTIMATE)
        if not self.in_flight.try_acquire(estimate):
            return None  # the budget is spent: the next page waits as it always did
        return in_thread(lambda: self._ahead(walk, state, job, estimate), "read-ahead")

    def _ahead(
        self, walk: IssueWalk, state: keyset.WalkState, job: PageJob, estimate: int
    ) -> _Fetched:
        # the chain of a long walk goes before new walks' first pages
        with first_in_line(), self.client.stopping(self.shutdown.stop):
            return self._request(walk, state, job, estimate)

    def _drop(self, ahead: Future[_Fetched]) -> None:
        """Give back a page read ahead that will not be used: its files and its bytes."""
        try:
            fetched = ahead.result()
        except BaseException:
            return  # it failed: :meth:`_request` gave its files and bytes back
        self._discard(fetched)

    def _discard(self, fetched: _Fetched) -> None:
        if fetched.pending is not None:
            _settle(fetched.pending)
        fetched.files.discard()
        self.in_flight.release(fetched.held)

    def _request(
        self,
        walk: IssueWalk,
        state: keyset.WalkState,
        job: PageJob,
        estimate: int,
        read_ahead: bool = True,
    ) -> _Fetched:
        """Fetch the page the state asks for, with the state after it. A page whose keys can
        be read here comes back while its worker still normalizes it (``pending``). On
        failure its spool files and its reservation are given back."""
        files = self.pipeline.spool.page()
        size = [0]
        pending: list[Callable[[], Any] | None] = [None]

        def parse(body: BodyFile) -> Any:
            size[0] = body.size
            ahead = read_ahead and worth_reading_ahead(body.waited)
            keys = read_keys(body.path, job.detail_always) if ahead else None
            if keys is not None:
                pending[0] = self.pipeline.normalizer.submit(body.path, files.rows, job)
                if pending[0] is not None:
                    return keys  # the body stays until the worker has read it
            try:
                return self.pipeline.normalizer.spooled(body, files.rows, job)
            finally:
                os.unlink(body.path)  # read by now; a retry streams it again

        fetch = state.fetch()
        window_start = walk.walk_start
        assert window_start is not None
        try:
            page = self.client.list_issue_events_page(
                self.org,
                walk.issue_id,
                start=max(window_start, from_epoch(fetch.start)),
                end=from_epoch(fetch.end),
                environments=self.settings.environments,
                full=True,
                cursor=fetch.cursor,
                sample=fetch.sample,
                parse=parse,
                body_path=files.body,
            )
            keys = [_key(item) for item in page.items]
            after, keep = _advance(walk, state, keys, page)
        except BaseException:
            if pending[0] is not None:
                _settle(pending[0])
            files.discard()
            self.in_flight.release(estimate)
            raise
        return _Fetched(state, page, keys, after, keep, files, size[0], estimate, pending[0])

    def _finish(
        self, walk: IssueWalk, fetched: _Fetched, job: PageJob
    ) -> tuple[PageWork, keyset.WalkState]:
        """The page ready for the writer (the worker's events, detail fetches, releases) and
        the walk's state after it; a page the worker saw otherwise is asked again."""
        page = fetched.page
        if fetched.pending is not None:
            worker_page = self._worker_page(fetched)
            if worker_page is None:
                return self._again(walk, fetched, job)
            page = worker_page
        try:
            kept = [page.items[i] for i in fetched.keep]
            events, merged_into = self._normalize_page(walk, replace(page, items=kept))
            release_rows = self._new_releases(events)
        except BaseException:
            fetched.files.discard()
            self.in_flight.release(fetched.held)
            raise
        self.in_flight.adjust(fetched.size - fetched.held)
        walk = _checkpoint(walk, fetched.state, len(events))
        work = PageWork(walk, events, release_rows, merged_into, fetched.size, fetched.files)
        return work, fetched.state

    def _worker_page(self, fetched: _Fetched) -> Page | None:
        """The page as its worker normalized it; None if the keys read ahead were not the
        worker's (or it found the body invalid): then the page is asked again."""
        assert fetched.pending is not None
        try:
            items = fetched.pending()
        except ValueError:  # an invalid body, which the sequential way retries
            return None
        except BaseException:
            fetched.files.discard()
            self.in_flight.release(fetched.held)
            raise
        finally:
            _unlink(fetched.files.body)
        if not isinstance(items, list) or [_key(i) for i in items] != fetched.keys:
            return None
        return replace(fetched.page, items=items)

    def _again(
        self, walk: IssueWalk, fetched: _Fetched, job: PageJob
    ) -> tuple[PageWork, keyset.WalkState]:
        """Ask a page again the sequential way (its keys read here were not the worker's)."""
        log.warning("issue %s: a page read ahead disagreed with its worker", walk.issue_id)
        fetched.files.discard()
        again = self._request(walk, fetched.before, job, fetched.held, read_ahead=False)
        return self._finish(walk, again, job)

    def _normalize_page(
        self, walk: IssueWalk, page: Page
    ) -> tuple[list[SpooledEvent | EncodedEvent], int | None]:
        """The page's events: normalized by the worker, or fetched in detail here first."""
        events: list[SpooledEvent | EncodedEvent] = []
        merged_into: int | None = None
        for item in page.items:
            ev: SpooledEvent | EncodedEvent
            if isinstance(item, SpooledEvent):
                ev = item
            else:  # the worker left it raw: it needs the event detail endpoint
                detail = fetch_detail(self.client, self.org, walk.issue_id, item, self.report)
                ev = encode_event(
                    normalize_scrubbed(
                        self.scrubber,
                        detail.payload,
                        project_id=walk.project_id,
                        issue_id=walk.issue_id,
                        has_detail=detail.has_detail,
                        decoded=detail.problems,
                    ),
                    self.dialect,
                )
            if ev.issue_id is not None and ev.issue_id != walk.issue_id:
                merged_into = ev.issue_id  # Sentry answered for a merged issue with its target
            events.append(ev)
        return events, merged_into

    def _new_releases(self, events: Sequence[SpooledEvent | EncodedEvent]) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for ev in events:
            version = ev.release_version
            if not version or not self.releases.claim(version):
                continue
            if ev.release is not None:
                rows.append(ev.release)
            elif self.settings.releases:
                try:
                    rows.append(normalize_release(self.client.get_release(self.org, version)))
                except NotFoundError:
                    log.info("release %r not found on the server", version)
        return rows


def _advance(
    walk: IssueWalk, state: keyset.WalkState, keys: list[keyset.Key], page: Page
) -> tuple[keyset.WalkState, list[int]]:
    try:
        return keyset.advance(state, keys, page.has_next, page.next_cursor)
    except WalkBroken as exc:
        raise ApiError(f"issue {walk.issue_id}: {exc}") from exc


def _settle(pending: Callable[[], Any]) -> None:
    """Wait for a worker that writes into files about to be removed (its result is moot)."""
    try:
        pending()
    except Exception:
        log.debug("a discarded page's normalization failed", exc_info=True)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _checkpoint(walk: IssueWalk, state: keyset.WalkState, events: int) -> IssueWalk:
    """The walk record once a page of ``events`` events is committed."""
    if state.done:
        return replace(
            walk,
            status=WalkStatus.DONE,
            synced_until=walk.walk_end,
            walk_cursor=None,
            walk_events=walk.walk_events + events,
        )
    return replace(
        walk,
        status=WalkStatus.WALKING,
        walk_cursor=keyset.encode(state),
        walk_events=walk.walk_events + events,
    )
