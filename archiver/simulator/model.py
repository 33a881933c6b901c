"""The simulated org's entities: projects, releases, issues (groups) and located events.

Plain records, shared by the generator (:mod:`.generate`), the org's queries (:mod:`.data`) and
the renderers (:mod:`.payloads`, :mod:`.resources`). An issue holds only its segments (see
:mod:`.timeline`); an event exists only as an :class:`EventRef` built on demand.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .fixtures import FixtureEvent
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
    fixture: FixtureEvent | None = None
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
