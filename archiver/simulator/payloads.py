"""JSON bodies in Sentry's API shapes: events (full, slim, detail), issues, projects, releases.

Events are rendered from an issue's template (pre-serialized fragments) plus per-event parts
derived from the event ID's bits (user, breadcrumbs, request, tags, odd shapes), and assembled
as text, never through a full ``json.dumps`` of a big dict: that is what keeps the simulator
fast. Rendered bytes sit in a bounded LRU.

Key order follows Sentry's serializers (``EventSerializer``, ``SimpleEventSerializer``,
``GroupSerializer``); the seed fixtures keep their own key order.
"""

from __future__ import annotations

import functools
import json
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from . import vocab
from .data import DAY, EventRef, Issue, Project, Release, SimulatedOrg
from .fixtures import FixtureEvent
from .templates import IssueTemplate, dumps

NULL = "null"
EMPTY_META = dumps(
    {
        "user": None,
        "context": None,
        "entries": {},
        "contexts": None,
        "message": None,
        "packages": None,
        "tags": {},
        "sdk": None,
    }
)
GROUPING_CONFIG = dumps(
    {
        "enhancements": "eJybzDRxY3J-bm5-np6VTmJeSmpRZXJmUmZpTqqufl5-bkpiSVJiUUmxjlZmYl5JIZh6",
        "id": "newstyle:2023-01-11",
    }
)

ODDITIES = (
    "user_null",
    "query_string",
    "data_string",
    "data_list",
    "crumb_float",
    "null_lists",
    "legacy_id",
    "legacy_int_id",
    "unicode",
    "nul",
    "long",
    "tags_meta",
    "meta_scrub",
    "many_crumbs",
    "unknown_entry",
    "no_crumbs",
)
"""Per-event odd shapes, each seen in real Sentry payloads (chosen for ``odd_rate`` of events)."""

SECURITY_REPORTS = frozenset({"csp", "hpkp", "expectct", "expectstaple"})
"""Browsers send these reports without any user."""

DETAIL_TAIL = ',"userReport":null,"sdkUpdates":[],"resolvedWith":[]'


