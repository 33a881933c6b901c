"""``SimulatedOrg``: a deterministic, lazy Sentry organisation.

Determinism: everything derives from ``seed`` (and the fixture files), so two orgs built with
the same arguments answer every request identically.

Laziness: an issue keeps only its segments (see :mod:`timeline`: a count, a few knots and an
environment each); an event exists only as coordinates ``(issue, segment, index)`` from which
its timestamp, its ID (:class:`~.ids.EventIdCodec`) and its body (:mod:`payloads`) are derived
on demand. A million-event org costs a few thousand small objects.

Time: event timestamps are absolute seconds fixed at construction, ending one second before the
clock's "now" and reaching back ``history_days`` (beyond the retention, so some events have
already expired). Moving the clock forward expires more of them; it never creates events.

The records live in :mod:`.model`, their generation from the seed in :mod:`.generate`; this
module answers questions about the org (lookups, pages, truth) and applies mutations.
"""

from __future__ import annotations

import bisect
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from . import fixtures as fixture_mod
from . import templates, timeline
from .clock import Clock, FrozenClock
from .config import SEARCH_MAX_DAYS
from .generate import OrgBuilder, fixture_release_version
from .ids import EventIdCodec, hash64, normalize_event_id
from .model import DAY, EventRef, Issue, Project, Release
from .timeline import Segment

__all__ = ["DAY", "EventRef", "Issue", "Project", "Release", "SimulatedOrg"]
"""The entities are re-exported: callers import the org and its records from one place."""


