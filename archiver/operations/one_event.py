"""``sentry-archiver archive-event``: archive one event with full detail (incident evidence).

``archive-event EVENT_ID`` resolves the id through the organization's event-ID lookup (so the
project need not be known), fetches the project event detail and writes it with its project,
issue and release rows. ``--project SLUG`` skips the lookup; ``--issue ID --latest`` archives
an issue's latest event (``--issue ID EVENT_ID`` one event of that issue). Like everything
else it is idempotent: archiving the same event again leaves one copy, unchanged. The
organization's scrub rules apply exactly as in ``sync``. Each run is recorded in ``runs``
(command ``archive-event``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from archiver.config import Settings
from archiver.errors import ConfigError, EventNotFoundError, NotFoundError
from archiver.normalize import (
    make_scrubber,
    normalize_event_id,
    normalize_issue,
    normalize_project,
    normalize_release,
    normalize_scrubbed,
)
from archiver.sentry.client import SentryClient
from archiver.storage import db
from archiver.storage.store import Store
from archiver.sync.runner import make_client

log = logging.getLogger("archiver.operations.one_event")


@dataclass
class ArchivedEvent:
    """What ``archive-event`` stored."""

    event_id: str
    project_id: int
    project_slug: str | None
    issue_id: int | None
    outcome: str  # new | updated | unchanged
    has_detail: bool
    release: str | None
    scrubbed_paths: int


@dataclass
class _Fetched:
    payload: dict[str, Any]
    has_detail: bool
    project_slug: str | None
    issue_id: int | None


def _q(value: str) -> str:
    return quote(str(value), safe="")


class OneEvent:
    """Fetches one event and everything its rows point at, then writes them in one transaction."""

    def __init__(self, settings: Settings, client: SentryClient | None = None) -> None:
        """Checks the settings (remote, scrub rules and key) before anything is opened."""
        settings.require_remote()
        assert settings.org is not None
        self.settings = settings
        self.org: str = settings.org
        self.scrubber = make_scrubber(settings.scrub, settings.scrub_key)
        self._client = client

    @property
    def client(self) -> SentryClient:
        assert self._client is not None, "OneEvent needs a client to fetch"
        return self._client

    @client.setter
    def client(self, value: SentryClient) -> None:
        self._client = value

    # ------------------------------------------------------------------ fetching

    def fetch(
        self,
        event_id: str | None,
        *,
        project: str | None = None,
        issue_id: int | None = None,
        latest: bool = False,
    ) -> _Fetched:
        if issue_id is not None:
            which = "latest" if latest else self._event_id(event_id)
            try:
                detail = self.client.get_issue_event(self.org, issue_id, which)
            except NotFoundError:
                what = "has no events" if latest else f"has no event {which}"
                raise EventNotFoundError(
                    f"issue {issue_id} {what} on the server (or the issue does not exist)"
                ) from None
            return _Fetched(detail, True, None, issue_id)
        eid = self._event_id(event_id)
        if project is not None:
            try:
                detail = self.client.get_project_event(self.org, project, eid)
            except NotFoundError:
                raise EventNotFoundError(
                    f"event {eid} not found in project {project!r} of organization {self.org!r}"
                ) from None
            return _Fetched(detail, True, project, None)
        try:
            lookup = self.client.resolve_event_id(self.org, eid)
        except NotFoundError:
            raise EventNotFoundError(
                f"event {eid} not found in organization {self.org!r} (unknown, deleted, or "
                "past the server's retention)"
            ) from None
        slug = lookup.get("projectSlug")
        group = lookup.get("groupId")
        issue = int(group) if group is not None and str(group).isdigit() else None
        if isinstance(slug, str) and slug:
            try:
                detail = self.client.get_project_event(self.org, slug, eid)
                return _Fetched(detail, True, slug, issue)
            except NotFoundError:
                log.warning(
                    "event %s: the detail endpoint says 404; keeping the lookup's copy", eid
                )
        event = lookup.get("event")
        if not isinstance(event, dict):
            raise EventNotFoundError(f"event {eid}: the event-ID lookup returned no event")
        return _Fetched(event, False, slug if isinstance(slug, str) else None, issue)

    @staticmethod
    def _event_id(event_id: str | None) -> str:
        eid = normalize_event_id(event_id)
        if eid is None:
            raise ConfigError(f"not an event id: {event_id!r} (32 hexadecimal characters)")
        return eid

    def _project_row(self, slug: str | None, project_id: int) -> dict[str, Any] | None:
        if not slug:
            return None
        path = f"api/0/projects/{_q(self.org)}/{_q(slug)}/"
        try:
            data = self.client.get(path).data
        except NotFoundError:
            return None
        if not isinstance(data, dict) or str(data.get("id")) != str(project_id):
            return None
        return normalize_project(data, self.org)

    def _issue_row(
        self, issue_id: int, project_id: int
    ) -> tuple[dict[str, Any] | None, str | None]:
        """The issue's row and the slug of its project (the issue payload names it)."""
        try:
            payload = self.client.get_issue(self.org, issue_id)
        except NotFoundError:
            return None, None
        project = payload.get("project")
        slug = project.get("slug") if isinstance(project, dict) else None
        return normalize_issue(payload, project_id=project_id), slug if isinstance(
            slug, str
        ) else None

    # ------------------------------------------------------------------ the whole thing

    def archive(
        self, store: Store, fetched: _Fetched, *, prepare: Callable[[], None] | None = None
    ) -> ArchivedEvent:
        """Normalize, fetch what the event's rows point at, then write it all in one transaction.

        ``prepare`` runs after every request succeeded and before the database is touched (the
        caller migrates the archive and opens its ``runs`` row there).
        """
        ev = normalize_scrubbed(
            self.scrubber, fetched.payload, issue_id=fetched.issue_id, has_detail=fetched.has_detail
        )
        issue_row: dict[str, Any] | None = None
        slug = fetched.project_slug
        if ev.issue_id is not None:
            issue_row, issue_slug = self._issue_row(ev.issue_id, ev.project_id)
            slug = slug or issue_slug
        project_row = self._project_row(slug, ev.project_id)
        release_row = ev.release
        if release_row is None and ev.release_version and self.settings.releases:
            try:
                release_row = normalize_release(
                    self.client.get_release(self.org, ev.release_version)
                )
            except NotFoundError:
                log.info("release %r not found on the server", ev.release_version)
        if prepare is not None:
            prepare()  # every request succeeded: only now is the database touched
        with store.transaction() as conn:
            if project_row is not None:
                store.upsert_projects(conn, [project_row])
            if issue_row is not None:
                store.upsert_issues(conn, [issue_row])
            if release_row is not None:
                store.upsert_releases(conn, [release_row])
            result = store.write_events(conn, [ev])
        outcome = "new" if result.inserted else "updated" if result.updated else "unchanged"
        scrubbed = ev.event.get("scrubbed") or {}
        return ArchivedEvent(
            ev.event_id,
            ev.project_id,
            slug,
            ev.issue_id,
            outcome,
            fetched.has_detail,
            ev.release_version,
            len(scrubbed.get("paths", [])),
        )


