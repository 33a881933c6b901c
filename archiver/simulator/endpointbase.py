"""What every endpoint group shares: the org, the config, and reading a request.

Facts implemented here come from Sentry's source: default windows (90 days for event lists and
issue search), ``start`` inclusive / ``end`` exclusive on whole seconds, ``statsPeriod``
winning over ``start``/``end``, the ``per_page`` and cursor errors, who may see a project or
an issue. Where Sentry's behaviour was not documented the choice is written next to the code.
"""

from __future__ import annotations

import re
from typing import TypeVar
from urllib.parse import unquote

from .config import SimulatorConfig
from .data import DAY, Issue, Project, SimulatedOrg
from .paging import Cursor, CursorResult, InvalidCursor, link_header
from .search import QueryError, parse_datetime
from .wire import ApiRequest, ErrorAnswer

NOT_FOUND = "The requested resource does not exist"
STATS_PERIOD = re.compile(r"^(\d+)([hdmsw]?)$")
PERIOD_UNITS = {"s": 1, "m": 60, "h": 3600, "d": DAY, "w": 7 * DAY, "": 1}
FAR_FUTURE = 2**62
FORBIDDEN = "You do not have permission to perform this action."

T = TypeVar("T")


def parse_period(text: str) -> int | None:
    """Sentry's ``parse_stats_period``: ``14d``, ``24h``, ``30m``, ``60s``, ``2w`` or seconds."""
    match = STATS_PERIOD.match(text)
    if not match:
        return None
    return int(match.group(1)) * PERIOD_UNITS[match.group(2)]


class EndpointBase:
    """An org's data and the server's config, with the request parsing every endpoint uses."""

    def __init__(self, org: SimulatedOrg, config: SimulatorConfig) -> None:
        self.org = org
        self.config = config

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

    def _link(self, request: ApiRequest, result: CursorResult[T]) -> tuple[str, str]:
        base = self.config.url_prefix or request.base_url
        # Django hands Sentry the decoded path, which it quotes again for the link
        return "Link", link_header(
            base, unquote(request.path), request.query, result.prev, result.next
        )

    def _base_url(self, request: ApiRequest) -> str:
        return (self.config.url_prefix or request.base_url).rstrip("/") + "/"
