"""Event bodies in Sentry's API shapes: full, slim, hollow and detail (``EventRenderer``).

Events are rendered from an issue's template (pre-serialized fragments) plus per-event parts
derived from the event ID's bits (:mod:`.eventparts`: user, breadcrumbs, request, tags, odd
shapes), and assembled as text, never through a full ``json.dumps`` of a big dict: that is what
keeps the simulator fast. Rendered bytes sit in a bounded LRU. Issue, project and release
bodies are in :mod:`.resources`.

Key order follows Sentry's serializers (``EventSerializer``, ``SimpleEventSerializer``); the
seed fixtures keep their own key order.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from . import eventparts as parts
from .data import SimulatedOrg
from .fixtures import FixtureEvent
from .jsontext import NULL, assemble, iso
from .model import EventRef, Issue
from .templates import IssueTemplate, dumps

GROUPING_CONFIG = dumps(
    {
        "enhancements": "eJybzDRxY3J-bm5-np6VTmJeSmpRZXJmUmZpTqqufl5-bkpiSVJiUUmxjlZmYl5JIZh6",
        "id": "newstyle:2023-01-11",
    }
)

DETAIL_TAIL = ',"userReport":null,"sdkUpdates":[],"resolvedWith":[]'


@dataclass(frozen=True)
class Compiled:
    """A template's constant fields as JSON fragments."""

    template: IssueTemplate
    lead: str
    tail: str
    title: str
    message: str
    location: str
    culprit: str
    metadata: str
    sdk: str
    packages: str
    context: str
    errors: str
    fingerprints: str
    platform: str
    event_type: str
    dist: str
    contexts_prefix: str