class SimulatedOrg:
    """A deterministic, lazily generated Sentry organisation (see the module docstring).

    ``events`` counts every generated event, including the ones already expired at
    construction; :meth:`truth_count` gives how many the API can show.
    """

    def __init__(
        self,
        seed: int = 0,
        events: int = 20_000,
        *,
        slug: str = "acme",
        name: str | None = None,
        projects: int | None = None,
        issues: int | None = None,
        clock: Clock | None = None,
        retention_days: int = 100,
        history_days: int | None = None,
        include_fixtures: bool = True,
        fixtures_dir: Path | None = None,
        odd_rate: float = 0.04,
    ) -> None:
        if events < 1:
            raise ValueError("events must be positive")
        self.seed = seed
        self.slug = slug
        self.name = name or slug.replace("-", " ").title()
        self.clock: Clock = clock or FrozenClock()
        self.retention_days = retention_days
        self.history_days = history_days if history_days is not None else retention_days + 12
        self.odd_rate = odd_rate
        self.codec = EventIdCodec(seed)
        self.org_id = 100_000 + hash64("org-id", seed) % 900_000
        self.anchor = int(self.clock.now())
        self._lock = threading.RLock()
        self.revision = 0
        """Bumped by every mutation, so caches keyed on it never serve stale answers."""
        self._templates: OrderedDict[int, templates.IssueTemplate] = OrderedDict()
        self._template_cache_size = 512
        fixtures = fixture_mod.load_fixture_events(fixtures_dir) if include_fixtures else []
        built = OrgBuilder(
            seed,
            self.anchor,
            retention_days=self.retention_days,
            history_days=self.history_days,
        )
        built.build(events, projects, issues, fixtures)
        self.projects: list[Project] = built.projects
        self.issues: list[Issue] = built.issues
        self._issue_by_id: dict[int, Issue] = built.issue_by_id
        self.releases: dict[int, list[Release]] = built.releases
        self._release_by_version: dict[str, Release] = built.release_by_version

    # --- time ----------------------------------------------------------------------------------

    def now(self) -> float:
        return self.clock.now()

    def advance(self, seconds: float) -> None:
        """Move the data clock forward; events past the retention expire."""
        with self._lock:
            self.clock.advance(seconds)
            self.revision += 1

    def retention_cutoff(self) -> int:
        """The oldest visible second: events before it have expired."""
        return int(self.clock.now()) - self.retention_days * DAY

    # --- lookups -------------------------------------------------------------------------------

    def project_by_slug(self, slug_or_id: str) -> Project | None:
        for project in self.projects:
            if project.slug == slug_or_id or str(project.id) == slug_or_id:
                return project
        return None

    def project_by_id(self, project_id: int) -> Project | None:
        return next((p for p in self.projects if p.id == project_id), None)

    def issue_by_id(self, issue_id: int) -> Issue | None:
        """The issue with this id as stored (deleted and merged ones included)."""
        return self._issue_by_id.get(issue_id)

    def resolve_issue(self, issue_id: int) -> Issue | None:
        """The issue this id answers as: follows merges; None when unknown or deleted."""
        with self._lock:
            issue = self._issue_by_id.get(issue_id)
            while issue is not None and issue.merged_into is not None:
                issue = self.issues[issue.merged_into]
            if issue is None or issue.deleted:
                return None
            return issue

    def _owner(self, home: int) -> Issue:
        issue = self.issues[home]
        while issue.merged_into is not None:
            issue = self.issues[issue.merged_into]
        return issue

    def live_issues(self) -> list[Issue]:
        """Issues that answer under their own id (not deleted, not merged away)."""
        with self._lock:
            return [i for i in self.issues if not i.deleted and i.merged_into is None]

    def event_id(self, segment: Segment, index: int) -> str:
        return self.codec.encode(segment.home, segment.number, index)

    def locate_event(self, event_id: str) -> EventRef | None:
        """The visible event with this ID (not expired, issue not deleted), else None."""
        normalized = normalize_event_id(event_id)
        if normalized is None:
            return None
        coords = self.codec.decode(normalized)
        if coords is None:
            return None
        home, number, index = coords
        with self._lock:
            if home >= len(self.issues) or number >= len(self.issues[home].own):
                return None
            segment = self.issues[home].own[number]
            if index >= segment.n:
                return None
            owner = self._owner(home)
            if owner.deleted:
                return None
            ts = segment.timestamp(index)
            if ts < self.retention_cutoff():
                return None
            return EventRef(owner, segment, index, ts, normalized)

    def template(self, issue: Issue) -> templates.IssueTemplate:
        """The issue's event template (bounded LRU: templates are rebuilt on demand)."""
        with self._lock:
            cached = self._templates.get(issue.index)
            if cached is not None:
                self._templates.move_to_end(issue.index)
                return cached
        built = templates.build_template(
            issue.seed, issue.platform, issue.kind if issue.fixture is None else "plain"
        )
        with self._lock:
            self._templates[issue.index] = built
            while len(self._templates) > self._template_cache_size:
                self._templates.popitem(last=False)
        return built

    def summary(self, issue: Issue) -> tuple[str, str, str]:
        """(title, level, issue category) of an issue, cheap after the first call."""
        if issue.summary is None:
            template = self.template(issue)
            title = template.title
            if issue.fixture is not None:
                title = str(issue.fixture.body.get("title") or title)
            issue.summary = (title, template.level, template.issue_category)
        return issue.summary

    def release_for(self, ref: EventRef) -> Release | None:
        """The release an event was seen in: the project's latest release before it."""
        issue = ref.issue
        if issue.fixture is not None:
            version = fixture_release_version(issue.fixture)
            return self._release_by_version.get(version) if version else None
        if not self.template(issue).has_release:
            return None
        releases = self.releases.get(issue.project.index, [])
        pos = bisect.bisect_right(releases, ref.timestamp, key=lambda r: r.created) - 1
        return releases[pos] if pos >= 0 else None

    def release_by_version(self, version: str) -> Release | None:
        return self._release_by_version.get(version)

    # --- queries -------------------------------------------------------------------------------

    def _ref(self, ts: int, eid: str, segment: Segment, index: int) -> EventRef:
        return EventRef(self._owner(segment.home), segment, index, ts, eid)

    def page(
        self,
        segments: Sequence[Segment],
        lo: int,
        hi: int,
        offset: int,
        limit: int,
        tie_key: Callable[[str], bytes] | None = None,
        sample: Callable[[str], int] | None = None,
    ) -> tuple[list[EventRef], int]:
        """Newest-first page of the segments' visible events in ``[lo, hi)`` and the total.

        ``tie_key`` orders events of one second (default: by event ID); ``sample`` orders the
        whole window by it instead of by time (``sample=1``).
        """
        with self._lock:
            lo = max(lo, self.retention_cutoff())
            if sample is not None:
                rows, total = timeline.select_sample_page(
                    segments, lo, hi, offset, limit, self.event_id, sample
                )
            else:
                rows, total = timeline.select_page(
                    segments, lo, hi, offset, limit, self.event_id, tie_key
                )
            return [self._ref(*row) for row in rows], total

    def issue_segments(self, issue: Issue, environments: Sequence[str] = ()) -> list[Segment]:
        with self._lock:
            if not environments:
                return list(issue.segments)
            wanted = set(environments)
            return [s for s in issue.segments if s.environment in wanted]

    def project_segments(self, project: Project, environments: Sequence[str] = ()) -> list[Segment]:
        wanted = set(environments)
        with self._lock:
            return [
                s
                for issue in self.live_issues()
                if issue.project is project
                for s in issue.segments
                if not wanted or s.environment in wanted
            ]

    def count(self, segments: Sequence[Segment], lo: int, hi: int) -> int:
        with self._lock:
            return timeline.window_total(segments, max(lo, self.retention_cutoff()), hi)

    def neighbours(
        self, ref: EventRef, environments: Sequence[str] = ()
    ) -> tuple[str | None, str | None]:
        """(newer event id, older event id) within the event's issue, None at the ends."""
        segments = self.issue_segments(ref.issue, environments)
        with self._lock:
            lo, hi = self.retention_cutoff(), 2**62
            pos = timeline.position_of(
                segments, lo, hi, (ref.timestamp, ref.event_id), self.event_id
            )
            start = max(0, pos - 1)
            rows, _ = timeline.select_page(segments, lo, hi, start, 3, self.event_id)
        ids = [row[1] for row in rows]
        here = pos - start
        newer = ids[here - 1] if here >= 1 and here - 1 < len(ids) else None
        older = ids[here + 1] if here + 1 < len(ids) else None
        return newer, older

    def environment_names(self) -> set[str]:
        with self._lock:
            return {s.environment for issue in self.issues for s in issue.own}

    # --- truth ---------------------------------------------------------------------------------

    def _truth_segments(
        self, include_deleted: bool, searchable_days: int | None = None
    ) -> Iterator[tuple[Issue, Segment]]:
        listed: dict[int, bool] = {}
        since = int(self.clock.now()) - searchable_days * DAY if searchable_days else 0
        since = max(since, self.retention_cutoff())
        for issue in self.issues:
            for segment in issue.own:
                owner = self._owner(issue.index)
                if owner.deleted and not include_deleted:
                    continue
                if searchable_days:
                    if owner.index not in listed:
                        listed[owner.index] = (
                            timeline.window_total(owner.segments, since, 2**62) > 0
                        )
                    if not listed[owner.index]:
                        continue
                yield owner, segment

    def truth(
        self, *, include_deleted: bool = False, searchable_days: int | None = SEARCH_MAX_DAYS
    ) -> set[tuple[int, str]]:
        """Every ``(project_id, event_id)`` a complete archive must hold right now.

        That is every event the API can show: not expired, and (unless ``include_deleted``)
        not in a deleted issue, and in an issue the issue search can list: one with an event
        in the last ``searchable_days`` days (default: sentry.io's 90, as
        ``SimulatorConfig.search_max_days``; all its visible events, older ones too). With
        ``searchable_days=None`` (a server without the clip) every issue counts. Materialises
        the set: meant for tests on small orgs.
        """
        out: set[tuple[int, str]] = set()
        with self._lock:
            cutoff = self.retention_cutoff()
            for owner, segment in self._truth_segments(include_deleted, searchable_days):
                pid = owner.project.id
                for k in range(segment.count_before(cutoff), segment.n):
                    out.add((pid, self.event_id(segment, k)))
        return out

    def truth_count(
        self, *, include_deleted: bool = False, searchable_days: int | None = SEARCH_MAX_DAYS
    ) -> int:
        """``len(truth(...))`` without materialising anything."""
        with self._lock:
            cutoff = self.retention_cutoff()
            return sum(
                segment.n - segment.count_before(cutoff)
                for _, segment in self._truth_segments(include_deleted, searchable_days)
            )

    # --- mutations -----------------------------------------------------------------------------

    def add_events(
        self,
        issue_id: int,
        n: int,
        *,
        at: float | None = None,
        environment: str = "production",
        spread_seconds: int = 0,
    ) -> list[str]:
        """New events arrive in an issue (newest: at the clock's now unless ``at`` is given).

        The ``n`` events are spread evenly over the ``spread_seconds`` before ``at`` (all in
        one second by default, the tie case). Returns their IDs, oldest first.
        """
        if n <= 0:
            raise ValueError("n must be positive")
        with self._lock:
            issue = self.resolve_issue(issue_id)
            if issue is None:
                raise KeyError(f"no live issue {issue_id}")
            second = int(self.clock.now() if at is None else at)
            segment = timeline.burst_segment(
                issue.index, len(issue.own), environment, n, second, spread_seconds
            )
            issue.own.append(segment)
            issue.segments.append(segment)
            self.revision += 1
            return [self.event_id(segment, k) for k in range(n)]

    def delete_issue(self, issue_id: int) -> None:
        """The issue (following merges) is deleted: 404 from then on, its events vanish."""
        with self._lock:
            issue = self.resolve_issue(issue_id)
            if issue is None:
                raise KeyError(f"no live issue {issue_id}")
            issue.deleted = True
            self.revision += 1

    def merge_issue(self, source_id: int, into_id: int) -> None:
        """Merge ``source`` into ``into`` (same project): its events move, its id redirects."""
        with self._lock:
            source, target = self.resolve_issue(source_id), self.resolve_issue(into_id)
            if source is None or target is None:
                raise KeyError("both issues must be live")
            if source is target:
                raise ValueError("an issue cannot be merged into itself")
            if source.project is not target.project:
                raise ValueError("Sentry merges issues of one project only")
            target.segments.extend(source.segments)
            source.segments = []
            source.merged_into = target.index
            self.revision += 1
