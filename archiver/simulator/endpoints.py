"""Sentry's REST semantics over a :class:`~.data.SimulatedOrg`: one method per endpoint.

:class:`SentryApi` takes a routed request (:mod:`.routes`) to its endpoint and turns an
:class:`~.wire.ErrorAnswer` into its response. It serves the organisation, its projects and
releases here; the issue endpoints are in :mod:`.issue_endpoints`, the event endpoints in
:mod:`.event_endpoints`, the request parsing they share in :mod:`.endpointbase`. Facts come
from Sentry's source; where its behaviour was not documented the choice is written next to
the code.
"""

from __future__ import annotations

from collections.abc import Callable

from .config import SimulatorConfig
from .data import SimulatedOrg
from .endpointbase import NOT_FOUND, EndpointBase
from .event_endpoints import EventEndpoints
from .issue_endpoints import IssueEndpoints
from .paging import offset_page
from .payloads import EventRenderer
from .resources import project_json, release_json
from .wire import ApiRequest, ApiResponse, ErrorAnswer

GONE = {"message": "This API no longer exists."}


class SentryApi(EndpointBase):
    """Answers API requests for one org. Thread-safe (the org locks its own state).

    Serves the organisation, its projects and releases itself; issues and events through
    :class:`IssueEndpoints` and :class:`EventEndpoints`.
    """

    def __init__(self, org: SimulatedOrg, config: SimulatorConfig, renderer: EventRenderer) -> None:
        super().__init__(org, config)
        self.renderer = renderer
        issues = IssueEndpoints(org, config)
        events = EventEndpoints(org, config, renderer)
        self._handlers: dict[str, Callable[[ApiRequest], ApiResponse]] = {
            "organization_index": self.organization_index,
            "organization_details": self.organization_details,
            "organization_projects": self.organization_projects,
            "organization_issues": issues.organization_issues,
            "project_details": self.project_details,
            "project_issues": issues.project_issues,
            "issue_details": issues.issue_details,
            "issue_events": events.issue_events,
            "issue_event_details": events.issue_event_details,
            "project_events": events.project_events,
            "project_event_details": events.project_event_details,
            "eventids": events.eventids,
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

    # --- organization and projects -------------------------------------------------------------

    def organization_index(self, request: ApiRequest) -> ApiResponse:
        """The organisations the token can see: the one org served, paged as Sentry does."""
        result = offset_page(
            [self._org_json(request)], self._per_page(request), self._cursor(request)
        )
        return ApiResponse.json(200, result.results, [self._link(request, result)])

    def organization_details(self, request: ApiRequest) -> ApiResponse:
        self._check_org(request)
        return ApiResponse.json(200, self._org_json(request))

    def _org_json(self, request: ApiRequest) -> dict[str, object]:
        return {
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
        }

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
        return ApiResponse.json(200, body, [self._link(request, result)])

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
