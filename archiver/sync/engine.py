"""The sync engine: discovery, pinned keyset walks, one writer.

How a run goes:

1. **Projects**: list the organization's projects (optionally only the chosen ones).
2. **Issue discovery** per project, through the organization issues search with ``query=``
   (Sentry's default ``is:unresolved`` would hide resolved and ignored issues) and ``sort=new``
   (first seen does not move while events arrive, so paging cannot skip an issue), in the window
   ``[bookmark - overlap, server now)``. Each page's issues and the discovery cursor commit
   together. An issue whose ``lastSeen`` reached its walk bookmark is marked *pending*.
3. **Event walks** of every pending issue, ``concurrency`` at a time, with ``full=true`` so a
   page carries 100 complete events. The requests of one endpoint in flight follow the
   server's ``ConcurrentLimit`` (:mod:`archiver.sentry.concurrency`), up to ``concurrency``.
   Each walk pins its window ``[start, end)`` with ``end`` a whole second of the *server's*
   clock (from its ``Date`` header), then walks it by keyset (:mod:`archiver.sync.keyset`):
   every request asks offset 0 and moves ``end`` down to the oldest second read, so
   same-second events in any order are neither skipped nor repeated and no request pays for
   a deep offset. A late arrival dated inside a finished window is picked up by the next
   walk, which starts ``overlap`` before the previous ``end``.
4. **One writer** (the calling thread) commits each page's rows together with the walk's
   checkpoint. A run killed at any instant resumes every walk at its last committed cursor in
   the same window; a page fetched but not committed is simply fetched again (upserts are
   idempotent).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError

from archiver.config import Settings
from archiver.errors import AuthError, DatabaseError, InterruptedRun, LeaseLostError
from archiver.normalize import make_scrubber
from archiver.sentry.client import SentryClient
from archiver.storage.base import utcnow
from archiver.storage.leases import Leases, claim_order
from archiver.storage.lock import HeldLock
from archiver.storage.store import Store
from archiver.sync import interrupts, redetail
from archiver.sync.clock import ServerClock
from archiver.sync.discovery import Discovery, required_org
from archiver.sync.diskfull import database_error
from archiver.sync.gcpause import fewer_collections
from archiver.sync.handoff import IN_FLIGHT_BYTES, Inbox, InFlight, ProjectStop, Shutdown
from archiver.sync.refill import More, Refill
from archiver.sync.report import Progress, SyncReport
from archiver.sync.spool import Spool, remove_stale
from archiver.sync.state import IssueWalk
from archiver.sync.walk import Pipeline, Releases, Walker
from archiver.sync.workers import PageNormalizer
from archiver.sync.writer import Writer, lanes_for

# Leased projects a sync claims at first (PostgreSQL): each project's walk ends with its
# biggest issue walked alone, the other core idle; walked together, one's tail overlaps the
# other's walk (the README's issue-17 figures). More are claimed only as the walks run low
# (sync/refill.py), so that other syncs still find projects to claim.
PROJECTS_AT_ONCE = 2

__all__ = ["Progress", "SyncReport", "Syncer"]

log = logging.getLogger("archiver.sync.engine")


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
        self.org = required_org(settings)
        self.client = client
        self.store = store
        self.settings = settings
        self.scrubber = make_scrubber(settings.scrub, settings.scrub_key)  # before any request
        self.stop = stop or threading.Event()
        self.shutdown = Shutdown(self.stop)
        self.on_progress = on_progress
        # The run lock once taken (the runner's ``prepare`` sets it): every page's transaction
        # checks that it is still this run's, and a run that lost it is recorded failed.
        self.run_lock: HeldLock | None = None
        # PostgreSQL, the lock shared with other syncs: the project leases, and the projects
        # whose leases this process walks now (each page checks it still holds its own).
        self.leases: Leases | None = None
        self.project_ids: frozenset[int] = frozenset()
        self._project_stop: ProjectStop | None = None
        self.server_clock = ServerClock(local_clock)
        self.report = SyncReport()
        self.progress = Progress()
        self.in_flight = InFlight(IN_FLIGHT_BYTES)
        self.discovery = Discovery(client, store, settings, self.server_clock, self.report)
        # one for the run: its passes (one a leased project) share the budget and candidates
        self.redetail = redetail.Context(
            client,
            store,
            self.org,
            self.scrubber,
            settings.concurrency,
            self.report,
            utcnow(),  # events written since are this run's own
            guard=self.verify,
        )

    def run(self, prepare: Callable[[], None] | None = None) -> SyncReport:
        """Archive; ``prepare`` runs after the first successful request, before any write.

        So a bad token or a missing scope fails before the database is touched at all.
        """
        projects = self.discovery.fetch_projects()
        if prepare is not None:
            prepare()
        # Every run, not only one that builds a spool: a run with nothing to walk would leave
        # the spools of killed runs behind.
        remove_stale()
        self.discovery.save_projects(projects)
        run_id = self.store.start_run(
            "sync",
            server_url=self.client.base_url,
            organization_slug=self.org,
            options=self.settings.redacted(),
        )
        outcome, message = "failed", None
        try:
            self.report.projects = len(projects)
            if self.run_lock is not None and self.run_lock.shared:
                self._walk_by_leases(projects, run_id)
            else:
                readable = self._discover(projects)
                walks = self.discovery.walks_to_do([p["id"] for p in readable])
                self.progress.issues_total = len(walks)
                self.walk_issues(walks)
                if self.shutdown.fatal is None:
                    self._retry_details([int(p["id"]) for p in readable], self.stop)
            if self.shutdown.fatal is not None:
                raise self.shutdown.fatal
            self._raise_if_lost()
            if self.stop.is_set():
                self.report.interrupted = True
                outcome = "interrupted"
            else:
                outcome = "partial" if self.report.failures else "success"
            return self.report
        except (InterruptedRun, KeyboardInterrupt):  # a signal, or a second Ctrl-C
            lost = self._lost()
            if lost is not None:  # no: the lost lock (or lease) stopped it
                message = f"{type(lost).__name__}: {lost}"
                raise lost from None
            self.report.interrupted = True
            outcome = "interrupted"
            raise
        except SQLAlchemyError as exc:
            # An error that already ended the run (a full spool) is its cause, not this one.
            fatal = self.shutdown.fatal
            error = fatal if isinstance(fatal, DatabaseError) else None
            error = error or database_error(exc, self.store.engine.url)
            message = str(error)
            raise error from exc
        except BaseException as exc:
            message = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            self._record_end(run_id, outcome, message)

    def _lost(self) -> BaseException | None:
        """The error of a lost run lock (the heartbeat saw it), if any. (A lost project lease
        ends that project's walk only: :meth:`_walk_leased`.)"""
        if self.run_lock is not None and self.run_lock.lost:
            return self.run_lock.lost_error()
        return None

    def _raise_if_lost(self) -> None:
        lost = self._lost()
        if lost is not None:
            raise lost

    def verify(self, conn: Connection, project_id: int | None = None) -> None:
        """Each page's last step before its commit: the lock, and the lease of the page's
        project (without one: of every project walked now), are still this process's (else
        it raises and the page rolls back)."""
        if self.run_lock is not None:
            self.run_lock.verify(conn)
        if self.leases is not None:
            for pid in sorted(self.project_ids) if project_id is None else [project_id]:
                self.leases.verify(conn, pid)

    def _walk_by_leases(self, projects: list[dict[str, Any]], run_id: int) -> None:
        """Several syncs on one PostgreSQL archive: claim a project (the biggest first),
        discover and walk it, mark it finished, and again, until every project is finished
        since this run started.

        A project leased by another process is waited for: it either finishes, or its lease
        expires (its holder died) and this process takes it over, resuming its walks at
        their last committed pages. So when any sync of the round ends, the round is done.
        A project whose lease another process took over from this one is handed over: its
        walk stops, and this process goes on with the others.
        """
        by_id = {int(p["id"]): p for p in projects}
        self.leases = leases = Leases(self.store.engine, run_id=run_id, on_lost=self._lease_lost)
        order = claim_order(self.store.engine, by_id)
        leases.start()
        refused: list[AuthError] = []
        try:
            while True:
                self._check_stop()
                group = self._claim_group(leases, order)
                if not group:
                    if not leases.pending(by_id):
                        break
                    self.stop.wait(min(1.0, leases.seconds / 3))  # another process's project
                    continue
                self.project_ids = frozenset(group)
                stop = ProjectStop(self.stop)
                refused.extend(self._walk_leased(group, by_id, order, stop))
                self._raise_if_lost()
                for pid in group:
                    if leases.is_lost(pid):
                        self._handed_over(by_id[pid])
                    else:  # a stop cut its walks short: unfinished, free for the others
                        leases.release(pid, finished=not stop.is_set())
                self.project_ids = frozenset()
        finally:
            leases.stop()
        if refused and len(refused) == len(by_id):
            raise refused[0]

    @staticmethod
    def _claim_group(leases: Leases, order: list[int]) -> list[int]:
        """Up to :data:`PROJECTS_AT_ONCE` free projects, the biggest first (maybe none)."""
        group: list[int] = []
        while len(group) < PROJECTS_AT_ONCE:
            pid = leases.claim([p for p in order if p not in group])
            if pid is None:
                break
            group.append(pid)
        return group

    def _lease_lost(self, project_id: int) -> None:
        """The leases' ``on_lost`` (any thread): stop the walk of the projects walked with
        that one (the others are released unfinished and claimed again), not the run."""
        stop = self._project_stop
        if stop is not None and project_id in self.project_ids:
            stop.set()

    def _walk_leased(
        self,
        group: list[int],
        by_id: dict[int, dict[str, Any]],
        order: list[int],
        stop: ProjectStop,
    ) -> list[AuthError]:
        """Leased projects' discovery and walks, together, stopped (not failed) if another
        process takes one of their leases over; any other error ends the run as before.

        While their walks run low, the next free project (in ``order``) is claimed, added to
        ``group`` and walked with them (:mod:`archiver.sync.refill`)."""
        assert self.leases is not None
        self._project_stop = stop
        shutdown = Shutdown(stop)
        leases = self.leases

        def check_stop() -> None:
            for pid in list(group):
                if leases.is_lost(pid):
                    raise leases.lost_error(pid)
            self._check_stop()

        def claim() -> int | None:
            pid = leases.claim([p for p in order if p not in group])
            if pid is not None:
                group.append(pid)
                self.project_ids = frozenset(group)
            return pid

        try:
            with self.client.stopping(stop):  # its waits for the server end with its walk
                return self._discover_and_walk(group, by_id, shutdown, check_stop, claim)
        except LeaseLostError:
            return []
        except BaseException:
            if shutdown.fatal is not None and not isinstance(shutdown.fatal, LeaseLostError):
                self.shutdown.fail(shutdown.fatal)  # what the run reports
            raise
        finally:
            self._project_stop = None

    def _handed_over(self, project: dict[str, Any]) -> None:
        """The project's lease is another process's: it finishes the project. This run's
        uncommitted pages of it are dropped; their bytes are forgotten with the budget."""
        slug = project.get("slug") or project.get("id")
        log.warning(
            "project %s: handed over to another process, which took its lease over and "
            "finishes it; going on with the other projects",
            slug,
        )
        self.report.handed_over.append(str(slug))
        self.in_flight = InFlight(IN_FLIGHT_BYTES)

    def _discover_and_walk(
        self,
        group: list[int],
        by_id: dict[int, dict[str, Any]],
        shutdown: Shutdown,
        check_stop: Callable[[], None],
        claim: Callable[[], int | None],
    ) -> list[AuthError]:
        """Leased projects' discovery and walks, and of those ``claim`` adds while the walks
        run low; the 403s of those the token may not read."""
        refusals: list[AuthError] = []
        readable: list[int] = []

        def discover(pids: list[int]) -> list[IssueWalk]:
            try:
                found = self._discover([by_id[p] for p in pids], check_stop, refusals)
            except AuthError as exc:
                if exc.status != 403:
                    raise
                if not refusals:
                    refusals.append(exc)
                return []  # every one refused
            readable.extend(int(p["id"]) for p in found)
            walks = self.discovery.walks_to_do([int(p["id"]) for p in found])
            self.progress.issues_total += len(walks)
            return walks

        def more() -> list[IssueWalk] | None:
            with self.client.stopping(shutdown.stop):  # in the refill's own thread
                check_stop()
                pid = claim()
                return None if pid is None else discover([pid])

        self.walk_issues(discover(list(group)), shutdown, more)
        if shutdown.fatal is not None:
            raise shutdown.fatal
        self._retry_details(readable, shutdown.stop)
        return refusals

    def _retry_details(self, project_ids: list[int], stop: threading.Event) -> None:
        """After the walks: ask again for the details of events earlier runs kept as listed
        (:mod:`archiver.sync.redetail`); each write checks the lock (and lease) as a page's."""
        if stop.is_set():
            return
        try:
            redetail.retry_details(self.redetail, project_ids, stop)
        except InterruptedRun:
            return  # a stop (the run's, or the project's lease lost): handled as for walks

    def _discover(
        self,
        projects: list[dict[str, Any]],
        check_stop: Callable[[], None] | None = None,
        refusals: list[AuthError] | None = None,
    ) -> list[dict[str, Any]]:
        """Discover each project's issues; the projects whose issues could be listed.

        A 403 on one project's issues (a user token whose user is not a member of it) fails
        that project, reported in the run's failures, and the others go on; a 403 on every
        project is the token's own problem (a missing scope) and ends the run as auth does.
        """
        check_stop = check_stop or self._check_stop
        readable: list[dict[str, Any]] = []
        refused: AuthError | None = None
        for project in projects:
            check_stop()
            try:
                self.discovery.discover_issues(project, check_stop, self.verify)
            except AuthError as exc:
                if exc.status != 403:
                    raise
                refused = exc
                if refusals is not None:
                    refusals.append(exc)
                log.error("project %s: %s", project.get("slug"), exc)
                self.report.failures.append(
                    {"issue_id": None, "project": project.get("slug"), "error": str(exc)}
                )
                continue
            readable.append(project)
        if refused is not None and not readable:
            raise refused
        return readable

    def _record_end(self, run_id: int, outcome: str, message: str | None) -> None:
        """Record the run's end; when the database fails here too, the run's own error (if
        any) is the one to report, so this one is logged, never raised over it."""
        stats = self.client.stats
        try:
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
        except SQLAlchemyError as exc:
            if outcome == "failed":
                log.error("could not record the failed run: %s", database_error(exc))
                return
            raise database_error(exc) from exc

    def _check_stop(self) -> None:
        if self.stop.is_set():
            raise InterruptedRun("stopped on request; progress up to the last page is saved")

    def walk_issues(
        self, walks: list[IssueWalk], shutdown: Shutdown | None = None, more: More | None = None
    ) -> None:
        """Fetch threads walk issues; this thread writes every page in order, alone.

        ``shutdown``: one project's (its walk may end without the run's), else the run's.
        ``more``: asked for more walks while these run low (:mod:`archiver.sync.refill`)."""
        if not walks and more is None:
            return
        shutdown = shutdown or self.shutdown
        inbox = Inbox(shutdown)
        releases = Releases(self.store.release_versions())
        writer = Writer(
            self.store,
            inbox,
            self.in_flight,
            self.report,
            self.progress,
            self.on_progress,
            guard=self.verify,
            lanes=lanes_for(self.store.engine.dialect.name),
        )
        futures: list[Future[None]] = []
        # Worker processes start before the fetch threads (and never share their state);
        # no more than there are walks, unless more may come.
        workers = self.settings.workers if more else min(self.settings.workers, len(walks))
        # Exits in reverse: the fetch threads end first, then the workers, then the spool.
        # A second Ctrl-C is raised by the writer only (interrupts.deferred says why).
        with (
            interrupts.deferred(),
            fewer_collections(),
            Spool() as spool,
            PageNormalizer(workers, self.store.raw_codec) as normalizer,
            ThreadPoolExecutor(
                max_workers=self.settings.concurrency, thread_name_prefix="walk"
            ) as pool,
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="refill") as asker,
        ):
            walker = Walker(
                self.client,
                self.settings,
                scrubber=self.scrubber,
                dialect=self.store.engine.dialect.name,
                clock=self.server_clock,
                report=self.report,
                inbox=inbox,
                in_flight=self.in_flight,
                releases=releases,
                pipeline=Pipeline(normalizer, spool),
            )

            def start(walk: IssueWalk) -> Future[None]:
                future = pool.submit(walker.walk, walk)
                future.add_done_callback(lambda _: inbox.wake())  # maybe the last walk's end
                return future

            try:
                # Inside the try: any error while the walks are being started must fail the
                # shutdown too, or the pool's exit would wait for walks blocked handing pages
                # to a writer that never ran.
                futures.extend(start(walk) for walk in walks)
                if more is not None:
                    low = 2 * self.settings.concurrency  # its discovery overlaps their walks
                    refill = Refill(more, start, futures, shutdown, low)
                    futures.append(asker.submit(refill.run))
                    futures[-1].add_done_callback(lambda _: inbox.wake())
                writer.run(futures)
            except BaseException as exc:
                # The writer is gone: walkers stop handing over (see Shutdown) and walks not
                # started yet never start, so the pool's exit does not wait on them.
                shutdown.fail(exc)
                pool.shutdown(wait=False, cancel_futures=True)
                raise
