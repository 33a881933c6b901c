"""How a :class:`~.data.SimulatedOrg` is generated from its seed: projects, releases, issues.

Every choice comes from one RNG seeded by the org's seed, drawn in a fixed order, so the same
arguments give the same org (the order of the draws below is part of that contract: do not
reorder them). Issue sizes follow a Zipf-like tail across projects; each issue gets a time
category (long, recent, old, expired) and a few environment segments.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from . import templates, timeline, vocab
from .fixtures import FixtureEvent
from .ids import hash64
from .model import DAY, ISSUE_STATUSES, PRIORITIES, Issue, Project, Release
from .timeline import Segment


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


class OrgBuilder:
    """Generates one org's projects, releases and issues (:meth:`build`, called once)."""

    def __init__(self, seed: int, anchor: int, *, retention_days: int, history_days: int) -> None:
        self.seed = seed
        self.anchor = anchor
        """The org's "now" at construction: every event lies before it."""
        self.retention_days = retention_days
        self.history_days = history_days
        self.projects: list[Project] = []
        self.issues: list[Issue] = []
        self.issue_by_id: dict[int, Issue] = {}
        self.releases: dict[int, list[Release]] = {}
        self.release_by_version: dict[str, Release] = {}

    def build(
        self,
        events: int,
        n_projects: int | None,
        n_issues: int | None,
        fixtures: list[FixtureEvent],
    ) -> None:
        """Projects and releases first, then issues (sized, timed, given ids in time order)."""
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
        plans: list[tuple[str, tuple[int, int] | None, FixtureEvent | None]] = [
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
            self.issue_by_id[issue.id] = issue
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
                self.release_by_version[release.version] = release

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
        self, rng: random.Random, index: int, fixture: FixtureEvent, count: int
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
        version = fixture_release_version(fixture)
        if version is not None and version not in self.release_by_version:
            # the fixture's own release object when it has one, else a generated one: a
            # release tag always resolves through the releases endpoint, as on Sentry
            release = Release(
                version,
                project.index,
                first - DAY,
                hash64("release", version),
                fixture=fixture.release,
            )
            self.release_by_version[version] = release
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


def fixture_release_version(fixture: FixtureEvent) -> str | None:
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