@functools.lru_cache(maxsize=65_536)
def _minute_prefix(minute: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:", time.gmtime(minute * 60))


def iso(seconds: int, micros: int | None = None) -> str:
    """``2024-06-01T12:00:00.123456Z`` (or whole seconds when ``micros`` is None).

    Formats tens of timestamps per event, so the minute prefix is memoised.
    """
    minute, second = divmod(int(seconds), 60)
    prefix = _minute_prefix(minute)
    return f"{prefix}{second:02d}.{micros:06d}Z" if micros is not None else f"{prefix}{second:02d}Z"


def _assemble(parts: list[tuple[str, str]]) -> str:
    return "{" + ",".join(f'"{k}":{v}' for k, v in parts) + "}"


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


_CRUMBS: dict[str, tuple[tuple[str, str, str | None, Any, str | None], ...]] = {
    # style -> (type, category, level, data, message)
    "server": (
        (
            "default",
            "query",
            "info",
            None,
            'SELECT "orders_order"."id" FROM "orders_order" WHERE "orders_order"."customer_id" = %s',
        ),
        (
            "http",
            "httplib",
            "info",
            {
                "url": "https://api.stripe.com/v1/charges",
                "method": "POST",
                "status_code": 402,
                "reason": "Payment Required",
            },
            None,
        ),
        (
            "default",
            "redis",
            "info",
            {"redis.key": "session:9f2c", "db.operation": "GET"},
            "GET 'session:9f2c'",
        ),
        ("default", "acme.orders", "warning", None, "Retrying charge after soft decline"),
        ("debug", "celery", None, {"task": "acme.orders.tasks.send_receipt"}, "task queued"),
    ),
    "browser": (
        ("navigation", "navigation", "info", {"from": "/cart", "to": "/checkout"}, None),
        ("default", "ui.click", "info", None, 'button.btn-primary[type="submit"]'),
        ("http", "xhr", "info", {"method": "GET", "url": "/api/0/cart/", "status_code": 200}, None),
        (
            "http",
            "fetch",
            "error",
            {"method": "POST", "url": "/api/0/checkout/", "status_code": 502},
            None,
        ),
        (
            "debug",
            "console",
            "log",
            {"arguments": ["render", {"items": 3}], "logger": "console"},
            "render [object Object]",
        ),
        ("default", "sentry.transaction", "info", None, "7787a027f3fb46c985aaa2287b3f4d09"),
    ),
    "mobile": (
        (
            "navigation",
            "ui.lifecycle",
            "info",
            {"screen": "CheckoutViewController", "state": "viewDidAppear"},
            None,
        ),
        ("default", "device.event", "info", {"action": "BATTERY_STATE_CHANGE", "level": 14}, None),
        (
            "http",
            "http",
            "info",
            {"method": "POST", "url": "https://api.acme.io/v2/orders", "status_code": 500},
            None,
        ),
        ("user", "touch", "info", {"view": "UIButton"}, "checkoutButton"),
    ),
}


def _crumb_parts(crumb: tuple[str, str, str | None, Any, str | None]) -> tuple[str, str]:
    """A breadcrumb pre-serialized around its timestamp: (text before, text after)."""
    ctype, cat, level, data, message = crumb
    text = dumps(
        {
            "type": ctype,
            "category": cat,
            "level": level,
            "event_id": None,
            "timestamp": "\x00",
            "data": data,
            "message": message,
        }
    )
    before, _, after = text.partition('"\\u0000"')
    return before, after


_CRUMB_PARTS = {style: tuple(_crumb_parts(c) for c in pool) for style, pool in _CRUMBS.items()}

_PATHS = (
    "/api/orders/",
    "/api/orders/1234/pay/",
    "/checkout",
    "/api/customers/me/",
    "/cart",
    "/api/search/",
)


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

    # --- per-event parts -----------------------------------------------------------------------

    def _oddity(self, bits: int) -> str | None:
        if (bits >> 100) % 10_000 < self.org.odd_rate * 10_000:
            return ODDITIES[(bits >> 84) % len(ODDITIES)]
        return None

    @staticmethod
    def _user(bits: int, odd: str | None) -> dict[str, Any] | None:
        if odd == "user_null" or (bits >> 20) % 11 == 0:
            return None
        n = (bits >> 24) % 5_000
        first = vocab.USER_FIRST[n % len(vocab.USER_FIRST)]
        last = vocab.USER_LAST[(n // 7) % len(vocab.USER_LAST)]
        name = f"{first} {last}"
        if odd == "unicode":
            name = f"{first} {vocab.UNICODE_SNIPPETS[n % len(vocab.UNICODE_SNIPPETS)]}"
        elif odd == "nul":
            name = f"{first}\u0000{last}"
        return {
            "id": str(10_000 + n),
            "email": f"{first.lower()}.{n}@example.com",
            "username": None if n % 3 else f"{first.lower()}{n}",
            "ip_address": f"203.0.{n % 256}.{(n * 7) % 256}" if odd != "meta_scrub" else None,
            "name": name,
            "geo": {
                "country_code": ("DE", "US", "JP", "BR", "IN")[n % 5],
                "city": None,
                "region": None,
            }
            if n % 4 == 0
            else None,
            "data": {"isStaff": n % 50 == 0} if n % 2 == 0 else None,
        }

    def _crumbs(self, style: str, ts: int, micros: int, bits: int, odd: str | None) -> str:
        if odd == "null_lists":
            return '{"type":"breadcrumbs","data":{"values":null}}'
        pool = _CRUMB_PARTS[style]
        count = 3 + (bits >> 30) % 10
        if odd == "many_crumbs":
            count = 100
        values = []
        for i in range(count):
            prefix, suffix = pool[(bits >> (i % 40)) % len(pool) if i < 40 else i % len(pool)]
            at = ts - (count - i) * 1.7 - 0.25
            if odd == "crumb_float" and i % 2 == 0:
                stamp = repr(round(at + micros / 1e6, 3))
            else:
                whole = int(at)
                stamp = '"' + iso(whole, int((at - whole) * 1e6) // 1000 * 1000) + '"'
            if i == 0 and odd in ("nul", "long"):
                message = "bad\u0000byte" if odd == "nul" else "x" * 12_000
                crumb = json.loads(prefix + stamp + suffix)
                crumb["message"] = message
                values.append(dumps(crumb))
            else:
                values.append(prefix + stamp + suffix)
        return '{"type":"breadcrumbs","data":{"values":[' + ",".join(values) + "]}}"

    def _request(self, style: str, bits: int, odd: str | None, user_agent: str) -> tuple[str, str]:
        path = _PATHS[(bits >> 36) % len(_PATHS)]
        host = "https://shop.acme.io" if style == "browser" else "https://api.acme.io"
        url = host + path
        page = (bits >> 40) % 50
        query: Any = [["page", str(page)], ["sort", "-created"]]
        if odd == "query_string":
            query = f"page={page}&sort=-created"
        variant = (bits >> 44) % 4
        data: Any = {"amount": 4999, "currency": "EUR", "items": [1, 2]} if variant == 0 else None
        if odd == "data_string":
            data = "amount=4999&currency=EUR"
        elif odd == "data_list":
            data = [["amount", "4999"], ["currency", "EUR"]]
        elif odd == "long":
            data = {"blob": "y" * 15_000}
        method = "POST" if data is not None else ("GET" if style != "browser" else None)
        headers = [["Accept", "application/json"], ["Host", host[8:]], ["User-Agent", user_agent]]
        if style == "browser":
            headers.append(["Referer", host + "/cart"])
        request = {
            "type": "request",
            "data": {
                "fragment": None,
                "cookies": [["sessionid", "[Filtered]"]] if style == "server" else [],
                "inferredContentType": "application/json" if isinstance(data, dict) else None,
                "env": {
                    "REMOTE_ADDR": "10.0.0.12",
                    "SERVER_NAME": "api.acme.io",
                    "SERVER_PORT": "443",
                }
                if style == "server"
                else None,
                "headers": headers,
                "url": url,
                "query": query,
                "data": data,
                "method": method,
            },
        }
        return dumps(request), url

    # --- full ----------------------------------------------------------------------------------

    def _render_full(self, ref: EventRef) -> str:
        issue = ref.issue
        if issue.fixture is not None:
            return self._render_fixture(ref, issue.fixture)
        c = self._compile(issue)
        t = c.template
        eid = ref.event_id
        bits = int(eid, 16)
        odd = self._oddity(bits)
        micros = ref.micros
        user = self._user(bits, odd) if t.event_type not in SECURITY_REPORTS else None
        browser, bversion = vocab.BROWSERS[(bits >> 50) % len(vocab.BROWSERS)]
        os_name, os_version = vocab.OSES[(bits >> 54) % len(vocab.OSES)]
        user_agent = f"Mozilla/5.0 ({os_name} {os_version}) AppleWebKit/537.36 (KHTML, like Gecko) {browser}/{bversion}"
        entries = [c.lead] if c.lead else []
        if t.crumbs and odd != "no_crumbs":
            entries.append(self._crumbs(t.crumbs, ref.timestamp, micros, bits, odd))
        url = None
        if t.request:
            request, url = self._request(t.request, bits, odd, user_agent)
            entries.append(request)
        if c.tail:
            entries.append(c.tail)
        if odd == "unknown_entry":
            entries.append(
                dumps({"type": "threadpool_info", "data": {"pending": 3, "workers": [1, 2]}})
            )
        release = self.org.release_for(ref)
        env = ref.segment.environment
        tags: list[tuple[str, str]] = [*t.tags, ("environment", env), ("level", t.level)]
        if release is not None:
            tags.append(("release", release.version))
        if user is not None:
            tags.append(("user", f"id:{user['id']}"))
        if url is not None:
            tags.append(("url", url))
        if t.platform == "javascript":
            tags.append(("os.name", os_name))
        message = c.message
        title = c.title
        if odd == "unicode":
            message = dumps(
                f"{t.message or t.title} — {vocab.UNICODE_SNIPPETS[bits % len(vocab.UNICODE_SNIPPETS)]}"
            )
            tags.append(
                (
                    "checkout.locale",
                    vocab.UNICODE_SNIPPETS[(bits >> 8) % len(vocab.UNICODE_SNIPPETS)],
                )
            )
        elif odd == "nul":
            message = dumps(f"{t.message or t.title}\u0000(truncated)")
            tags.append(("query.raw", "a\u0000b"))
        elif odd == "long":
            message = dumps((t.message or t.title) + " " + "lorem ipsum " * 1_000)
        tags.sort()
        tag_objs: list[dict[str, Any]] = []
        for key, value in tags:
            obj: dict[str, Any] = {"key": key, "value": value}
            if key == "user" and ":" in value:
                sub, _, rest = value.partition(":")
                obj["query"] = f'user.{sub}:"{rest}"'
            if odd == "tags_meta" and key == "url":
                obj["_meta"] = {"value": {"": {"rem": [["@password", "s", 0, 10]], "len": 42}}}
            elif odd == "tags_meta":
                obj["_meta"] = None
            tag_objs.append(obj)
        trace = f'"trace":{{"trace_id":"{eid[::-1]}","span_id":"{eid[4:20]}","op":"http.server","status":"internal_error","type":"trace"}}}}'
        contexts = c.contexts_prefix + trace
        meta = EMPTY_META
        if odd == "meta_scrub":
            meta = dumps(
                {
                    "user": {"ip_address": {"": {"rem": [["@ip:replace", "s", 0, 10]], "len": 13}}},
                    "context": None,
                    "entries": {
                        "1": {
                            "data": {"headers": {"0": {"1": {"": {"rem": [["@password", "s"]]}}}}}
                        }
                    },
                    "contexts": None,
                    "message": None,
                    "packages": None,
                    "tags": {},
                    "sdk": None,
                }
            )
        ident: str = dumps(eid)
        if odd == "legacy_id":
            ident = dumps(str(bits % 10**9))
        elif odd == "legacy_int_id":
            ident = str(bits % 10**9)
        extra = c.context
        if odd == "long":
            extra = dumps({**(t.extra or {}), "dump": "z" * 11_000})
        occurrence = NULL
        if t.occurrence is not None:
            occurrence = dumps({**t.occurrence, "eventId": eid, "projectId": issue.project.id})
        created = iso(
            ref.timestamp, micros if t.platform in ("javascript", "cocoa", "node") else None
        )
        received_ms = (bits >> 60) % 3_000
        received = iso(
            ref.timestamp + (micros // 1000 + received_ms) // 1000,
            ((micros // 1000 + received_ms) % 1000) * 1000,
        )
        if t.event_type == "transaction":
            entries[0] = self._spans(c, ref, bits)
        parts = [
            ("id", ident),
            ("groupID", f'"{issue.id}"'),
            ("eventID", f'"{eid}"'),
            ("projectID", f'"{issue.project.id}"'),
            ("size", str(1_500 + bits % 60_000)),
            ("entries", "[" + ",".join(entries) + "]"),
            ("dist", c.dist),
            ("message", message),
            ("title", title),
            ("location", c.location),
            ("user", dumps(user)),
            ("contexts", contexts),
            ("sdk", c.sdk),
            ("context", extra),
            ("packages", c.packages),
            ("type", c.event_type),
            ("metadata", c.metadata),
            ("tags", dumps(tag_objs)),
            ("platform", c.platform),
            ("dateReceived", f'"{received}"'),
            ("errors", NULL if odd == "null_lists" else c.errors),
            ("occurrence", occurrence),
            ("_meta", meta),
        ]
        if t.event_type == "transaction":
            # EventSerializer's transaction attributes replace the error ones (no dateCreated,
            # culprit, fingerprints); the occurrence is filled by the detail endpoints only
            parts[-2] = ("occurrence", NULL)
            parts.extend(self._transaction_attrs(ref, bits))
        else:
            parts += [
                ("crashFile", NULL),
                ("culprit", c.culprit),
                ("dateCreated", f'"{created}"'),
                ("fingerprints", NULL if odd == "null_lists" else c.fingerprints),
                ("groupingConfig", GROUPING_CONFIG),
            ]
        return _assemble(parts)

    @staticmethod
    def _span_times(ref: EventRef, bits: int) -> tuple[float, float]:
        """(start, end) of a transaction in epoch seconds: it ends within its event's second."""
        end = ref.timestamp + ref.micros / 1e6
        return round(end - (50 + (bits >> 40) % 2_950) / 1000, 6), round(end, 6)

    def _spans(self, c: Compiled, ref: EventRef, bits: int) -> str:
        """The template's spans entry moved into this transaction's time."""
        entry = json.loads(c.lead)
        spans = entry["data"]
        if spans:
            start, end = self._span_times(ref, bits)
            first = min(float(span["start_timestamp"]) for span in spans)
            last = max(float(span["timestamp"]) for span in spans)
            scale = (end - start) / max(last - first, 1e-6) * 0.9
            for span in spans:
                span["start_timestamp"] = round(
                    start + (span["start_timestamp"] - first) * scale, 6
                )
                span["timestamp"] = round(start + (span["timestamp"] - first) * scale, 6)
                span["trace_id"] = ref.event_id[::-1]
        return dumps(entry)

    def _transaction_attrs(self, ref: EventRef, bits: int) -> list[tuple[str, str]]:
        start, end = self._span_times(ref, bits)
        ms = round((end - start) * 1000, 3)
        db = round(ms * (0.4 + (bits >> 8) % 50 / 100), 3)
        measurements = {
            "ttfb": {"value": round(ms * 0.2, 3), "unit": "millisecond"},
            "ttfb.requesttime": {"value": round(ms * 0.05, 3), "unit": "millisecond"},
        }
        breakdowns = {
            "span_ops": {
                "ops.db": {"value": db, "unit": "millisecond"},
                "total.time": {"value": ms, "unit": "millisecond"},
            }
        }
        return [
            ("startTimestamp", repr(start)),
            ("endTimestamp", repr(end)),
            ("measurements", dumps(measurements)),
            ("breakdowns", dumps(breakdowns)),
        ]

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
        return _assemble(parts)

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


# --- issues, projects, releases ----------------------------------------------------------------


def project_json(org: SimulatedOrg, project: Project) -> dict[str, Any]:
    """The organization projects list item (shape of Sentry's example)."""
    latest = org.releases.get(project.index, [])
    envs = sorted({s.environment for i in org.issues if i.project is project for s in i.own})
    return {
        "id": str(project.id),
        "slug": project.slug,
        "name": project.name,
        "platform": project.platform,
        "dateCreated": iso(project.date_created, 0)[:-4] + "Z",
        "isBookmarked": False,
        "isMember": True,
        "features": ["releases", "minidump", "similarity-indexing"],
        "firstEvent": iso(project.date_created + DAY),
        "firstTransactionEvent": project.platform in ("python", "javascript"),
        "access": ["project:read", "event:read"],
        "hasAccess": True,
        "hasMinifiedStackTrace": project.platform == "javascript",
        "hasMonitors": False,
        "hasProfiles": False,
        "hasReplays": False,
        "hasFeedbacks": False,
        "hasSessions": True,
        "isInternal": False,
        "isPublic": False,
        "avatar": {"avatarType": "letter_avatar", "avatarUuid": None},
        "color": "#3f70bf",
        "status": "active",
        "environments": envs,
        "platforms": [project.platform],
        "team": {"id": str(project.team_id), "name": "Core", "slug": "core"},
        "teams": [{"id": str(project.team_id), "name": "Core", "slug": "core"}],
        "latestRelease": {"version": latest[-1].version} if latest else None,
    }


def _short(version: str) -> str:
    if len(version) == 40 and all(c in "0123456789abcdef" for c in version):
        return version[:12]
    return version.split("@", 1)[-1]


def release_json(org: SimulatedOrg, release: Release) -> dict[str, Any]:
    """A release, in the shape of seed 000's ``release`` (the fixture's own object if any)."""
    if release.fixture is not None:
        return dict(release.fixture)
    project = org.projects[release.project_index]
    siblings = org.releases.get(project.index, [])
    pos = next((i for i, r in enumerate(siblings) if r.version == release.version), 0)
    following = siblings[pos + 1].created if pos + 1 < len(siblings) else org.anchor - 1
    seed = release.seed
    sha = f"{(seed * 2654435761) % 2**160:040x}"
    author = vocab.USER_FIRST[seed % len(vocab.USER_FIRST)].lower()
    return {
        "dateReleased": iso(release.created + 1800, 0),
        "newGroups": seed % 7,
        "commitCount": 1 + seed % 40,
        "url": f"https://deploy.acme.io/{project.slug}/{pos + 1}/" if seed % 3 else None,
        "data": {},
        "lastDeploy": {
            "name": f"{release.version} to production",
            "url": None,
            "environment": "production",
            "dateStarted": None,
            "dateFinished": iso(release.created + 1700, 0),
            "id": str(1_000_000 + seed % 1_000_000),
        }
        if seed % 4
        else None,
        "deployCount": 1 if seed % 4 else 0,
        "dateCreated": iso(release.created, 0),
        "lastEvent": iso(following),
        "version": release.version,
        "firstEvent": iso(release.created + 600),
        "lastCommit": {
            "repository": {
                "status": "active",
                "integrationId": "2933",
                "externalSlug": f"acme/{project.slug}",
                "name": f"acme/{project.slug}",
                "provider": {"id": "integrations:github", "name": "GitHub"},
                "url": f"https://github.com/acme/{project.slug}",
                "id": str(10 + project.index),
                "dateCreated": "2019-03-01T10:00:00.000000Z",
            },
            "releases": [
                {
                    "dateReleased": iso(release.created + 1800, 0),
                    "url": None,
                    "dateCreated": iso(release.created, 0),
                    "version": release.version,
                    "shortVersion": release.version,
                    "ref": "main",
                }
            ],
            "dateCreated": iso(release.created - 3600),
            "message": "fix(checkout): guard against empty carts",
            "id": sha,
        },
        "shortVersion": _short(release.version),
        "authors": [
            {
                "username": f"{author}-{seed % 97}",
                "name": author.title(),
                "email": f"{author}@acme.io",
                "id": str(600_000 + seed % 99_999),
                "isActive": True,
                "has2fa": True,
                "avatarUrl": f"https://secure.gravatar.com/avatar/{sha[:32]}?s=32&d=mm",
                "emails": [
                    {
                        "is_verified": True,
                        "id": str(700_000 + seed % 9_999),
                        "email": f"{author}@acme.io",
                    }
                ],
            }
        ],
        "owner": None,
        "ref": "main" if seed % 2 else None,
        "projects": [{"name": project.name, "slug": project.slug}],
    }


@dataclass(frozen=True)
class IssueCounts:
    """What an issue list row needs from the window (computed by the caller)."""

    count: int
    last_seen: int
    first_seen: int
    user_count: int


def issue_json(
    org: SimulatedOrg,
    issue: Issue,
    template: IssueTemplate,
    *,
    base_url: str,
    counts: IssueCounts,
    stats: dict[str, list[list[int]]],
    detail: bool = False,
) -> dict[str, Any]:
    """An issue as the issue list (``GroupSerializer`` + stream extras) or detail shows it."""
    lifetime_users = max(1, min(issue.times_seen, issue.times_seen // 3 + 1))
    status_details: dict[str, Any] = {}
    if issue.status == "ignored":
        status_details = {"ignoreUntilEscalating": True} if "escalating" in issue.substatus else {}
    elif issue.status == "resolved":
        status_details = {"inRelease": "latest"} if issue.seed % 2 else {}
    body: dict[str, Any] = {
        "id": str(issue.id),
        "shareId": None,
        "shortId": issue.short_id,
        "title": template.title,
        "culprit": template.culprit,
        "permalink": f"{base_url}organizations/{org.slug}/issues/{issue.id}/",
        "logger": template.logger,
        "level": template.level,
        "status": issue.status,
        "statusDetails": status_details,
        "substatus": None if issue.status == "resolved" else issue.substatus,
        "isPublic": False,
        "platform": issue.platform,
        "project": {
            "id": str(issue.project.id),
            "name": issue.project.name,
            "slug": issue.project.slug,
            "platform": issue.project.platform,
        },
        "type": template.event_type if template.event_type != "transaction" else "default",
        "metadata": template.metadata,
        "numComments": issue.seed % 4,
        "assignedTo": None,
        "isBookmarked": False,
        "isSubscribed": False,
        "subscriptionDetails": None,
        "hasSeen": bool(issue.seed % 2),
        "annotations": [],
        "issueType": template.issue_type,
        "issueCategory": template.issue_category,
        "priority": issue.priority,
        "priorityLockedAt": None,
        "isUnhandled": "handled\x1fno" in "\x1f".join(f"{k}\x1f{v}" for k, v in template.tags),
        "count": str(counts.count),
        "userCount": counts.user_count,
        "firstSeen": iso(counts.first_seen, 0) if counts.first_seen else None,
        "lastSeen": iso(counts.last_seen, 0) if counts.last_seen else None,
        "stats": stats,
        "lifetime": {
            "count": str(issue.times_seen),
            "userCount": lifetime_users,
            "firstSeen": iso(issue.first_seen, 0),
            "lastSeen": iso(issue.last_seen, 0),
        },
        "filtered": None,
    }
    if detail:
        release = None
        releases = org.releases.get(issue.project.index, [])
        if releases and template.has_release:
            first = max(
                (r for r in releases if r.created <= issue.first_seen),
                key=lambda r: r.created,
                default=None,
            )
            last = max(
                (r for r in releases if r.created <= issue.last_seen),
                key=lambda r: r.created,
                default=None,
            )
            release = first
            body["lastRelease"] = (
                {
                    "version": last.version,
                    "shortVersion": _short(last.version),
                    "dateCreated": iso(last.created, 0),
                    "dateReleased": None,
                    "ref": None,
                    "url": None,
                }
                if last
                else None
            )
        else:
            body["lastRelease"] = None
        body["firstRelease"] = (
            {
                "version": release.version,
                "shortVersion": _short(release.version),
                "dateCreated": iso(release.created, 0),
                "dateReleased": None,
                "ref": None,
                "url": None,
            }
            if release
            else None
        )
        body.update(
            {
                "activity": [
                    {
                        "id": "0",
                        "type": "first_seen",
                        "dateCreated": iso(issue.first_seen, 0),
                        "data": {},
                        "user": None,
                    }
                ],
                "seenBy": [],
                "userReportCount": 0,
                "participants": [],
                "tags": [
                    {"key": "environment", "name": "Environment", "totalValues": issue.times_seen},
                    {"key": "level", "name": "Level", "totalValues": issue.times_seen},
                ],
                "pluginActions": [],
                "pluginIssues": [],
                "pluginContexts": [],
            }
        )
    return body
