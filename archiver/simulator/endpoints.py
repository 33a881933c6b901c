"""Sentry's REST semantics over a :class:`~.data.SimulatedOrg`: one method per endpoint.

Facts implemented here come from docs/sentry-api.md (read from Sentry's source): default
windows (90 days for event lists and issue search), ``start`` inclusive / ``end`` exclusive on
whole seconds, ``statsPeriod`` winning over ``start``/``end``, ``full`` parsing, the default
issue queries, direct hits, unknown environments, error texts. Where Sentry's behaviour was not
documented the choice is written next to the code.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from urllib.parse import unquote

from .config import SimulatorConfig
from .data import DAY, EventRef, Issue, Project, SimulatedOrg
from .ids import normalize_event_id
from .ordering import ListOrders, sample_hash
from .paging import (
    Cursor,
    CursorResult,
    InvalidCursor,
    generic_offset_page,
    link_header,
    offset_page,
    sequence_page,
)
from .payloads import EventRenderer
from .resources import IssueCounts, issue_json, project_json, release_json
from .search import IssueQuery, QueryError, date_matches, parse_datetime, parse_issue_query
from .timeline import Segment
from .wire import ApiRequest, ApiResponse, ErrorAnswer

NOT_FOUND = "The requested resource does not exist"
EVENT_NOT_FOUND = "Event not found"
ISSUE_EVENT_NOT_FOUND = (
    "Event not found. The event ID may be incorrect, or its age exceeded the retention period."
)
STATS_PERIOD = re.compile(r"^(\d+)([hdmsw]?)$")
PERIOD_UNITS = {"s": 1, "m": 60, "h": 3600, "d": DAY, "w": 7 * DAY, "": 1}
ORG_DEFAULT_QUERY = "is:unresolved issue.priority:[high, medium]"
PROJECT_DEFAULT_QUERY = "is:unresolved"
FAR_FUTURE = 2**62

ORGLESS = r"^/api/0/(?:issues|groups)/(?P<issue>[^/]+)/"
"""Organisation-less group URLs (deprecated; Correction 1): see ``SimulatorConfig.orgless_urls``."""
ORG_ISSUE = r"^/api/0/organizations/(?P<org>[^/]+)/issues/(?P<issue>[^/]+)/"
GONE = {"message": "This API no longer exists."}
FORBIDDEN = "You do not have permission to perform this action."

ROUTES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(pattern))
    for name, pattern in (
        ("organization_details", r"^/api/0/organizations/(?P<org>[^/]+)/$"),
        ("organization_projects", r"^/api/0/organizations/(?P<org>[^/]+)/projects/$"),
        ("organization_issues", r"^/api/0/organizations/(?P<org>[^/]+)/issues/$"),
        ("issue_details", ORG_ISSUE + "$"),
        ("issue_details", ORGLESS + "$"),
        ("issue_events", ORG_ISSUE + "events/$"),
        ("issue_events", ORGLESS + "events/$"),
        ("issue_event_details", ORG_ISSUE + r"events/(?P<event>[^/]+)/$"),
        ("issue_event_details", ORGLESS + r"events/(?P<event>[^/]+)/$"),
        ("project_details", r"^/api/0/projects/(?P<org>[^/]+)/(?P<project>[^/]+)/$"),
        ("project_issues", r"^/api/0/projects/(?P<org>[^/]+)/(?P<project>[^/]+)/issues/$"),
        ("project_events", r"^/api/0/projects/(?P<org>[^/]+)/(?P<project>[^/]+)/events/$"),
        (
            "project_event_details",
            r"^/api/0/projects/(?P<org>[^/]+)/(?P<project>[^/]+)/events/(?P<event>[^/]+)/$",
        ),
        ("eventids", r"^/api/0/organizations/(?P<org>[^/]+)/eventids/(?P<event>[^/]+)/$"),
        ("releases", r"^/api/0/organizations/(?P<org>[^/]+)/releases/(?P<version>[^/]+)/$"),
    )
)


def route(path: str) -> tuple[str, dict[str, str]] | None:
    """The endpoint family and decoded route parameters of a raw path, or None."""
    for name, pattern in ROUTES:
        match = pattern.match(path)
        if match:
            return name, {k: unquote(v) for k, v in match.groupdict().items()}
    return None


def parse_period(text: str) -> int | None:
    """Sentry's ``parse_stats_period``: ``14d``, ``24h``, ``30m``, ``60s``, ``2w`` or seconds."""
    match = STATS_PERIOD.match(text)
    if not match:
        return None
    return int(match.group(1)) * PERIOD_UNITS[match.group(2)]


