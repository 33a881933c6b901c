"""The issue endpoints: the organisation's and a project's issue search, and issue details.

Sentry's search lists an issue only when it has an event in the window; its counts, first and
last seen are the window's, its ``lifetime`` the whole issue's. The default queries, sorts,
``X-Hits``/``X-Max-Hits`` and direct hits by event ID follow Sentry's source.
"""

from __future__ import annotations

from collections.abc import Sequence

from .data import DAY, Issue, Project
from .endpointbase import FAR_FUTURE, FORBIDDEN, NOT_FOUND, EndpointBase
from .paging import sequence_page
from .resources import IssueCounts, issue_json
from .search import IssueQuery, QueryError, date_matches, parse_issue_query
from .timeline import Segment
from .wire import ApiRequest, ApiResponse, ErrorAnswer

ORG_DEFAULT_QUERY = "is:unresolved issue.priority:[high, medium]"
PROJECT_DEFAULT_QUERY = "is:unresolved"
SORTS = ("date", "new", "freq", "user", "priority", "trends")


class IssueEndpoints(EndpointBase):
    """``organization_issues``, ``project_issues`` and ``issue_details``."""

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
        """One page of the issues with an event in ``[lo, hi)`` that match the query."""
        limit = self._search_limit(request)
        cursor = self._cursor(request, offsets=False)
        sort = request.get("sort") or "date"
        if sort not in SORTS:
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
        scored = self._scored(projects, query, environments, lo, hi, sort)
        result = sequence_page(scored, limit, cursor, max_hits=self.config.max_hits)
        body = [self._issue_row(request, issue, lo, hi, environments) for issue in result.results]
        headers = [
            self._link(request, result),
            ("X-Hits", str(result.hits)),
            ("X-Max-Hits", str(result.max_hits)),
        ]
        return ApiResponse.json(200, body, headers)

    @staticmethod
    def _search_limit(request: ApiRequest) -> int:
        """``limit``: 100 by default and at most; 400 when not a positive number."""
        raw_limit = request.get("limit")
        limit = 100
        if raw_limit:
            try:
                limit = int(raw_limit)
            except ValueError as exc:
                raise ErrorAnswer(400, "invalid limit") from exc
            if limit <= 0:
                raise ErrorAnswer(400, "invalid limit")
        return min(limit, 100)

    def _scored(
        self,
        projects: list[Project] | None,
        query: IssueQuery,
        environments: Sequence[str],
        lo: int,
        hi: int,
        sort: str,
    ) -> list[tuple[int, Issue]]:
        """The matching issues with an event in the window, best first by ``sort``."""
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
        return scored

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
