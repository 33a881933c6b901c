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
"""

from __future__ import annotations

import bisect
import random
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import fixtures as fixture_mod
from . import templates, timeline, vocab
from .clock import Clock, FrozenClock
from .config import SEARCH_MAX_DAYS
from .ids import EventIdCodec, hash64, normalize_event_id
from .timeline import Segment

DAY = 86_400
ISSUE_STATUSES = ("unresolved", "resolved", "ignored")
PRIORITIES = ("high", "medium", "low")


@dataclass
class Project:
    index: int
    id: int
    slug: str
    name: str
    platform: str
    date_created: int
    team_id: int


@dataclass(frozen=True)
class Release:
    version: str
    project_index: int
    created: int
    seed: int
    fixture: dict[str, object] | None = None


@dataclass
class Issue:
    """One issue (group). ``segments`` are the events it answers for right now."""

    index: int
    id: int
    project: Project
    seed: int
    platform: str
    kind: str
    status: str
    substatus: str
    priority: str
    short_id: str
    own: list[Segment] = field(default_factory=list)
    segments: list[Segment] = field(default_factory=list)
    merged_into: int | None = None
    deleted: bool = False
    fixture: fixture_mod.FixtureEvent | None = None
    summary: tuple[str, str, str] | None = None
    """(title, level, issue category), kept once known: searches need them for every issue."""

    @property
    def first_seen(self) -> int:
        return min((s.first_ts for s in self.segments), default=0)

    @property
    def last_seen(self) -> int:
        return max((s.last_ts for s in self.segments), default=0)

    @property
    def times_seen(self) -> int:
        return sum(s.n for s in self.segments)

    @property
    def environments(self) -> set[str]:
        return {s.environment for s in self.segments}


@dataclass(frozen=True)
class EventRef:
    """One event, located: everything needed to render it."""

    issue: Issue
    segment: Segment
    index: int
    timestamp: int
    event_id: str

    @property
    def micros(self) -> int:
        return int(self.event_id[8:13], 16) % 1_000_000

    @property
    def project(self) -> Project:
        return self.issue.project


def _split(total: int, weights: Sequence[float], minimum: int = 1) -> list[int]:
    """Largest-remainder split of ``total`` by weights, each part at least ``minimum``."""
    n = len(weights)
    if total < n * minimum:
        raise ValueError(f"need at least {n * minimum} events for {n} parts")
    rest = total - n * minimum
    scale = sum(weights)
    raw = [w / scale * rest for w in weights]
    parts = [int(r) for r in raw]
    order = sorted(range(n), key=lambda i: raw[i] - parts[i], reverse=True)
    for i in order[: rest - sum(parts)]:
        parts[i] += 1
    return [p + minimum for p in parts]


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
        self.projects: list[Project] = []
        self.issues: list[Issue] = []
        self._issue_by_id: dict[int, Issue] = {}
        self.releases: dict[int, list[Release]] = {}
        self._release_by_version: dict[str, Release] = {}
        fixtures = fixture_mod.load_fixture_events(fixtures_dir) if include_fixtures else []
        self._build(events, projects, issues, fixtures)

    # --- construction ------------------------------------------------------------------------

    def _build(
        self,
        events: int,
        n_projects: int | None,
        n_issues: int | None,
        fixtures: list[fixture_mod.FixtureEvent],
    ) -> None:
        rng = random.Random(hash64("org", self.seed))
        count = n_projects or max(3, min(len(vocab.PROJECT_PLATFORMS), events // 20_000))
        count = max(1, min(count, len(vocab.PROJECT_PLATFORMS)))
        base_id = rng.randrange(1_000_000, 6_000_000)
        for i, (platform, slug, name) in enumerate(vocab.PROJECT_PLATFORMS[:count]):
            # ids grow with creation; the last project's id is above 2**31 (real orgs have them)
            pid = (
                2**31 + rng.randrange(1_000, 90_000_000)
                if i == count - 1
                else base_id + i * rng.randrange(1_000, 400_000)
            )
            self.projects.append(
                Project(i, pid, slug, name, platform, self.anchor - (400 - 30 * i) * DAY, 1_000 + i)
            )
        self._build_releases(rng)

        fixture_events = min(len(fixtures) * 3, max(0, events - len(fixtures)))
        if events < len(fixtures) + 3:
            fixtures = []
            fixture_events = 0
        generated = events - fixture_events
        total_issues = n_issues or max(10, min(4_000, events // 200))
        total_issues = max(1, min(total_issues, generated))

        # weights: a few hot issues, a long tail (Zipf-like), shuffled across projects
        weights = [1.0 / (rank + 1) ** 1.05 for rank in range(total_issues)]
        rng.shuffle(weights)
        counts = _split(generated, weights)
        categories = self._categories(rng, counts)
        plans: list[tuple[str, tuple[int, int] | None, fixture_mod.FixtureEvent | None]] = [
            (c, self._plan_issue(rng, c), None) for c in categories
        ]
        for f in fixtures:
            plans.append(("fixture", None, f))
        fixture_counts = (
            _split(fixture_events, [1.0] * len(fixtures)) if fixtures and fixture_events else []
        )

        # ids grow with first-seen time and cross 2**31 halfway, like a long-lived org's
        starts: list[tuple[int, int]] = []
        built: list[tuple[int, Issue]] = []
        for i, (category, span, fixture) in enumerate(plans):
            index = len(built)
            if fixture is not None:
                issue = self._make_fixture_issue(
                    rng, index, fixture, fixture_counts[i - total_issues] if fixture_counts else 1
                )
            else:
                assert span is not None
                issue = self._make_issue(rng, index, category, counts[i], span)
            built.append((issue.first_seen, issue))
            starts.append((issue.first_seen, index))
        order = sorted(range(len(built)), key=lambda j: (starts[j][0], j))
        gap = 7_919
        next_id = 2**31 - (len(order) // 2) * gap + rng.randrange(1, 1_000)
        for j in order:
            issue = built[j][1]
            issue.id = next_id
            next_id += rng.randrange(1, 2 * gap)
        for _, issue in built:
            self.issues.append(issue)
            self._issue_by_id[issue.id] = issue
        self._ensure_variety()

    def _build_releases(self, rng: random.Random) -> None:
        for project in self.projects:
            releases: list[Release] = []
            start = self.anchor - (self.history_days + 20) * DAY
            t = start
            n = 0
            while t < self.anchor:
                n += 1
                version = self._version(project, n, rng)
                releases.append(Release(version, project.index, t, rng.getrandbits(32)))
                t += rng.randrange(3 * DAY, 12 * DAY)
            self.releases[project.index] = releases
            for release in releases:
                self._release_by_version[release.version] = release

    @staticmethod
    def _version(project: Project, n: int, rng: random.Random) -> str:
        major, minor = 1 + n // 20, n % 20
        if project.platform == "python":
            return f"backend@{major}.{minor}.{rng.randrange(10)}"
        if project.platform == "javascript":
            return f"frontend@{major}.{minor}.0+{rng.getrandbits(28):07x}"
        if project.platform == "cocoa":
            return f"io.acme.shop@5.{minor}.{n % 3}+{500 + n}"
        if project.platform == "java":
            return f"payments-service@2024.{minor + 1}.{n}-SNAPSHOT"
        return f"{rng.getrandbits(160):040x}"

    def _plan_issue(self, rng: random.Random, category: str) -> tuple[int, int]:
        """The issue's time range for its category: long, recent, old (90+ days) or expired."""
        anchor = self.anchor - 1
        oldest = self.anchor - self.history_days * DAY
        cutoff = self.anchor - self.retention_days * DAY
        window_start = self.anchor - 90 * DAY
        if category == "expired":
            first = rng.randrange(oldest, cutoff - DAY)
            last = rng.randrange(first, cutoff - 1)
        elif category == "old":
            first = rng.randrange(max(oldest, cutoff) + DAY, window_start - 2 * DAY)
            last = rng.randrange(first, window_start - DAY)
        elif category == "recent":
            first = anchor - rng.randrange(DAY // 2, 14 * DAY)
            last = anchor - rng.randrange(0, 3600)
        else:
            first = rng.randrange(oldest, max(oldest + 1, anchor - 30 * DAY))
            last = anchor - rng.randrange(0, 5 * DAY)
        return first, max(first, last)

    def _categories(self, rng: random.Random, counts: list[int]) -> list[str]:
        """Each issue's time category; the two smallest issues are forced expired and old."""
        can_expire = self.history_days - self.retention_days >= 3
        can_be_old = min(self.history_days, self.retention_days) >= 94
        out = []
        for count in counts:
            roll = rng.random()
            if can_expire and roll < 0.03 and count < 500:
                out.append("expired")
            elif can_be_old and roll < 0.08 and count < 2_000:
                out.append("old")
            elif roll < 0.30:
                out.append("recent")
            else:
                out.append("long")
        by_size = sorted(range(len(counts)), key=lambda i: (counts[i], i))
        for i in by_size[-3:]:
            out[i] = "long"  # the hottest issues run for months: deep walks, expiry, old events
        forced = [c for c, ok in (("expired", can_expire), ("old", can_be_old)) if ok]
        for category, i in zip(forced, by_size, strict=False):
            if category not in out:
                out[i] = category
        return out

    def _segments(
        self, rng: random.Random, index: int, count: int, first: int, last: int
    ) -> list[Segment]:
        envs = ["production"]
        if count >= 4:
            for env, p in (("staging", 0.45), ("development", 0.15), ("qa 2", 0.06)):
                if rng.random() < p:
                    envs.append(env)
        weights = [6.0] + [rng.uniform(0.5, 2.0) for _ in envs[1:]]
        parts = _split(count, weights)
        segs = []
        for number, (env, n) in enumerate(zip(envs, parts, strict=True)):
            knots = [(rng.random(), rng.random()) for _ in range(rng.randint(2, 7))]
            segs.append(timeline.make_segment(index, number, env, n, first, last, knots))
        return segs

    def _make_issue(
        self, rng: random.Random, index: int, category: str, count: int, span: tuple[int, int]
    ) -> Issue:
        weights = [1.0 / (p.index + 1.5) for p in self.projects]
        project = rng.choices(self.projects, weights=weights)[0]
        seed = hash64("issue", self.seed, index)
        kind = templates.choose_kind(random.Random(seed), project.platform)
        status = rng.choices(ISSUE_STATUSES, weights=(70, 18, 12))[0]
        priority = rng.choices(PRIORITIES, weights=(25, 55, 20))[0]
        issue = Issue(
            index=index,
            id=0,
            project=project,
            seed=seed,
            platform=project.platform,
            kind=kind,
            status=status,
            substatus=self._substatus(status, rng),
            priority=priority,
            short_id=f"{project.slug.upper()}-{_base36(index + 1)}",
        )
        issue.own = self._segments(rng, index, count, *span)
        issue.segments = list(issue.own)
        return issue

    def _make_fixture_issue(
        self, rng: random.Random, index: int, fixture: fixture_mod.FixtureEvent, count: int
    ) -> Issue:
        project = next(
            (p for p in self.projects if p.platform == fixture.platform), self.projects[0]
        )
        anchor = self.anchor - 1
        first = anchor - rng.randrange(2 * DAY, 40 * DAY)
        issue = Issue(
            index=index,
            id=0,
            project=project,
            seed=hash64("fixture", self.seed, fixture.name),
            platform=project.platform,
            kind="fixture",
            status="unresolved",
            substatus="ongoing",
            priority="high",
            short_id=f"{project.slug.upper()}-{_base36(index + 1)}",
            fixture=fixture,
        )
        knots = [(rng.random(), rng.random()) for _ in range(2)]
        issue.own = [
            timeline.make_segment(index, 0, "production", max(1, count), first, anchor - 60, knots)
        ]
        issue.segments = list(issue.own)
        version = _fixture_release_version(fixture)
        if version is not None and version not in self._release_by_version:
            # the fixture's own release object when it has one, else a generated one: a
            # release tag always resolves through the releases endpoint, as on Sentry
            release = Release(
                version,
                project.index,
                first - DAY,
                hash64("release", version),
                fixture=fixture.release,
            )
            self._release_by_version[version] = release
        return issue

    @staticmethod
    def _substatus(status: str, rng: random.Random) -> str:
        if status == "resolved":
            return "resolved"  # Sentry reports null; kept internal
        if status == "ignored":
            return rng.choice(
                ("archived_until_escalating", "archived_forever", "archived_until_condition_met")
            )
        return rng.choice(("ongoing", "new", "regressed", "escalating"))

    def _ensure_variety(self) -> None:
        """At least one issue of every status, priority and kind, deterministically."""
        plain = [i for i in self.issues if i.fixture is None]
        for project in self.projects:
            mine = [i for i in plain if i.project is project]
            kinds = [k for k, _ in templates.KINDS[project.platform]]
            missing = [k for k in kinds if not any(i.kind == k for i in mine)]
            spare = [i for i in reversed(mine) if i.kind == kinds[0]]
            for kind, issue in zip(missing, spare[: max(0, len(spare) - 2)], strict=False):
                issue.kind = kind
        wanted = [
            ("status", "resolved"),
            ("status", "ignored"),
            ("priority", "low"),
            ("priority", "high"),
        ]
        for n, (attr, value) in enumerate(wanted):
            if not any(getattr(i, attr) == value for i in plain) and len(plain) > n + 3:
                target = plain[-(n + 1)]
                setattr(target, attr, value)
                if attr == "status":
                    target.substatus = "archived_forever" if value == "ignored" else "resolved"
        for issue in plain:
            if issue.status == "resolved":
                issue.substatus = "resolved"

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
            version = _fixture_release_version(issue.fixture)
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
        tie_key: Callable[[str], Any] | None = None,
        sample: Callable[[str], Any] | None = None,
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
        ``searchable_days=None`` (a server without the clip) every issue counts. Materialises the set: meant for tests on small orgs.
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


def _fixture_release_version(fixture: fixture_mod.FixtureEvent) -> str | None:
    """The release of a fixture event: its release object's version, else its release tag."""
    if fixture.release is not None:
        return str(fixture.release["version"])
    for tag in fixture.body.get("tags") or []:
        if isinstance(tag, dict) and tag.get("key") == "release" and tag.get("value"):
            return str(tag["value"])
    return None


def _base36(n: int) -> str:
    digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if n == 0:
            return out
