"""Configuration of the simulator's HTTP behaviour: auth, rate limits, error texts, faults.

Data (how many events, which seed) lives in :class:`~.data.SimulatedOrg`; everything here is
about *how* the API answers, so the same org can be served strictly (``sentry`` rate limits,
faults) or fast (the defaults, for tests and benchmarks).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

FAMILIES = (
    "organization_index",
    "organization_details",
    "organization_projects",
    "organization_issues",
    "project_details",
    "project_issues",
    "issue_details",
    "issue_events",
    "issue_event_details",
    "project_events",
    "project_event_details",
    "eventids",
    "releases",
)
"""Endpoint families: the unit of rate limiting and of the request counters."""

LIST_FAMILIES = frozenset(
    {
        "organization_index",
        "organization_projects",
        "organization_issues",
        "project_issues",
        "issue_events",
        "project_events",
    }
)

ALL_SCOPES = frozenset({"org:read", "project:read", "event:read", "project:releases"})

_ORG = frozenset({"org:read", "org:write", "org:admin"})
_PROJECT = frozenset({"project:read", "project:write", "project:admin"})
_EVENT = frozenset({"event:read", "event:write", "event:admin"})
FAMILY_SCOPES: dict[str, frozenset[str]] = {
    "organization_index": _ORG,
    "organization_details": _ORG,
    "organization_projects": _ORG,
    "organization_issues": _EVENT,
    "project_details": _PROJECT,
    "project_issues": _EVENT,
    "issue_details": _EVENT,
    "issue_events": _EVENT,
    "issue_event_details": _EVENT,
    "project_events": _EVENT,
    "project_event_details": _EVENT,
    "eventids": _ORG | _EVENT,
    "releases": _PROJECT | {"project:releases", "org:ci"},
}
"""Scopes that let a token read each family (any one of them), from the permission classes of
Sentry's endpoints (``OrganizationPermission``, ``ProjectPermission``, ``GroupPermission``,
``OrganizationReleasePermission``): release details are the only reads ``org:ci`` allows."""

ORG_AUTH_TOKEN_SCOPES = frozenset({"org:ci"})
"""Organisation auth tokens (``sntrys_...``) only ever have ``org:ci`` (Correction 7)."""

ORGLESS_MODES = ("404", "410", "serve")

SEARCH_MAX_DAYS = 90
"""sentry.io's issue search never looks back further (Correction 4): the default clip, and
the default of ``SimulatedOrg.truth(searchable_days=...)`` so the two agree."""


@dataclass(frozen=True)
class RateLimit:
    """``limit`` requests per fixed ``window`` seconds, and at most ``concurrent`` in flight."""

    limit: int
    window: int = 1
    concurrent: int | None = None


def rate_limit_preset(name: str) -> dict[str, RateLimit]:
    """``none`` (no limits, no headers: fast tests) or ``sentry`` (the limits set in source)."""
    if name == "none":
        return {}
    if name == "sentry":
        limits = {
            family: RateLimit(40, 1, 25 if family in LIST_FAMILIES else None) for family in FAMILIES
        }
        limits.update(
            {
                "issue_event_details": RateLimit(15, 1),
                "project_event_details": RateLimit(5, 1),
                "eventids": RateLimit(1, 1),
                "project_issues": RateLimit(5, 1, 25),
                "project_events": RateLimit(60, 60, 1),
            }
        )
        return limits
    raise ValueError(f"unknown rate-limit preset {name!r} (none, sentry)")


UNLIMITED_RATE = 1_000_000
"""The per-second limit of a family limited by concurrency alone (``--concurrent-limit`` on
the ``none`` preset): headers as Sentry sends them, a window never spent."""


def with_concurrent_limit(limits: Mapping[str, RateLimit], concurrent: int) -> dict[str, RateLimit]:
    """``limits`` with every family's ``ConcurrentLimit`` set to ``concurrent`` (families
    without a limit get one of concurrency alone): how a benchmark or test makes the server's
    concurrency the binding limit."""
    out = dict(limits)
    for family in FAMILIES:
        base = out.get(family) or RateLimit(UNLIMITED_RATE, 1)
        out[family] = RateLimit(base.limit, base.window, concurrent)
    return out


@dataclass(frozen=True)
class ScheduledFault:
    """A fault that fires on the ``at``-th request (1-based), counted within ``family`` if set.

    kinds: ``error`` (5xx), ``cut`` (connection closed mid-body), ``truncate`` (200 with a cut
    JSON body), ``slow`` (``FaultConfig.slow_ms`` extra latency), ``rate_limit`` (429),
    ``delete_issue`` / ``merge_issue`` / ``add_events`` (act on the request's issue, or on
    ``issue_id``), ``advance`` (data clock moves ``seconds``).
    """

    kind: str
    at: int
    family: str | None = None
    issue_id: int | None = None
    seconds: float = 3600.0
    count: int = 3


@dataclass(frozen=True)
class FaultConfig:
    """Seeded fault injection: probabilities per request plus a schedule.

    Decisions come from an RNG keyed by ``(seed, request number)``, so a given request sequence
    always meets the same faults. Probabilistic faults touch only ``families`` when given.
    """

    seed: int = 0
    error_rate: float = 0.0
    error_statuses: tuple[int, ...] = (500,)
    cut_rate: float = 0.0
    truncate_rate: float = 0.0
    slow_rate: float = 0.0
    slow_ms: float = 1_000.0
    burst_rate: float = 0.0
    burst_length: int = 5
    new_events_every: int = 0
    new_events_count: int = 3
    advance_every: int = 0
    advance_seconds: float = 3_600.0
    delete_issue_after: int = 0
    merge_issue_after: int = 0
    families: frozenset[str] | None = None
    schedule: tuple[ScheduledFault, ...] = ()
    query_timeout_rate: float = 0.0
    """Issue search and issue event lists answer Sentry's Snuba-timeout 400 at this rate."""

    @property
    def active(self) -> bool:
        return bool(
            self.error_rate
            or self.cut_rate
            or self.truncate_rate
            or self.slow_rate
            or self.burst_rate
            or self.new_events_every
            or self.advance_every
            or self.delete_issue_after
            or self.merge_issue_after
            or self.schedule
            or self.query_timeout_rate
        )


