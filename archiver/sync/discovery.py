"""Discovery: the organization's projects, each project's issues, and which to walk.

Issues are listed through the organization issue search with ``query=`` (Sentry's default
``is:unresolved`` would hide resolved and ignored issues) and ``sort=new`` (first seen does
not move while events arrive, so paging cannot skip an issue), in the window
``[bookmark - overlap, server now)``. Each page's issues and the discovery cursor commit
together. An issue with new activity since its last walk is marked *pending*; the walks to do
are every pending, unfinished or failed one, the biggest first.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any

from sqlalchemy import Connection

from archiver.config import Settings
from archiver.errors import ApiError, ConfigError, NotFoundError, PaginationError
from archiver.normalize import normalize_issue, normalize_project
from archiver.sentry.client import Page, SentryClient
from archiver.sentry.pagination import Paginator
from archiver.storage.store import Store
from archiver.sync.clock import FLOOR, ServerClock, floor_second
from archiver.sync.report import SyncReport
from archiver.sync.state import IssueWalk, WalkStatus

log = logging.getLogger("archiver.sync.discovery")


def required_org(settings: Settings) -> str:
    """The organization every request names; refused before any request when it is not set."""
    if not settings.org:
        raise ConfigError("missing the organization (--org or SENTRY_ORG)")
    return settings.org


class Discovery:
    """Lists projects and issues, and schedules the walks of issues with new events."""

    def __init__(
        self,
        client: SentryClient,
        store: Store,
        settings: Settings,
        clock: ServerClock,
        report: SyncReport,
    ) -> None:
        self.client = client
        self.store = store
        self.settings = settings
        self.org = required_org(settings)
        self.clock = clock
        self.report = report

    # ------------------------------------------------------------------ projects

    def fetch_projects(self) -> list[dict[str, Any]]:
        """The organization's projects (only the chosen ones when some are named)."""
        try:
            self.client.use_region(self.org)  # sentry.io only: talk to the org's region directly
            page = self.client.list_projects_page(self.org)
        except NotFoundError as exc:  # the first requests under the org: its slug is wrong
            raise self._org_not_found() from exc
        rows: list[dict[str, Any]] = []
        denied: list[dict[str, Any]] = []  # listed, but the token's user is not a member
        pages = Paginator()
        while True:
            self.clock.observe(page.headers)
            for p in page.items:
                if isinstance(p, dict):
                    row = normalize_project(p, self.org)
                    (denied if p.get("hasAccess") is False else rows).append(row)
            try:
                pages.advance(page.next_cursor, page.has_next, len(page.items))
            except PaginationError as exc:
                raise ApiError(f"the project list of {self.org!r}: {exc}") from exc
            if pages.finished:
                break
            page = self.client.list_projects_page(self.org, cursor=pages.cursor)
        if self.settings.projects:
            return self._chosen(rows, denied)
        if denied:
            log.warning(
                "skipping project(s) this token cannot read (its user is not a member): %s",
                ", ".join(sorted(str(r["slug"]) for r in denied)),
            )
        return rows

    def _org_not_found(self) -> ConfigError:
        """A usage error naming the organisations the token can see (a misspelled ``--org``).

        Sentry answers an unknown slug with 404 on everything under it, which is no server
        failure: the request names the wrong organisation. The base URL names the server
        (never the token: it travels in a header only).
        """
        known = self._visible_orgs()
        listed = "could not be listed" if known is None else ", ".join(known) or "none"
        return ConfigError(
            f"organization {self.org!r} not found at {self.client.base_url} "
            f"(organizations this token can see: {listed})"
        )

    def _visible_orgs(self, max_pages: int = 10) -> list[str] | None:
        """The slugs ``GET /api/0/organizations/`` lists, or None when it cannot be read."""
        slugs: list[str] = []
        pages = Paginator()
        try:
            while not pages.finished and max_pages > 0:
                page = self.client.list_organizations_page(pages.cursor)
                slugs.extend(str(o["slug"]) for o in page.items if isinstance(o, dict))
                pages.advance(page.next_cursor, page.has_next, len(page.items))
                max_pages -= 1
        except (ApiError, PaginationError) as exc:
            log.info("could not list the organizations this token can see: %s", exc)
            return None
        return sorted(set(slugs))

    def _chosen(
        self, rows: list[dict[str, Any]], denied: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """The projects named by ``--project``: each must exist and be readable.

        A named project the token cannot read is a usage error (exit 2), like a name that
        does not exist: the token works, the request names the wrong project (or the token's
        user must join it), and nothing has been written yet.
        """
        wanted = self.settings.projects

        def keyed(found: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
            return {str(r["slug"]): r for r in found} | {str(r["id"]): r for r in found}

        by_key, no_access = keyed(rows), keyed(denied)
        refused = [w for w in wanted if w not in by_key and w in no_access]
        if refused:
            raise ConfigError(
                f"project(s) of organization {self.org!r} this token cannot read (its user is "
                f"not a member; hasAccess is false): {', '.join(refused)}"
            )
        missing = [w for w in wanted if w not in by_key]
        if missing:
            known = ", ".join(sorted(str(r["slug"]) for r in rows)) or "none"
            raise ConfigError(
                f"project(s) not found in organization {self.org!r}: {', '.join(missing)} "
                f"(projects this token can see: {known})"
            )
        return list({by_key[w]["id"]: by_key[w] for w in wanted}.values())

    def save_projects(self, rows: list[dict[str, Any]]) -> None:
        # by id: syncs sharing a PostgreSQL archive upsert the same rows, in the same order
        with self.store.transaction() as conn:
            self.store.upsert_projects(conn, sorted(rows, key=lambda r: int(r["id"])))

    # ------------------------------------------------------------------ issues

    def _earliest(self) -> dt.datetime:
        return self.settings.earliest or FLOOR

    def discover_issues(
        self,
        project: Mapping[str, Any],
        check_stop: Callable[[], None],
        guard: Callable[[Connection, int], None] | None = None,
    ) -> None:
        """List the project's issues seen since its bookmark; mark those with new events.

        ``check_stop()`` is called before each request (it raises when the run must stop).
        ``guard(conn, project_id)`` runs last in each page's transaction, as in a walk's:
        it raises, and the page rolls back, once the run lock or the project's lease is
        another process's. A page is answered long after its request began at times (a
        rate-limit wait, a process paused longer than the lease), and by then the process
        that took the project over may have written newer issues and a newer bookmark, which
        this older page must not overwrite.
        """
        pid = int(project["id"])
        with self.store.transaction() as conn:
            state = self.store.project_sync(conn, pid) or {}
        bookmark = state.get("issues_synced_until")
        if self.settings.rescan:
            bookmark = None  # list every issue: catches merges and events landing in the past
        start = bookmark - self.settings.overlap if bookmark else self._earliest()
        start = max(start, self._earliest())
        end = state.get("discovery_end")
        done = state.get("issues_synced_until")
        if end is not None and (end <= start or (done is not None and end <= done)):
            # A discovery in progress pins its end after the last completed one's; one that
            # does not is stale (an older version let a process that had lost the project's
            # lease write it over the taker's newer bookmark). Resumed, it would move the bookmark
            # back, or (its end before the window's start) be refused by Sentry on every run
            # (400: start must be before end). What it covered is covered already.
            log.warning("project %s: discarding a stale discovery in progress", pid)
            end = None
        pages = Paginator(state.get("discovery_cursor") if end else None)
        if end is None:
            end = floor_second(self.clock.now()) + dt.timedelta(seconds=1)
        while not pages.finished:
            check_stop()
            page = self._issues_page(pid, start, end, pages.cursor)
            self.clock.observe(page.headers)
            try:
                pages.advance(page.next_cursor, page.has_next, len(page.items))
            except PaginationError as exc:
                raise ApiError(f"the issue list of project {pid}: {exc}") from exc
            payloads = [i for i in page.items if isinstance(i, dict)]
            issues = [normalize_issue(i, project_id=pid) for i in payloads]
            with self.store.transaction() as conn:
                self._save_issues(conn, pid, payloads, issues)
                if pages.finished:
                    self.store.save_project_sync(
                        conn,
                        pid,
                        issues_synced_until=end,
                        discovery_end=None,
                        discovery_cursor=None,
                    )
                else:
                    self.store.save_project_sync(
                        conn, pid, discovery_end=end, discovery_cursor=pages.cursor
                    )
                if guard is not None:
                    guard(conn, pid)
            self.report.issues_discovered += len(issues)

    def _issues_page(
        self, pid: int, start: dt.datetime, end: dt.datetime, cursor: str | None
    ) -> Page:
        """One page of the project's issue search; an unknown environment is a usage error."""
        try:
            return self.client.list_issues_page(
                self.org,
                project_id=pid,
                query=self.settings.query,
                sort="new",
                start=start,
                end=end,
                environments=self.settings.environments,
                cursor=cursor,
            )
        except NotFoundError:
            # Sentry's issue search answers 404 when an ``environment`` does not exist in the
            # organization (its event lists answer an empty list instead): say which one,
            # before any issue could be walked with it, let alone called gone.
            if not self.settings.environments:
                raise
            missing = self._unknown_environments()
            if not missing:
                raise
            names = ", ".join(repr(e) for e in missing)
            what = "environment" if len(missing) == 1 else "environments"
            verb = "does" if len(missing) == 1 else "do"
            raise ConfigError(
                f"{what} {names} {verb} not exist in organization {self.org!r}"
            ) from None

    def _unknown_environments(self) -> list[str]:
        """The ``--environment`` names the issue search refuses, one small request each."""
        missing: list[str] = []
        for env in self.settings.environments:
            try:
                self.client.list_issues_page(self.org, environments=(env,), limit=1)
            except NotFoundError:
                missing.append(env)
        return missing

    def _save_issues(
        self,
        conn: Connection,
        pid: int,
        payloads: list[dict[str, Any]],
        issues: list[dict[str, Any]],
    ) -> None:
        """Store a page of listed issues and schedule the walks their activity calls for."""
        ids = [int(i["id"]) for i in issues]
        before = self.store.times_seen(conn, ids)
        have = self.store.archived_counts(conn, ids) if self.settings.rescan else {}
        self.store.upsert_issues(conn, issues)
        walks = self.store.issue_walks(conn, pid)
        for payload, issue in zip(payloads, issues, strict=False):
            rewalk = self._arrived_in_the_past(payload, issue, before, have)
            row = walks.get(int(issue["id"]))
            self._schedule_walk(
                conn,
                issue,
                IssueWalk.from_row(row) if row is not None else None,
                rewalk=rewalk,
                grew=_lifetime_grew(payload, issue, before),
            )

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
        conn: Connection,
        issue: Mapping[str, Any],
        walk: IssueWalk | None,
        *,
        rewalk: bool = False,
        grew: bool = False,
    ) -> None:
        iid, pid = int(issue["id"]), int(issue["project_id"])
        if walk is None:
            walk = IssueWalk(iid, pid, WalkStatus.PENDING)
        elif rewalk and walk.status.settled:
            log.info("issue %s gained events before its bookmark: walking it all again", iid)
            walk = replace(walk, status=WalkStatus.PENDING, synced_until=None)
        elif walk.status.settled:
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
            walk = replace(walk, status=WalkStatus.PENDING)
        else:
            return  # pending, walking or failed already: it will be walked
        self.store.save_issue_walk(conn, walk.row())

    def walks_to_do(self, project_ids: Iterable[int]) -> list[IssueWalk]:
        """The walks this run makes: every pending, unfinished or failed one, biggest first."""
        todo: list[IssueWalk] = []
        with self.store.transaction() as conn:
            for pid in project_ids:
                walks = map(IssueWalk.from_row, self.store.issue_walks(conn, pid).values())
                todo.extend(w for w in walks if w.status.to_walk)
            sizes = self.store.times_seen(conn, [w.issue_id for w in todo])
        # Longest first: a big issue is walked page after page by one thread, so started last
        # it would run alone at the end of the run while the other threads have nothing to do.
        return sorted(todo, key=lambda w: (-(sizes.get(w.issue_id) or 0), w.issue_id))


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