def execute_archive_event(
    settings: Settings,
    event_id: str | None,
    *,
    project: str | None = None,
    issue_id: int | None = None,
    latest: bool = False,
) -> ArchivedEvent:
    """Fetch and archive one event; recorded in ``runs``. Raises ArchiverError subclasses."""
    if latest and issue_id is None:
        raise ConfigError("--latest needs --issue ID")
    if latest and event_id:
        raise ConfigError("give either EVENT_ID or --latest, not both")
    if issue_id is None and not event_id:
        raise ConfigError("give an EVENT_ID, or --issue ID --latest")
    one = OneEvent(settings)  # settings are checked before anything is opened
    engine = db.make_engine(settings.db)
    try:
        with make_client(settings) as client:
            one.client = client
            fetched = one.fetch(event_id, project=project, issue_id=issue_id, latest=latest)
            store = Store(engine)
            run: list[int] = []

            def prepare() -> None:
                db.upgrade(engine)
                run.append(
                    store.start_run(
                        "archive-event",
                        server_url=client.base_url,
                        organization_slug=one.org,
                        options={
                            **settings.redacted(),
                            "event_id": event_id,
                            "issue": issue_id,
                            "latest": latest,
                            "project": project,
                        },
                    )
                )

            done: ArchivedEvent | None = None
            message = None
            try:
                done = one.archive(store, fetched, prepare=prepare)
                return done
            except Exception as exc:
                message = f"{type(exc).__name__}: {exc}"
                raise
            finally:
                if run:
                    store.finish_run(
                        run[0],
                        "failed" if done is None else "success",
                        projects=1,
                        issues=1,
                        events_new=int(done is not None and done.outcome == "new"),
                        events_updated=int(done is not None and done.outcome == "updated"),
                        requests=client.stats.requests,
                        retries=client.stats.retries,
                        error_message=message,
                    )
    finally:
        engine.dispose()