class EventRenderer:
    """Renders events of one org to JSON bytes, with a bounded LRU of rendered bodies."""

    def __init__(self, org: SimulatedOrg, *, cache_bytes: int = 64 << 20) -> None:
        self.org = org
        self._cache: OrderedDict[tuple[str, str, int], bytes] = OrderedDict()
        self._cache_limit = cache_bytes
        self._cache_size = 0
        self._compiled: OrderedDict[int, Compiled] = OrderedDict()
        self._fixture_parts: dict[str, list[tuple[str, str]]] = {}
        self._lock = threading.Lock()

    # --- public --------------------------------------------------------------------------------

    def full(self, ref: EventRef) -> bytes:
        """``EventSerializer`` shape: list ``full=true`` and the event-ID lookup's ``event``."""
        return self._cached(ref, "full")

    def slim(self, ref: EventRef) -> bytes:
        """``SimpleEventSerializer`` shape: lists without ``full``."""
        return self._cached(ref, "slim")

    def hollow(self, ref: EventRef, full: bool = True) -> bytes:
        """The event as Sentry serves it once nodestore lost its body (Correction 6)."""
        return self._cached(ref, "hollow" if full else "hollow-slim")

    def detail(
        self,
        ref: EventRef,
        *,
        release: bytes | None,
        newer: str | None,
        older: str | None,
        hollow: bool = False,
    ) -> bytes:
        """The detail endpoints' shape: full event plus release, userReport, neighbours."""
        body = self.hollow(ref) if hollow else self.full(ref)
        occurrence = None
        if not hollow and ref.issue.fixture is None:
            occurrence = self._compile(ref.issue).template.occurrence
        if occurrence is not None and b'"occurrence":null' in body:
            filled = dumps({**occurrence, "eventId": ref.event_id, "projectId": ref.project.id})
            body = body.replace(b'"occurrence":null', b'"occurrence":' + filled.encode(), 1)
        extra = (
            b',"release":'
            + (release or b"null")
            + DETAIL_TAIL.encode()
            + b',"nextEventID":'
            + (json.dumps(newer).encode())
            + b',"previousEventID":'
            + (json.dumps(older).encode())
            + b"}"
        )
        return body[:-1] + extra

    def as_dict(self, ref: EventRef, variant: str = "full") -> dict[str, Any]:
        """The parsed body (tests and callers that want Python objects)."""
        data: dict[str, Any] = json.loads(self._cached(ref, variant))
        return data

    # --- cache ---------------------------------------------------------------------------------

    def _cached(self, ref: EventRef, variant: str) -> bytes:
        key = (ref.event_id, variant, ref.issue.id)
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
        if variant == "full":
            text = self._render_full(ref)
        elif variant == "slim":
            text = self._render_slim(ref)
        elif variant == "hollow":
            text = self._render_hollow(ref)
        else:
            text = self._render_slim(ref, "hollow")
        body = text.encode("utf-8")
        with self._lock:
            if key not in self._cache and len(body) <= self._cache_limit // 4:
                self._cache[key] = body
                self._cache_size += len(body)
                while self._cache_size > self._cache_limit:
                    _, old = self._cache.popitem(last=False)
                    self._cache_size -= len(old)
        return body

    @property
    def cached_bytes(self) -> int:
        return self._cache_size

    def _compile(self, issue: Issue) -> Compiled:
        with self._lock:
            hit = self._compiled.get(issue.index)
            if hit is not None:
                self._compiled.move_to_end(issue.index)
                return hit
        t = self.org.template(issue)
        contexts = dumps(t.contexts)
        compiled = Compiled(
            template=t,
            lead=",".join(t.lead_entries),
            tail=",".join(t.tail_entries),
            title=dumps(t.title),
            message=dumps(t.message),
            location=dumps(t.location),
            culprit=dumps(t.culprit),
            metadata=dumps(t.metadata),
            sdk=dumps(t.sdk or None),
            packages=dumps(t.packages),
            context=dumps(t.extra or {}),
            errors=dumps(list(t.errors)),
            fingerprints=dumps([t.fingerprint]),
            platform=dumps(t.platform),
            event_type=dumps(t.event_type),
            dist=dumps(t.dist),
            contexts_prefix=contexts[:-1] + ("," if len(contexts) > 2 else ""),
        )
        with self._lock:
            self._compiled[issue.index] = compiled
            while len(self._compiled) > 512:
                self._compiled.popitem(last=False)
        return compiled

    # --- full ----------------------------------------------------------------------------------

    def _render_full(self, ref: EventRef) -> str:
        """``EventSerializer``'s shape: the template's fragments around this event's own parts."""
        issue = ref.issue
        if issue.fixture is not None:
            return self._render_fixture(ref, issue.fixture)
        c = self._compile(issue)
        t = c.template
        eid = ref.event_id
        bits = int(eid, 16)
        odd = parts.oddity(bits, self.org.odd_rate)
        user = parts.user(bits, odd) if t.event_type not in parts.SECURITY_REPORTS else None
        os_name, user_agent = parts.client(bits)
        entries, url = self._entries(c, ref, bits, odd, user_agent)
        message, tags = parts.odd_message(t, c.message, bits, odd)
        release = self.org.release_for(ref)
        version = release.version if release is not None else None
        tags += parts.event_tags(t, ref.segment.environment, version, user, url, os_name)
        extra = c.context
        if odd == "long":
            extra = dumps({**(t.extra or {}), "dump": "z" * 11_000})
        transaction = t.event_type == "transaction"
        occurrence = NULL
        if t.occurrence is not None and not transaction:
            # a transaction's occurrence is filled by the detail endpoints only
            occurrence = dumps({**t.occurrence, "eventId": eid, "projectId": issue.project.id})
        created, received = parts.event_dates(ref, bits, t.platform)
        fields = [
            ("id", parts.event_ident(eid, bits, odd)),
            ("groupID", f'"{issue.id}"'),
            ("eventID", f'"{eid}"'),
            ("projectID", f'"{issue.project.id}"'),
            ("size", str(1_500 + bits % 60_000)),
            ("entries", entries),
            ("dist", c.dist),
            ("message", message),
            ("title", c.title),
            ("location", c.location),
            ("user", dumps(user)),
            ("contexts", c.contexts_prefix + parts.trace_context(eid)),
            ("sdk", c.sdk),
            ("context", extra),
            ("packages", c.packages),
            ("type", c.event_type),
            ("metadata", c.metadata),
            ("tags", dumps(parts.tag_objects(tags, odd))),
            ("platform", c.platform),
            ("dateReceived", f'"{received}"'),
            ("errors", NULL if odd == "null_lists" else c.errors),
            ("occurrence", occurrence),
            ("_meta", parts.meta(odd)),
        ]
        if transaction:
            # EventSerializer's transaction attributes replace the error ones (no dateCreated,
            # culprit, fingerprints)
            fields.extend(parts.transaction_attrs(ref, bits))
        else:
            fields += [
                ("crashFile", NULL),
                ("culprit", c.culprit),
                ("dateCreated", f'"{created}"'),
                ("fingerprints", NULL if odd == "null_lists" else c.fingerprints),
                ("groupingConfig", GROUPING_CONFIG),
            ]
        return assemble(fields)

    def _entries(
        self, c: Compiled, ref: EventRef, bits: int, odd: str | None, user_agent: str
    ) -> tuple[str, str | None]:
        """The ``entries`` fragment, and the request's URL (None without a request entry)."""
        t = c.template
        entries = [c.lead] if c.lead else []
        if t.crumbs and odd != "no_crumbs":
            entries.append(parts.breadcrumbs(t.crumbs, ref.timestamp, ref.micros, bits, odd))
        url = None
        if t.request:
            request, url = parts.request_entry(t.request, bits, odd, user_agent)
            entries.append(request)
        if c.tail:
            entries.append(c.tail)
        if odd == "unknown_entry":
            entries.append(parts.UNKNOWN_ENTRY)
        if t.event_type == "transaction":
            entries[0] = parts.spans_entry(c.lead, ref, bits)
        return "[" + ",".join(entries) + "]", url

    def _fixture_fragments(self, fixture: FixtureEvent) -> list[tuple[str, str]]:
        with self._lock:
            hit = self._fixture_parts.get(fixture.name)
        if hit is None:
            hit = [(k, dumps(v)) for k, v in fixture.body.items()]
            with self._lock:
                self._fixture_parts[fixture.name] = hit
        return hit

    def _fixture_dates(self, ref: EventRef, fixture: FixtureEvent) -> tuple[str, str]:
        micros = "." in str(fixture.body.get("dateCreated", ""))
        created = iso(ref.timestamp, ref.micros if micros else None)
        received = iso(ref.timestamp, min(999_999, ref.micros + 330_000) if micros else None)
        return created, received

    def _render_fixture(self, ref: EventRef, fixture: FixtureEvent) -> str:
        created, received = self._fixture_dates(ref, fixture)
        overrides = {
            "id": dumps(ref.event_id),
            "eventID": dumps(ref.event_id),
            "groupID": dumps(str(ref.issue.id)),
            "projectID": dumps(str(ref.project.id)),
            "dateCreated": dumps(created),
            "dateReceived": dumps(received),
        }
        parts = [(k, overrides.get(k, v)) for k, v in self._fixture_fragments(fixture)]
        return assemble(parts)

    # --- slim ----------------------------------------------------------------------------------

    def _render_hollow(self, ref: EventRef) -> str:
        """What ``bind_nodes`` leaves when nodestore has no body: the Snuba columns only.

        Real ``id``, ``eventID``, ``groupID``, ``projectID``, ``dateCreated`` (and the title,
        type and platform Snuba lists); ``entries: []``, empty contexts, null user and sdk.
        """
        full = json.loads(self._cached(ref, "full"))
        created = full.get("dateCreated") or iso(ref.timestamp)
        body = {
            "id": full.get("id"),
            "groupID": full.get("groupID"),
            "eventID": full.get("eventID"),
            "projectID": full.get("projectID"),
            "size": None,
            "entries": [],
            "dist": None,
            "message": "",
            "title": full.get("title"),
            "location": None,
            "user": None,
            "contexts": {},
            "sdk": None,
            "context": {},
            "packages": {},
            "type": full.get("type"),
            "metadata": {},
            "tags": [],
            "platform": full.get("platform"),
            "dateReceived": None,
            "errors": [],
            "occurrence": None,
            "_meta": {},
            "crashFile": None,
            "culprit": "",
            "dateCreated": created,
            "fingerprints": [],
            "groupingConfig": None,
        }
        return dumps(body)

    def _render_slim(self, ref: EventRef, source: str = "full") -> str:
        full = json.loads(self._cached(ref, source))
        user = full.get("user")
        if isinstance(user, dict):
            user = {k: user.get(k) for k in ("id", "email", "username", "ip_address", "name")}
        tags = []
        for tag in full.get("tags") or []:
            if isinstance(tag, dict):
                slim = {"key": tag.get("key"), "value": tag.get("value")}
                if "query" in tag:
                    slim["query"] = tag["query"]
                tags.append(slim)
        slim_event = {
            "eventID": full.get("eventID"),
            "tags": tags,
            # SimpleEventSerializer dates every event (transactions too) by its timestamp
            "dateCreated": full.get("dateCreated") or iso(ref.timestamp),
            "user": user,
            "message": full.get("message"),
            "title": full.get("title"),
            "id": full.get("id"),
            "platform": full.get("platform"),
            "event.type": full.get("type"),
            "groupID": full.get("groupID"),
            "crashFile": full.get("crashFile"),
            "location": full.get("location"),
            "culprit": full.get("culprit"),
            "projectID": str(ref.project.id),
            "metadata": full.get("metadata"),
        }
        return dumps(slim_event)
