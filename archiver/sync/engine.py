"""The sync engine: discovery, pinned cursor walks, one writer.

How a run goes:

1. **Projects**: list the organization's projects (optionally only the chosen ones).
2. **Issue discovery** per project, through the organization issues search with ``query=``
   (Sentry's default ``is:unresolved`` would hide resolved and ignored issues) and ``sort=new``
   (first seen does not move while events arrive, so paging cannot skip an issue), in the window
   ``[bookmark - overlap, server now)``. Each page's issues and the discovery cursor commit
   together. An issue whose ``lastSeen`` reached its walk bookmark is marked *pending*.
3. **Event walks** of every pending issue, ``concurrency`` at a time, with ``full=true`` so a
   page carries 100 complete events. Each walk pins its window ``[start, end)`` with ``end`` a
   whole second of the *server's* clock (from its ``Date`` header). Why that makes offsets safe:
   the list is newest first; an event arriving later is dated at or after ``end`` and falls
   outside the pinned window, so it cannot shift offsets; an event expiring is the oldest and
   leaves the *end* of the list, never a page before the cursor. A late arrival dated inside
   a finished window is picked up by the next walk, which starts ``overlap`` before the
   previous ``end``.
4. **One writer** (the calling thread) commits each page's rows together with the walk's
   checkpoint. A run killed at any instant resumes every walk at its last committed cursor in
   the same window; a page fetched but not committed is simply fetched again (upserts are
   idempotent).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import email.utils
import gc
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, BinaryIO

from sqlalchemy import update

from archiver.config import Settings
from archiver.errors import (
    ApiError,
    AuthError,
    ConfigError,
    InterruptedRun,
    NotFoundError,
)
from archiver.normalize.event import (
    normalize_issue,
    normalize_project,
    normalize_release,
)
from archiver.operations.scrub import make_scrubber, normalize_scrubbed
from archiver.sentry.body import BodyFile
from archiver.sentry.client import Page, SentryClient
from archiver.storage.store import (
    ISSUES,
    EncodedEvent,
    IssueWalk,
    Store,
    WriteResult,
    encode_event,
    utcnow,
)
from archiver.sync import keyset
from archiver.sync.spool import PageFiles, Spool
from archiver.sync.workers import PageJob, PageNormalizer, SpooledEvent

log = logging.getLogger("archiver.sync.engine")

# Without an earliest date, walks start here: before any event Sentry can hold.
FLOOR = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
PENDING, WALKING, DONE, FAILED, GONE = "pending", "walking", "done", "failed", "gone"


def floor_second(value: dt.datetime) -> dt.datetime:
    return value.replace(microsecond=0)


def _epoch(value: dt.datetime) -> int:
    """A window bound in whole epoch seconds (the walk's state machine counts in seconds)."""
    return int(value.timestamp() // 1)


def _datetime(second: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(second, dt.timezone.utc)


def _key(item: Any) -> keyset.Key:
    """A listed event's id and second: from the worker for a spooled event, else read here."""
    if isinstance(item, SpooledEvent):
        return keyset.Key(item.event_id, item.second)
    return keyset.event_key(item)


@dataclass
class SyncReport:
    """What a run did (also recorded in the ``runs`` table)."""

    projects: int = 0
    issues_discovered: int = 0
    issues_walked: int = 0
    pages: int = 0
    events_new: int = 0
    events_updated: int = 0
    events_unchanged: int = 0
    releases: int = 0
    details_fetched: int = 0
    failures: list[dict[str, Any]] = field(default_factory=list)
    gone: list[int] = field(default_factory=list)
    merged: dict[int, int] = field(default_factory=dict)
    interrupted: bool = False
    events_hollow_ignored: int = 0  # hollow copies kept from replacing complete events

    def add(self, result: WriteResult) -> None:
        self.events_hollow_ignored += result.hollow_ignored
        self.events_new += result.inserted
        self.events_updated += result.updated
        self.events_unchanged += result.unchanged


@dataclass
class _PageWork:
    """A fetched, normalized page on its way to the writer, with the checkpoint after it."""

    walk: IssueWalk
    events: list[SpooledEvent | EncodedEvent]
    releases: list[dict[str, Any]]
    merged_into: int | None
    held: int  # bytes of the in-flight budget this page holds until it is committed
    files: PageFiles  # where its events are spooled; removed once committed


@dataclass(frozen=True)
class _Pipeline:
    """Where a walk's pages go after the socket: the spool's files and the page workers."""

    normalizer: PageNormalizer
    spool: Spool


@dataclass
class _WalkEnded:
    walk: IssueWalk
    status: str
    error: str | None = None


class ServerClock:
    """The server's idea of now, from its ``Date`` header (windows are pinned on it)."""

    def __init__(self, local: Callable[[], float] = time.time) -> None:
        self._local = local
        self._offset: float | None = None
        self._lock = threading.Lock()

    def observe(self, headers: Mapping[str, str] | None) -> None:
        if not headers:
            return
        value = headers.get("date") or headers.get("Date")
        if not value:
            return
        try:
            server = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return
        with self._lock:
            self._offset = server.timestamp() - self._local()

    def now(self) -> dt.datetime:
        with self._lock:
            offset = self._offset or 0.0
        return dt.datetime.fromtimestamp(self._local() + offset, dt.timezone.utc)


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


# Page bytes in flight: with concurrency 4 and pages of ~1 MB (events of ~10 KB) nobody
# waits; with pages of 6-12 MB (events of 64-118 KB) two are in flight at a time, so the next
# big page is fetched and normalized while the writer commits the last one. Measured with
# bench/bench_sync.py (10k and 100k events): 8 MB serialized those pages (10k: 516-699
# events/s); 16 MB did not (833 at both sizes) at the same peak RSS (189 / 236 MB); 32 MB
# was no faster and took more memory at 100k (254 MB).
IN_FLIGHT_BYTES = 16 * 1024 * 1024
FIRST_PAGE_ESTIMATE = 1024 * 1024


class _Releases:
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


class Syncer:
    """Archives an organization (or chosen projects) from a Sentry server."""

    def __init__(
        self,
        client: SentryClient,
        store: Store,
        settings: Settings,
        *,
        stop: threading.Event | None = None,
        on_progress: Callable[[SyncReport, Progress], None] | None = None,
        local_clock: Callable[[], float] = time.time,
    ) -> None:
        if not settings.org:
            raise ConfigError("missing the organization (--org or SENTRY_ORG)")
        self.client = client
        self.store = store
        self.settings = settings
        self.org: str = settings.org
        self.scrubber = make_scrubber(settings.scrub, settings.scrub_key)  # before any request
        self.stop = stop or threading.Event()
        self.on_progress = on_progress
        self.server_clock = ServerClock(local_clock)
        self.report = SyncReport()
        self.progress = Progress()
        self.in_flight = InFlight(IN_FLIGHT_BYTES)
        self._fatal: BaseException | None = None

    # ------------------------------------------------------------------ entry point

    def run(self, prepare: Callable[[], None] | None = None) -> SyncReport:
        """Archive; ``prepare`` runs after the first successful request, before any write.

        So a bad token or a missing scope fails before the database is touched at all.
        """
        projects = self.fetch_projects()
        if prepare is not None:
            prepare()
        self.save_projects(projects)
        run_id = self.store.start_run(
            "sync",
            server_url=self.client.base_url,
            organization_slug=self.org,
            options=self.settings.redacted(),
        )
        outcome, message = "failed", None
        try:
            self.report.projects = len(projects)
            for project in projects:
                self._check_stop()
                self.discover_issues(project)
            walks = self._walks_to_do([p["id"] for p in projects])
            self.progress.issues_total = len(walks)
            self.walk_issues(walks)
            if self._fatal is not None:
                raise self._fatal
            if self.stop.is_set():
                self.report.interrupted = True
                outcome = "interrupted"
            else:
                outcome = "partial" if self.report.failures else "success"
            return self.report
        except InterruptedRun:
            self.report.interrupted = True
            outcome = "interrupted"
            raise
        except BaseException as exc:
            message = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            stats = self.client.stats
            self.store.finish_run(
                run_id,
                outcome,
                projects=self.report.projects,
                issues=self.report.issues_walked,
                events_new=self.report.events_new,
                events_updated=self.report.events_updated,
                requests=stats.requests,
                retries=stats.retries,
                errors=self.report.failures or None,
                error_message=message,
            )

    def _check_stop(self) -> None:
        if self.stop.is_set():
            raise InterruptedRun("stopped on request; progress up to the last page is saved")

    # ------------------------------------------------------------------ projects

    def fetch_projects(self) -> list[dict[str, Any]]:
        """The organization's projects (only the chosen ones when some are named)."""
        self.client.use_region(self.org)  # sentry.io only: talk to the org's region directly
        rows: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            page = self.client.list_projects_page(self.org, cursor=cursor)
            self.server_clock.observe(page.headers)
            rows.extend(normalize_project(p, self.org) for p in page.items if isinstance(p, dict))
            if not page.has_next or not page.next_cursor or page.next_cursor == cursor:
                break
            cursor = page.next_cursor
        wanted = self.settings.projects
        if wanted:
            by_key = {str(r["slug"]): r for r in rows} | {str(r["id"]): r for r in rows}
            missing = [w for w in wanted if w not in by_key]
            if missing:
                known = ", ".join(sorted(str(r["slug"]) for r in rows)) or "none"
                raise ConfigError(
                    f"project(s) not found in organization {self.org!r}: {', '.join(missing)} "
                    f"(projects this token can see: {known})"
                )
            rows = list({by_key[w]["id"]: by_key[w] for w in wanted}.values())
        return rows

    def save_projects(self, rows: list[dict[str, Any]]) -> None:
        with self.store.transaction() as conn:
            self.store.upsert_projects(conn, rows)

    # ------------------------------------------------------------------ issues

    def discover_issues(self, project: Mapping[str, Any]) -> None:
        """List the project's issues seen since its bookmark; mark those with new events."""
        pid = int(project["id"])
        with self.store.transaction() as conn:
            state = self.store.project_sync(conn, pid) or {}
        bookmark = state.get("issues_synced_until")
        if self.settings.rescan:
            bookmark = None  # list every issue: catches merges and events landing in the past
        start = bookmark - self.settings.overlap if bookmark else self._earliest()
        start = max(start, self._earliest())
        end = state.get("discovery_end")
        cursor = state.get("discovery_cursor") if end else None
        if end is None:
            end = floor_second(self.server_clock.now()) + dt.timedelta(seconds=1)
        while True:
            self._check_stop()
            page = self.client.list_issues_page(
                self.org,
                project_id=pid,
                query=self.settings.query,
                sort="new",
                start=start,
                end=end,
                environments=self.settings.environments,
                cursor=cursor,
            )
            self.server_clock.observe(page.headers)
            payloads = [i for i in page.items if isinstance(i, dict)]
            issues = [normalize_issue(i, project_id=pid) for i in payloads]
            done = not page.has_next or not page.next_cursor or page.next_cursor == cursor
            with self.store.transaction() as conn:
                ids = [int(i["id"]) for i in issues]
                before = self.store.times_seen(conn, ids)
                have = self.store.archived_counts(conn, ids) if self.settings.rescan else {}
                self.store.upsert_issues(conn, issues)
                walks = self.store.issue_walks(conn, pid)
                for payload, issue in zip(payloads, issues, strict=False):
                    rewalk = self._arrived_in_the_past(payload, issue, before, have)
                    self._schedule_walk(
                        conn,
                        issue,
                        walks.get(int(issue["id"])),
                        rewalk=rewalk,
                        grew=_lifetime_grew(payload, issue, before),
                    )
                if done:
                    self.store.save_project_sync(
                        conn,
                        pid,
                        issues_synced_until=end,
                        discovery_end=None,
                        discovery_cursor=None,
                    )
                else:
                    self.store.save_project_sync(
                        conn, pid, discovery_end=end, discovery_cursor=page.next_cursor
                    )
            self.report.issues_discovered += len(issues)
            if done:
                return
            cursor = page.next_cursor

    def _arrived_in_the_past(
        self,
        payload: Mapping[str, Any],
        issue: Mapping[str, Any],
        before: Mapping[int, int | None],
        have: Mapping[int, int],
    ) -> bool:
        """Did the issue gain events dated before the search window (a merge, a late event)?

        With a date window Sentry reports ``count`` for the window and ``lifetime.count`` for
        the issue's whole life. Growth of the lifetime count beyond the window's count means
        events landed earlier than the walks look: the issue gets a full walk again. On a
        rescan (the window is everything) the window's count is what the server can show:
        more than the archive holds for the issue means the same.
        """
        if self.settings.environments:
            return False  # counts then cover other environments too: no conclusion possible
        if self.settings.rescan:
            try:
                visible = int(payload.get("count") or 0)
            except (TypeError, ValueError):
                return False
            return visible > have.get(int(issue["id"]), 0)
        old = before.get(int(issue["id"]))
        lifetime = issue.get("times_seen")
        if old is None or lifetime is None:
            return False
        if not isinstance(payload.get("lifetime"), dict):
            return False
        try:
            window = int(payload.get("count") or 0)
        except (TypeError, ValueError):
            return False
        return int(lifetime) - int(old) > window

    def _schedule_walk(
        self,
        conn: Any,
        issue: Mapping[str, Any],
        walk: IssueWalk | None,
        *,
        rewalk: bool = False,
        grew: bool = False,
    ) -> None:
        iid, pid = int(issue["id"]), int(issue["project_id"])
        if walk is None:
            walk = IssueWalk(iid, pid, PENDING, None, None, None, None, 0)
        elif rewalk and walk.status in (DONE, GONE):
            log.info("issue %s gained events before its bookmark: walking it all again", iid)
            walk = replace(walk, status=PENDING, synced_until=None)
        elif walk.status in (DONE, GONE):
            last_seen = issue.get("last_seen")
            if (
                not grew
                and walk.synced_until is not None
                and last_seen is not None
                and last_seen < walk.synced_until
            ):
                return  # nothing new since the last completed walk
            # New events: either seen after the bookmark, or (the lifetime count grew while
            # last_seen did not pass the bookmark) events whose own timestamps are older than
            # the walk's pinned end arrived late. The walk re-reads from the bookmark minus
            # the overlap, which holds them.
            walk = replace(walk, status=PENDING)
        else:
            return  # pending, walking or failed already: it will be walked
        self.store.save_issue_walk(conn, walk)

    def _walks_to_do(self, project_ids: Iterable[int]) -> list[IssueWalk]:
        todo: list[IssueWalk] = []
        with self.store.transaction() as conn:
            for pid in project_ids:
                walks = self.store.issue_walks(conn, pid)
                todo.extend(w for w in walks.values() if w.status in (PENDING, WALKING, FAILED))
            sizes = self.store.times_seen(conn, [w.issue_id for w in todo])
        # Longest first: a big issue is walked page after page by one thread, so started last
        # it would run alone at the end of the run while the other threads have nothing to do.
        return sorted(todo, key=lambda w: (-(sizes.get(w.issue_id) or 0), w.issue_id))

    def _earliest(self) -> dt.datetime:
        return self.settings.earliest or FLOOR

    # ------------------------------------------------------------------ walks

    def walk_issues(self, walks: list[IssueWalk]) -> None:
        """Fetch threads walk issues; this thread writes every page in order, alone."""
        if not walks:
            return
        # Two pages waiting are enough to keep the writer busy; every page more is memory
        # (a page of 100 full events is several MB, even pickled) and buys no speed.
        inbox: queue.Queue[_PageWork | _WalkEnded] = queue.Queue(maxsize=2)
        releases = self._release_cache()
        futures: list[Future[None]] = []
        # Worker processes start before the fetch threads (and never share their state).
        workers = min(self.settings.workers, len(walks))
        # Exits in reverse: the fetch threads end first, then the workers, then the spool.
        with (
            _fewer_collections(),
            Spool() as spool,
            PageNormalizer(workers) as normalizer,
            ThreadPoolExecutor(
                max_workers=self.settings.concurrency, thread_name_prefix="walk"
            ) as pool,
        ):
            for walk in walks:
                futures.append(
                    pool.submit(
                        self._walk_guarded, walk, inbox, releases, _Pipeline(normalizer, spool)
                    )
                )
            try:
                self._write_loop(inbox, futures)
            except BaseException:
                self.stop.set()
                raise

    def _write_loop(
        self, inbox: queue.Queue[_PageWork | _WalkEnded], futures: list[Future[None]]
    ) -> None:
        while True:
            try:
                item = inbox.get(timeout=0.1)
            except queue.Empty:
                if all(f.done() for f in futures) and inbox.empty():
                    return
                continue
            if isinstance(item, _PageWork):
                try:
                    self._write_page(item)
                finally:
                    item.files.discard()
                self.in_flight.release(item.held)

            else:
                self._write_end(item)
            if self.on_progress is not None:
                self.on_progress(self.report, self.progress)

    def _write_page(self, work: _PageWork) -> None:
        with self.store.transaction() as conn:
            if work.releases:
                self.store.upsert_releases(conn, work.releases)
            result = WriteResult()
            with contextlib.ExitStack() as files:
                spooled = any(isinstance(ev, SpooledEvent) for ev in work.events)
                rows = files.enter_context(open(work.files.rows, "rb")) if spooled else None
                for batch in _opened(work.events, rows):
                    result += self.store.write_events(conn, batch)
            if work.merged_into is not None:
                conn.execute(
                    update(ISSUES)
                    .where(ISSUES.c.id == work.walk.issue_id)
                    .values(merged_into_id=work.merged_into, updated_at=utcnow())
                )
            self.store.save_issue_walk(conn, work.walk)
        self.report.add(result)
        self.report.pages += 1
        self.report.releases += len(work.releases)
        if work.merged_into is not None:
            self.report.merged[work.walk.issue_id] = work.merged_into
        self.progress.events += len(work.events)
        if work.walk.status == DONE:
            self.report.issues_walked += 1
            self.progress.issues_done += 1

    def _write_end(self, end: _WalkEnded) -> None:
        with self.store.transaction() as conn:
            self.store.save_issue_walk(conn, replace(end.walk, status=end.status), error=end.error)
            if end.status == GONE:
                conn.execute(
                    update(ISSUES)
                    .where(ISSUES.c.id == end.walk.issue_id)
                    .values(gone_at=utcnow(), updated_at=utcnow())
                )
        self.progress.issues_done += 1
        if end.status == GONE:
            self.report.gone.append(end.walk.issue_id)
        elif end.status == FAILED:
            self.report.failures.append({"issue_id": end.walk.issue_id, "error": end.error})

    def _release_cache(self) -> _Releases:
        from sqlalchemy import select

        from archiver.storage.store import RELEASES

        with self.store.engine.connect() as conn:
            return _Releases(r[0] for r in conn.execute(select(RELEASES.c.version)))

    def _walk_guarded(
        self,
        walk: IssueWalk,
        inbox: queue.Queue[_PageWork | _WalkEnded],
        releases: _Releases,
        pipeline: _Pipeline,
    ) -> None:
        latest = [walk]  # the checkpoint of the last page handed to the writer
        try:
            self._walk(latest, inbox, releases, pipeline)
        except NotFoundError:
            log.warning("issue %s no longer exists (404); keeping what is archived", walk.issue_id)
            self._put(inbox, _WalkEnded(latest[0], GONE, "404: the issue no longer exists"))
        except AuthError as exc:
            self._fatal = exc
            self.stop.set()
        except ApiError as exc:
            log.error("issue %s: %s", walk.issue_id, exc)
            self._put(inbox, _WalkEnded(latest[0], FAILED, str(exc)))
        except Exception as exc:  # a bug must not take the other walks down with it
            log.exception("issue %s: unexpected error", walk.issue_id)
            self._put(inbox, _WalkEnded(latest[0], FAILED, f"{type(exc).__name__}: {exc}"))

    def _put(
        self, inbox: queue.Queue[_PageWork | _WalkEnded], item: _PageWork | _WalkEnded
    ) -> bool:
        """Hand over to the writer; gives up (False) when the run is stopping and the writer
        is gone."""
        while True:
            try:
                inbox.put(item, timeout=0.2)
                return True
            except queue.Full:
                if self.stop.is_set() and self._fatal is not None:
                    return False

    def _walk(
        self,
        latest: list[IssueWalk],
        inbox: queue.Queue[_PageWork | _WalkEnded],
        releases: _Releases,
        pipeline: _Pipeline,
    ) -> None:
        """Walk one issue's events by moving ``end`` (see :mod:`archiver.sync.keyset`).

        Each request asks for offset 0 of ``[start, end)`` (or pages one crowded second
        alone in a stable order); each page is committed with the walk's state, so a resume
        continues exactly where the last committed page left it.
        """
        walk = latest[0]
        state = None
        if walk.walk_start is not None and walk.walk_end is not None:
            state = keyset.decode(_epoch(walk.walk_start), _epoch(walk.walk_end), walk.walk_cursor)
            if state is None and walk.walk_cursor is not None:
                # An older version's offset cursor: restart that window from its start
                # (what is archived stays; upserts make the repeat harmless).
                state = keyset.begin(_epoch(walk.walk_start), _epoch(walk.walk_end))
        if state is None:
            start = walk.synced_until - self.settings.overlap if walk.synced_until else FLOOR
            start = max(start, self._earliest())
            end = floor_second(self.server_clock.now())
            walk = replace(
                walk,
                status=WALKING,
                walk_start=start,
                walk_end=end,
                walk_cursor=None,
                walk_events=0,
            )
            state = keyset.begin(_epoch(start), _epoch(end))
        window_start = walk.walk_start
        assert window_start is not None
        job = PageJob(
            walk.project_id,
            walk.issue_id,
            self.store.engine.dialect.name,
            self.settings.detail == "always",
            self.settings.scrub,
            self.settings.scrub_key,
        )
        size = [0]

        estimate = FIRST_PAGE_ESTIMATE
        while not self.stop.is_set():
            if state.done:  # an empty window: nothing to ask
                walk = replace(walk, status=DONE, synced_until=walk.walk_end, walk_cursor=None)
                if self._put(inbox, _WalkEnded(walk, DONE)):
                    latest[0] = walk
                return
            self.in_flight.acquire(estimate, self.stop)
            if self.stop.is_set():
                self.in_flight.release(estimate)
                return
            files = pipeline.spool.page()

            def parse(body: BodyFile, files: PageFiles = files) -> Any:
                size[0] = body.size
                try:
                    return pipeline.normalizer.spooled(body, files.rows, job)
                finally:
                    os.unlink(body.path)  # read by now; a retry streams it again

            fetch = state.fetch()
            try:
                page = self.client.list_issue_events_page(
                    self.org,
                    walk.issue_id,
                    start=max(window_start, _datetime(fetch.start)),
                    end=_datetime(fetch.end),
                    environments=self.settings.environments,
                    full=True,
                    cursor=fetch.cursor,
                    sample=fetch.sample,
                    parse=parse,
                    body_path=files.body,
                )
                keys = [_key(item) for item in page.items]
                try:
                    state, keep = keyset.advance(state, keys, page.has_next, page.next_cursor)
                except keyset.WalkBroken as exc:
                    raise ApiError(f"issue {walk.issue_id}: {exc}") from exc
                kept = [page.items[i] for i in keep]
                events, merged_into = self._normalize_page(walk, replace(page, items=kept))
                release_rows = self._new_releases(events, releases)
            except BaseException:
                files.discard()
                self.in_flight.release(estimate)
                raise
            held = size[0]
            self.in_flight.adjust(held - estimate)
            estimate = max(held, 64 * 1024)
            if state.done:
                walk = replace(
                    walk,
                    status=DONE,
                    synced_until=walk.walk_end,
                    walk_cursor=None,
                    walk_events=walk.walk_events + len(events),
                )
            else:
                walk = replace(
                    walk,
                    status=WALKING,
                    walk_cursor=keyset.encode(state),
                    walk_events=walk.walk_events + len(events),
                )
            if not self._put(
                inbox, _PageWork(walk, events, release_rows, merged_into, held, files)
            ):
                files.discard()
                self.in_flight.release(held)
                return
            latest[0] = walk
            if state.done:
                return

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
                payload, has_detail = self._fetch_detail(walk, item)
                ev = encode_event(
                    normalize_scrubbed(
                        self.scrubber,
                        payload,
                        project_id=walk.project_id,
                        issue_id=walk.issue_id,
                        has_detail=has_detail,
                    ),
                    self.store.engine.dialect.name,
                )
            if ev.issue_id is not None and ev.issue_id != walk.issue_id:
                merged_into = ev.issue_id  # Sentry answered for a merged issue with its target
            events.append(ev)
        return events, merged_into

    def _fetch_detail(self, walk: IssueWalk, item: Any) -> tuple[Any, bool]:
        event_id = item.get("eventID") or item.get("id") if isinstance(item, dict) else None
        if not event_id:
            return item, False
        try:
            detail = self.client.get_issue_event(self.org, walk.issue_id, str(event_id))
        except NotFoundError:
            return item, False  # expired between the list and the detail: keep what we have
        self.report.details_fetched += 1
        return detail, True

    def _new_releases(
        self, events: Sequence[SpooledEvent | EncodedEvent], releases: _Releases
    ) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for ev in events:
            version = ev.release_version
            if not version or not releases.claim(version):
                continue
            if ev.release is not None:
                rows.append(ev.release)
            elif self.settings.releases:
                try:
                    rows.append(normalize_release(self.client.get_release(self.org, version)))
                except NotFoundError:
                    log.info("release %r not found on the server", version)
        return rows


@contextlib.contextmanager
def _fewer_collections(threshold: int = 10_000) -> Iterator[None]:
    """Run the walk with fewer cyclic garbage collections (restored afterwards).

    The writer opens thousands of row tuples per batch, and each 700 allocations started a
    collection that walked them again, while every full collection also walked the whole
    import-time heap (SQLAlchemy, httpx, ...). Freezing that heap and collecting young
    objects every 10,000 allocations: 1,238 collections of which 6 full, 0.85-0.96 s, became
    236 and 1 full, 0.13-0.18 s, in a 19,325-event sync (measured with ``gc.callbacks``).
    Rows are tuples of strings and numbers, freed by reference counting as before; only
    cyclic garbage (httpx's, exceptions') waits a little longer for its collection.
    """
    old = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(threshold, old[1], old[2])
    try:
        yield
    finally:
        gc.set_threshold(*old)
        gc.unfreeze()


@dataclass
class Progress:
    """Counters for the progress display."""

    issues_total: int = 0
    issues_done: int = 0
    events: int = 0
    started: float = field(default_factory=time.monotonic)


# Events the writer opens and writes at a time, in bytes of pickled rows: a page of 100 large
# events (100 KB each) is written in ten batches, so only a tenth of its row objects exist at
# once; a page of small events is one batch, as before.
WRITE_BATCH_BYTES = 1024 * 1024


def _opened(
    events: Sequence[SpooledEvent | EncodedEvent], rows: BinaryIO | None = None
) -> Iterator[list[EncodedEvent]]:
    """A page's events, opened in batches of about :data:`WRITE_BATCH_BYTES`; spooled ones
    are read from the page's ``rows`` file."""
    batch: list[EncodedEvent] = []
    size = 0
    for item in events:
        if isinstance(item, SpooledEvent):
            if rows is None:
                raise ValueError("a spooled event without its rows file")
            batch.append(item.read(rows))
            size += item.length
        else:
            batch.append(item)
        if size >= WRITE_BATCH_BYTES:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def _lifetime_grew(
    payload: Mapping[str, Any], issue: Mapping[str, Any], before: Mapping[int, int | None]
) -> bool:
    """Did the issue's lifetime event count grow since the archive last listed it?

    Only a ``lifetime`` count means anything here: without a date window's ``lifetime`` the
    count covers the search window alone, and two windows' counts cannot be compared.
    """
    if not isinstance(payload.get("lifetime"), dict):
        return False
    old = before.get(int(issue["id"]))
    now = issue.get("times_seen")
    return old is not None and now is not None and int(now) > int(old)
