"""The event endpoints: issue and project event lists, single events, the event-ID lookup.

Lists are offset-paged (each page a fresh query: ties reorder, deep offsets cost, see
:mod:`.ordering`); hollow events (nodestore lost their body) are listed and served by
``latest``/``oldest``/``recommended`` hollow, and 404 by ID.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from .config import SimulatorConfig
from .data import EventRef, Issue, SimulatedOrg
from .endpointbase import FAR_FUTURE, NOT_FOUND, EndpointBase
from .ids import normalize_event_id
from .ordering import ListOrders, sample_hash
from .paging import generic_offset_page
from .payloads import EventRenderer
from .resources import release_json
from .timeline import Segment
from .wire import ApiRequest, ApiResponse, ErrorAnswer

EVENT_NOT_FOUND = "Event not found"
ISSUE_EVENT_NOT_FOUND = (
    "Event not found. The event ID may be incorrect, or its age exceeded the retention period."
)


class EventEndpoints(EndpointBase):
    """``issue_events``, ``project_events``, the two event details and ``eventids``."""

    def __init__(self, org: SimulatedOrg, config: SimulatorConfig, renderer: EventRenderer) -> None:
        super().__init__(org, config)
        self.renderer = renderer
        self._release_cache: dict[tuple[str, int], bytes] = {}
        self._orders = ListOrders(config)

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
            [self._link(request, result)],
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