class SentryApi:
    """Answers API requests for one org. Thread-safe (the org locks its own state)."""

    def __init__(self, org: SimulatedOrg, config: SimulatorConfig, renderer: EventRenderer) -> None:
        self.org = org
        self.config = config
        self.renderer = renderer
        self._release_cache: dict[tuple[str, int], bytes] = {}
        self._orders = ListOrders(config)
        self._handlers: dict[str, Callable[[ApiRequest], ApiResponse]] = {
            "organization_details": self.organization_details,
            "organization_projects": self.organization_projects,
            "organization_issues": self.organization_issues,
            "project_details": self.project_details,
            "project_issues": self.project_issues,
            "issue_details": self.issue_details,
            "issue_events": self.issue_events,
            "issue_event_details": self.issue_event_details,
            "project_events": self.project_events,
            "project_event_details": self.project_event_details,
            "eventids": self.eventids,
            "releases": self.release_details,
        }

    def handle(self, family: str, request: ApiRequest) -> ApiResponse:
        if family.startswith("issue_") and "org" not in request.params:
            # org-less group URLs: not routed outside the US region, 410 in brownouts
            if self.config.orgless_urls == "410":
                return ApiResponse.json(410, GONE)
            if self.config.orgless_urls == "404":
                return ApiResponse.detail(404, NOT_FOUND)
        try:
            return self._handlers[family](request)
        except ErrorAnswer as exc:
            return exc.response()

    # --- shared parsing ------------------------------------------------------------------------

    def _check_org(self, request: ApiRequest) -> None:
        org = request.params.get("org")
        if org is not None and org not in (self.org.slug, str(self.org.org_id)):
            raise ErrorAnswer(404, NOT_FOUND)

    def _project(self, request: ApiRequest) -> Project:
        self._check_org(request)
        project = self.org.project_by_slug(request.params["project"])
        if project is None:
            raise ErrorAnswer(404, NOT_FOUND)
        if project.slug in request.hidden_projects:
            raise ErrorAnswer(403, FORBIDDEN)
        return project

    def _issue(self, request: ApiRequest) -> Issue:
        self._check_org(request)
        raw = request.params["issue"]
        if not raw.isdigit():
            raise ErrorAnswer(404, NOT_FOUND)
        issue = self.org.resolve_issue(int(raw))
        if issue is None:
            raise ErrorAnswer(404, NOT_FOUND)
        if issue.project.slug in request.hidden_projects:
            raise ErrorAnswer(403, FORBIDDEN)
        return issue

    def _per_page(self, request: ApiRequest) -> int:
        raw = request.get("per_page", "100") or "100"
        try:
            per_page = int(raw)
        except ValueError as exc:
            raise ErrorAnswer(400, "Invalid per_page parameter.") from exc
        if self.config.per_page_error == "new":
            if not 1 <= per_page <= 100:
                raise ErrorAnswer(400, "Invalid per_page value. Must be between 1 and 100.")
        elif per_page > 100:
            raise ErrorAnswer(400, "Invalid per_page value. Cannot exceed 100.")
        elif per_page < 1:
            # older Sentry asserted limit > 0 inside the paginator: an unhandled 500
            raise ErrorAnswer(500, {"detail": "Internal Error", "errorId": "0" * 32})
        return per_page

    @staticmethod
    def _cursor(request: ApiRequest, *, offsets: bool = True) -> Cursor | None:
        raw = request.get("cursor")
        if raw is None or raw == "":
            return None
        try:
            cursor = Cursor.parse(raw)
        except InvalidCursor as exc:
            raise ErrorAnswer(400, "Invalid cursor parameter.") from exc
        if offsets and cursor.offset < 0:
            raise ErrorAnswer(400, "Pagination offset cannot be negative")
        return cursor

    def _window(self, request: ApiRequest, default_days: int | None) -> tuple[int, int]:
        """``[lo, hi)`` in whole seconds from statsPeriod (wins) or start+end, else the default.

        With no date parameter the window is the last ``default_days`` days; its upper end
        includes the current second (a frozen clock would otherwise hide events added "now").
        """
        now = self.org.now()
        period = request.get("statsPeriod")
        start, end = request.get("start"), request.get("end")
        if period:
            seconds = parse_period(period)
            if seconds is None:
                raise ErrorAnswer(400, f"Invalid statsPeriod: {period!r}")
            return int(now - seconds), int(now) + 1
        if start or end:
            if not (start and end):
                raise ErrorAnswer(400, "start and end are both required")
            try:
                lo, hi = parse_datetime(start), parse_datetime(end)
            except QueryError as exc:
                raise ErrorAnswer(400, str(exc)) from exc
            if lo > hi:
                raise ErrorAnswer(400, "start must be before end")
            return int(lo // 1), int(hi // 1)
        if default_days is None:
            return -FAR_FUTURE, FAR_FUTURE
        return int(now) - default_days * DAY, int(now) + 1

    def _link(self, request: ApiRequest, result: CursorResult[object]) -> tuple[str, str]:
        base = self.config.url_prefix or request.base_url
        # Django hands Sentry the decoded path, which it quotes again for the link
        return "Link", link_header(
            base, unquote(request.path), request.query, result.prev, result.next
        )

    def _base_url(self, request: ApiRequest) -> str:
        return (self.config.url_prefix or request.base_url).rstrip("/") + "/"

    # --- organization and projects -------------------------------------------------------------

    def organization_details(self, request: ApiRequest) -> ApiResponse:
        self._check_org(request)
        return ApiResponse.json(
            200,
            {
                "id": str(self.org.org_id),
                "slug": self.org.slug,
                "name": self.org.name,
                "dateCreated": "2019-03-01T10:00:00.000000Z",
                "isEarlyAdopter": False,
                "require2FA": False,
                "status": {"id": "active", "name": "active"},
                "features": ["discover-basic", "performance-view"],
                "avatar": {"avatarType": "letter_avatar", "avatarUuid": None},
                "links": {
                    "organizationUrl": f"{self._base_url(request)}organizations/{self.org.slug}/",
                    "regionUrl": self._base_url(request).rstrip("/"),
                },
            },
        )

    def organization_projects(self, request: ApiRequest) -> ApiResponse:
        self._check_org(request)
        per_page = self._per_page(request)
        cursor = self._cursor(request)
        projects = sorted(self.org.projects, key=lambda p: p.slug)
        result = offset_page(projects, per_page, cursor)
        body = [project_json(self.org, p) for p in result.results]
        for row in body:
            if row["slug"] in request.hidden_projects:  # listed all the same, without access
                row.update(hasAccess=False, isMember=False, access=[])
        return ApiResponse.json(200, body, [self._link(request, result)])  # type: ignore[arg-type]

    def project_details(self, request: ApiRequest) -> ApiResponse:
        project = self._project(request)
        body = project_json(self.org, project)
        body["organization"] = {
            "id": str(self.org.org_id),
            "slug": self.org.slug,
            "name": self.org.name,
        }
        return ApiResponse.json(200, body)

    def release_details(self, request: ApiRequest) -> ApiResponse:
        self._check_org(request)
        release = self.org.release_by_version(request.params["version"])
        if release is None:
            raise ErrorAnswer(404, NOT_FOUND)
        return ApiResponse.json(200, release_json(self.org, release))

    # --- issues --------------------------------------------------------------------------------

    def organization_issues(self, request: ApiRequest) -> ApiResponse:
        self._check_org(request)
        projects: list[Project] | None = None
        wanted = [p for p in request.get_list("project") if p != "-1"]
        if wanted:
            projects = []
            for raw in wanted:
                project = self.org.project_by_id(int(raw)) if raw.lstrip("-").isdigit() else None
                if project is None or project.slug in request.hidden_projects:
                    raise ErrorAnswer(403, FORBIDDEN)
                projects.append(project)
        elif request.hidden_projects:  # all projects: those the user is a member of
            projects = [p for p in self.org.projects if p.slug not in request.hidden_projects]
        lo, hi = self._search_window(request)
        return self._issue_search(request, projects, lo, hi, ORG_DEFAULT_QUERY)

    def project_issues(self, request: ApiRequest) -> ApiResponse:
        project = self._project(request)
        period = request.get("statsPeriod")
        if period not in (None, "", "24h", "14d"):
            raise ErrorAnswer(400, "Invalid stats_period. Valid choices are '', '24h', and '14d'")
        # statsPeriod here only picks the stats graph; the search window stays the default
        now = int(self.org.now())
        lo, hi = now - 90 * DAY, now + 1
        return self._issue_search(request, [project], lo, hi, PROJECT_DEFAULT_QUERY)

    def _search_window(self, request: ApiRequest) -> tuple[int, int]:
        """The issue search window: never more than ``search_max_days`` back (Correction 4)."""
        lo, hi = self._window(request, 90)
        if self.config.search_max_days is not None:
            lo = max(lo, int(self.org.now()) - self.config.search_max_days * DAY)
        return lo, hi

    def _issue_search(
        self,
        request: ApiRequest,
        projects: list[Project] | None,
        lo: int,
        hi: int,
        default_query: str,
    ) -> ApiResponse:
        raw_limit = request.get("limit")
        limit = 100
        if raw_limit:
            try:
                limit = int(raw_limit)
            except ValueError as exc:
                raise ErrorAnswer(400, "invalid limit") from exc
            if limit <= 0:
                raise ErrorAnswer(400, "invalid limit")
        limit = min(limit, 100)
        cursor = self._cursor(request, offsets=False)
        sort = request.get("sort") or "date"
        if sort not in ("date", "new", "freq", "user", "priority", "trends"):
            raise ErrorAnswer(400, f"Invalid sort: {sort}")
        text = request.get("query")
        text = default_query if text is None else text
        try:
            query = parse_issue_query(text, self.org.now())
        except QueryError as exc:
            raise ErrorAnswer(400, f"Error parsing search query: {exc}") from exc
        environments = request.get_list("environment") + query.environments
        known = self.org.environment_names()
        if any(env not in known for env in environments):
            raise ErrorAnswer(404, NOT_FOUND)
        if query.event_id is not None:
            ref = self.org.locate_event(query.event_id)
            if ref is not None and (projects is None or ref.project in projects):
                body = [self._issue_row(request, ref.issue, lo, hi, environments)]
                body[0]["matchingEventId"] = query.event_id
                return ApiResponse.json(200, body, [("X-Sentry-Direct-Hit", "1")])
            query = IssueQuery(text=[query.event_id])
        scored: list[tuple[int, Issue]] = []
        for issue in self.org.live_issues():
            if projects is not None and issue.project not in projects:
                continue
            if not self._matches(issue, query):
                continue
            segments = self.org.issue_segments(issue, environments)
            count, first, last = self._bounds(segments, lo, hi)
            if count == 0:
                continue  # no event in the window: Sentry's search does not list it
            score = {
                "date": last * 1000,
                "new": first * 1000,
                "freq": count,
                "user": self._user_count(count),
                "priority": last * 1000,
                "trends": last * 1000,
            }[sort]
            scored.append((score, issue))
        scored.sort(key=lambda row: (row[0], row[1].id), reverse=True)
        result = sequence_page(
            [(s, i) for s, i in scored], limit, cursor, max_hits=self.config.max_hits
        )
        body = [self._issue_row(request, issue, lo, hi, environments) for issue in result.results]
        headers = [
            self._link(request, result),  # type: ignore[arg-type]
            ("X-Hits", str(result.hits)),
            ("X-Max-Hits", str(result.max_hits)),
        ]
        return ApiResponse.json(200, body, headers)

    def _matches(self, issue: Issue, query: IssueQuery) -> bool:
        if query.statuses is not None and issue.status not in query.statuses:
            return False
        if query.priorities is not None and issue.priority not in query.priorities:
            return False
        if query.assigned:
            return False  # nobody is assigned anything in the simulator
        if query.first_seen and not date_matches(issue.first_seen, query.first_seen):
            return False
        if query.last_seen and not date_matches(issue.last_seen, query.last_seen):
            return False
        if query.levels is not None or query.categories is not None or query.text:
            title, level, category = self.org.summary(issue)
            if query.levels is not None and level not in query.levels:
                return False
            if query.categories is not None and category not in query.categories:
                return False
            if any(word.lower() not in title.lower() for word in query.text):
                return False
        return True

    def _bounds(self, segments: Sequence[Segment], lo: int, hi: int) -> tuple[int, int, int]:
        """(count, first second, last second) of the visible events in ``[lo, hi)``."""
        lo = max(lo, self.org.retention_cutoff())
        count, first, last = 0, 0, 0
        for seg in segments:
            a, b = seg.count_before(lo), seg.count_before(hi)
            if b > a:
                count += b - a
                first = min(first, seg.timestamp(a)) if first else seg.timestamp(a)
                last = max(last, seg.timestamp(b - 1))
        return count, first, last

    @staticmethod
    def _user_count(count: int) -> int:
        return max(1, count * 37 // 100) if count else 0

    def _stats(self, segments: Sequence[Segment], buckets: int, size: int) -> list[list[int]]:
        now = int(self.org.now())
        end = (now // size + 1) * size
        out = []
        for i in range(buckets, 0, -1):
            start = end - i * size
            out.append([start, self.org.count(segments, start, start + size)])
        return out

    def _issue_row(
        self, request: ApiRequest, issue: Issue, lo: int, hi: int, environments: Sequence[str]
    ) -> dict[str, object]:
        segments = self.org.issue_segments(issue, environments)
        count, first, last = self._bounds(segments, lo, hi)
        counts = IssueCounts(count, last, first, self._user_count(count))
        period = request.get("groupStatsPeriod", "24h")
        stats: dict[str, list[list[int]]] = {}
        if period in ("24h", "auto"):
            stats["24h"] = self._stats(segments, 24, 3600)
        elif period == "14d":
            stats["14d"] = self._stats(segments, 14, DAY)
        return issue_json(
            self.org,
            issue,
            self.org.template(issue),
            base_url=self._base_url(request),
            counts=counts,
            stats=stats,
        )

    def issue_details(self, request: ApiRequest) -> ApiResponse:
        issue = self._issue(request)
        segments = self.org.issue_segments(issue, request.get_list("environment"))
        count = self._bounds(segments, -FAR_FUTURE, FAR_FUTURE)[0]
        counts = IssueCounts(
            issue.times_seen, issue.last_seen, issue.first_seen, self._user_count(count)
        )
        stats = {"24h": self._stats(segments, 24, 3600), "30d": self._stats(segments, 30, DAY)}
        body = issue_json(
            self.org,
            issue,
            self.org.template(issue),
            base_url=self._base_url(request),
            counts=counts,
            stats=stats,
            detail=True,
        )
        response = ApiResponse.json(200, body)
        response.issue_id = issue.id
        return response

    # --- event lists ---------------------------------------------------------------------------

    def _is_hollow(self, ref: EventRef) -> bool:
        """Nodestore lost this event's body (Correction 6): a stable choice per event id."""
        cfg = self.config
        if ref.event_id in cfg.hollow_events:
            return True
        if cfg.hollow_rate <= 0:
            return False
        return sample_hash("hollow:" + ref.event_id) % 1_000_000 < cfg.hollow_rate * 1_000_000

    def _render_list(self, refs: Sequence[EventRef], full: bool) -> bytes:
        render = self.renderer.full if full else self.renderer.slim
        hollow = self.renderer.hollow
        return (
            b"["
            + b",".join(hollow(ref, full) if self._is_hollow(ref) else render(ref) for ref in refs)
            + b"]"
        )

    def _event_list(
        self,
        request: ApiRequest,
        segments: Sequence[Segment],
        lo: int,
        hi: int,
        full: bool,
        issue: Issue | None,
    ) -> ApiResponse:
        per_page = self._per_page(request)
        cursor = self._cursor(request)
        query = (request.get("query") or "").strip()
        if query:
            event_id = normalize_event_id(query)
            if event_id is None:
                raise ErrorAnswer(
                    400, "The simulator only supports an event ID as an event-list query"
                )
            ref = self.org.locate_event(event_id)
            in_scope = ref is not None and any(s is ref.segment for s in segments)
            if ref is not None and in_scope and (issue is None or ref.issue is issue):
                response = ApiResponse(
                    200, self._render_list([ref], full), [("X-Sentry-Direct-Hit", "1")]
                )
                response.issue_id = issue.id if issue else None
                return response
            segments = []

        # Issue event lists: ties in a fresh order per request, sample=1 in a stable one.
        tie_key = self._orders.tie_key() if issue is not None else None
        sample = sample_hash if issue is not None and request.get("sample") == "1" else None

        def fetch(offset: int, limit: int) -> list[EventRef]:
            self._orders.pay_for_offset(offset)
            return self.org.page(segments, lo, hi, offset, limit, tie_key, sample)[0]

        result = generic_offset_page(fetch, per_page, cursor)
        response = ApiResponse(
            200,
            self._render_list(result.results, full),
            [self._link(request, result)],  # type: ignore[arg-type]
        )
        response.issue_id = issue.id if issue else None
        return response

    def _unknown_environment(self, request: ApiRequest) -> bool:
        known = self.org.environment_names()
        return any(env not in known for env in request.get_list("environment"))

    def issue_events(self, request: ApiRequest) -> ApiResponse:
        issue = self._issue(request)
        if self._unknown_environment(request):
            # Sentry answers before paginating: an empty list and no Link header at all
            response = ApiResponse(200, b"[]")
            response.issue_id = issue.id
            return response
        lo, hi = self._window(request, 90)
        full = request.get("full") in ("true", "1")
        segments = self.org.issue_segments(issue, request.get_list("environment"))
        return self._event_list(request, segments, lo, hi, full, issue)

    def project_events(self, request: ApiRequest) -> ApiResponse:
        project = self._project(request)
        # no date window (only the retention); any non-empty ``full`` (even "false") is full
        full = bool(request.get("full"))
        lo, hi = self._window(request, None)
        segments = self.org.project_segments(project, request.get_list("environment"))
        return self._event_list(request, segments, lo, hi, full, None)

    # --- single events -------------------------------------------------------------------------

    def _release_bytes(self, ref: EventRef) -> bytes | None:
        release = self.org.release_for(ref)
        if release is None:
            return None
        key = (release.version, self.org.revision)
        cached = self._release_cache.get(key)
        if cached is None:
            cached = json.dumps(release_json(self.org, release), ensure_ascii=False).encode("utf-8")
            if len(self._release_cache) > 4096:
                self._release_cache.clear()
            self._release_cache[key] = cached
        return cached

    def _detail(self, ref: EventRef, environments: Sequence[str] = ()) -> ApiResponse:
        newer, older = self.org.neighbours(ref, environments)
        if self._is_hollow(ref):  # only latest/oldest/recommended get here: served hollow
            body = self.renderer.detail(ref, release=None, newer=newer, older=older, hollow=True)
        else:
            release = self._release_bytes(ref)
            body = self.renderer.detail(ref, release=release, newer=newer, older=older)
        response = ApiResponse(200, body)
        response.issue_id = ref.issue.id
        return response

    def issue_event_details(self, request: ApiRequest) -> ApiResponse:
        issue = self._issue(request)
        which = request.params["event"]
        environments = request.get_list("environment")
        if which in ("latest", "oldest", "recommended"):
            segments = self.org.issue_segments(issue, environments)
            total = self.org.count(segments, -FAR_FUTURE, FAR_FUTURE)
            if total == 0:
                raise ErrorAnswer(404, EVENT_NOT_FOUND)
            offset = total - 1 if which == "oldest" else 0  # recommended: the latest, here
            refs, _ = self.org.page(segments, -FAR_FUTURE, FAR_FUTURE, offset, 1)
            return self._detail(refs[0], environments)
        ref = self.org.locate_event(which)
        if ref is None or ref.issue is not issue or self._is_hollow(ref):
            raise ErrorAnswer(404, ISSUE_EVENT_NOT_FOUND)
        return self._detail(ref, environments)

    def project_event_details(self, request: ApiRequest) -> ApiResponse:
        project = self._project(request)
        ref = self.org.locate_event(request.params["event"])
        if ref is None or ref.project is not project or self._is_hollow(ref):
            raise ErrorAnswer(404, EVENT_NOT_FOUND)
        return self._detail(ref)

    def eventids(self, request: ApiRequest) -> ApiResponse:
        self._check_org(request)
        raw = request.params["event"]
        if len(raw) != 32 or any(c not in "0123456789abcdefABCDEF" for c in raw):
            raise ErrorAnswer(400, "Event ID must be 32 characters.")
        ref = self.org.locate_event(raw)
        if ref is None or ref.project.slug in request.hidden_projects or self._is_hollow(ref):
            raise ErrorAnswer(404, NOT_FOUND)
        head = json.dumps(
            {
                "organizationSlug": self.org.slug,
                "projectSlug": ref.project.slug,
                "groupId": str(ref.issue.id),
                "eventId": ref.event_id,
            }
        )
        body = head[:-1].encode() + b', "event": ' + self.renderer.full(ref) + b"}"
        response = ApiResponse(200, body)
        response.issue_id = ref.issue.id
        return response