@dataclass(frozen=True)
class SimulatorConfig:
    """How the server answers. Defaults: no rate limits, no faults, current error texts."""

    rate_limits: Mapping[str, RateLimit] = field(default_factory=dict)
    rate_limit_body: str = "string"
    """``string``: the 429 body is a JSON string (older Sentry); ``detail``: ``{"detail": ...}``."""
    retry_after: bool = False
    """Add ``Retry-After`` to 429s (Sentry's source does not; an edge proxy may)."""
    per_page_error: str = "old"
    """``old``: ``Cannot exceed 100.`` (and values below 1 fail with a 500, as then); ``new``:
    ``Must be between 1 and 100.``"""
    latency_ms: float = 0.0
    url_prefix: str | None = None
    """Base of Link and permalink URLs (``system.url-prefix``); default: the request's Host."""
    extra_tokens: Mapping[str, frozenset[str]] = field(default_factory=dict)
    """More tokens and their scopes; a token without ``event:read``/``project:read`` gets 403."""
    expired_tokens: frozenset[str] = frozenset()
    faults: FaultConfig = field(default_factory=FaultConfig)
    max_hits: int = 1000
    cache_bytes: int = 64 << 20
    log_size: int = 10_000
    wall_clock: Callable[[], float] = time.time
    """Rate limiting reads this (never the frozen data clock)."""
    shuffle_ties: bool = True
    """Issue event lists return events of one second in a different order on every request
    (as ClickHouse does for equal sort keys), from an RNG seeded by ``(tie_seed, request
    number)``: reproducible, yet never the same order twice. Off: ties by event id."""
    tie_seed: int = 0
    offset_row_delay: float = 0.0
    """Seconds of delay per row an event-list page skips to reach its offset (Snuba reads and
    drops every skipped row)."""
    max_offset: int | None = None
    """Event-list offsets beyond this answer ``500 Internal Error``, like a Snuba query that
    timed out reading the skipped rows (None: no limit)."""
    orgless_urls: str = "404"
    """How organisation-less group URLs (``/api/0/issues/{id}/...``, ``/api/0/groups/{id}/...``,
    deprecated; Correction 1) answer: ``404`` (default: an organisation outside sentry.io's US
    region, where they never route), ``410`` (a deprecation brownout, or after removal:
    ``{"message": "This API no longer exists."}``) or ``serve`` (the US region between
    brownouts: answered like the organisation-scoped URLs)."""
    search_max_days: int | None = SEARCH_MAX_DAYS
    """Issue search never looks back further than this many days, whatever ``start`` says
    (Correction 4: Sentry clips to ``max(start, now - 90 days)``, the default). None: an
    explicit ``start`` is honoured (older Sentry, self-hosted builds without the clip). Event
    lists are never clipped (they reach back to the retention). ``SimulatedOrg.truth()`` is
    what a sync can reach from a server with the default; ``truth(searchable_days=None)``
    from an unclipped one."""
    hollow_rate: float = 0.0
    """Share of events (chosen by a stable hash of the event id) whose body nodestore lost
    (Correction 6): listed and served by ``latest``/``oldest``/``recommended`` hollow (real id,
    groupID, dateCreated; ``entries: []``, empty contexts, null user and sdk), 404 by id."""
    hollow_events: frozenset[str] = frozenset()
    """Event ids that are hollow in any case (as ``hollow_rate``), 32 lower-case hex digits."""
    user_tokens: Mapping[str, frozenset[str]] = field(default_factory=dict)
    """User auth tokens (``sntryu_...``, every read scope), each mapped to the slugs of the
    projects its user is not a member of (Correction 7): the projects list shows those with
    ``hasAccess: false``; their issues, events and details answer 403; the organisation's issue
    search without ``project`` leaves them out, and with their id answers 403."""
    org_auth_tokens: frozenset[str] = frozenset()
    """Organisation auth tokens (``sntrys_...``): scope ``org:ci`` only, so 403 on the
    organisation, its projects, issues and events (release details answer)."""

    def __post_init__(self) -> None:
        if self.orgless_urls not in ORGLESS_MODES:
            raise ValueError(f"orgless_urls must be one of {ORGLESS_MODES}")

    @classmethod
    def preset(
        cls, rate_limits: str = "none", concurrent_limit: int | None = None, **kwargs: object
    ) -> SimulatorConfig:
        """A config with a named rate-limit preset (``none`` or ``sentry``), every family's
        ``ConcurrentLimit`` set to ``concurrent_limit`` when given."""
        limits = rate_limit_preset(rate_limits)
        if concurrent_limit is not None:
            limits = with_concurrent_limit(limits, concurrent_limit)
        return cls(rate_limits=limits, **kwargs)  # type: ignore[arg-type]
