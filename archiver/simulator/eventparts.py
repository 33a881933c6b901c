"""The parts of a generated event that differ from one event of an issue to the next.

An event ID's bits decide them all (no RNG, nothing stored): the user, the browser, the
breadcrumbs, the request, the odd shapes real payloads have (``ODDITIES``), the tags, the
dates and a transaction's timings. :mod:`.payloads` joins them with the issue's template.
"""

from __future__ import annotations

import json
from typing import Any

from . import vocab
from .jsontext import iso
from .model import EventRef
from .templates import IssueTemplate, dumps

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


_CRUMBS: dict[str, tuple[tuple[str, str, str | None, Any, str | None], ...]] = {
    # style -> (type, category, level, data, message)
    "server": (
        (
            "default",
            "query",
            "info",
            None,
            'SELECT "orders_order"."id" FROM "orders_order" '
            'WHERE "orders_order"."customer_id" = %s',
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


def user(bits: int, odd: str | None) -> dict[str, Any] | None:
    """The event's user (about one event in eleven has none), from its ID's bits."""
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


def breadcrumbs(style: str, ts: int, micros: int, bits: int, odd: str | None) -> str:
    """The breadcrumbs entry: 3 to 12 crumbs of the style's pool, in the seconds before ``ts``."""
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


def request_entry(style: str, bits: int, odd: str | None, user_agent: str) -> tuple[str, str]:
    """(the request entry, its URL): path, query, body and method vary with the bits."""
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


def span_times(ref: EventRef, bits: int) -> tuple[float, float]:
    """(start, end) of a transaction in epoch seconds: it ends within its event's second."""
    end = ref.timestamp + ref.micros / 1e6
    return round(end - (50 + (bits >> 40) % 2_950) / 1000, 6), round(end, 6)


def spans_entry(lead: str, ref: EventRef, bits: int) -> str:
    """The template's spans entry moved into this transaction's time."""
    entry = json.loads(lead)
    spans = entry["data"]
    if spans:
        start, end = span_times(ref, bits)
        first = min(float(span["start_timestamp"]) for span in spans)
        last = max(float(span["timestamp"]) for span in spans)
        scale = (end - start) / max(last - first, 1e-6) * 0.9
        for span in spans:
            span["start_timestamp"] = round(start + (span["start_timestamp"] - first) * scale, 6)
            span["timestamp"] = round(start + (span["timestamp"] - first) * scale, 6)
            span["trace_id"] = ref.event_id[::-1]
    return dumps(entry)


def transaction_attrs(ref: EventRef, bits: int) -> list[tuple[str, str]]:
    """``EventSerializer``'s transaction fields: start and end, measurements, breakdowns."""
    start, end = span_times(ref, bits)
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


def oddity(bits: int, odd_rate: float) -> str | None:
    """The event's odd shape, if it has one (``odd_rate`` of events, chosen by their bits)."""
    if (bits >> 100) % 10_000 < odd_rate * 10_000:
        return ODDITIES[(bits >> 84) % len(ODDITIES)]
    return None


def client(bits: int) -> tuple[str, str]:
    """(OS name, User-Agent) of the browser or app that sent the event."""
    browser, bversion = vocab.BROWSERS[(bits >> 50) % len(vocab.BROWSERS)]
    os_name, os_version = vocab.OSES[(bits >> 54) % len(vocab.OSES)]
    user_agent = (
        f"Mozilla/5.0 ({os_name} {os_version}) AppleWebKit/537.36 (KHTML, like Gecko) "
        f"{browser}/{bversion}"
    )
    return os_name, user_agent


def odd_message(
    template: IssueTemplate, message: str, bits: int, odd: str | None
) -> tuple[str, list[tuple[str, str]]]:
    """The event's message (a JSON fragment; ``message`` unless odd) and the tags it adds."""
    text = template.message or template.title
    snippets = vocab.UNICODE_SNIPPETS
    if odd == "unicode":
        locale = snippets[(bits >> 8) % len(snippets)]
        return dumps(f"{text} — {snippets[bits % len(snippets)]}"), [("checkout.locale", locale)]
    if odd == "nul":
        return dumps(f"{text}\u0000(truncated)"), [("query.raw", "a\u0000b")]
    if odd == "long":
        return dumps(text + " " + "lorem ipsum " * 1_000), []
    return message, []


def event_tags(
    template: IssueTemplate,
    environment: str,
    release: str | None,
    user: dict[str, Any] | None,
    url: str | None,
    os_name: str,
) -> list[tuple[str, str]]:
    """The event's ``(key, value)`` tags: the template's, then what this event adds."""
    tags = [*template.tags, ("environment", environment), ("level", template.level)]
    if release is not None:
        tags.append(("release", release))
    if user is not None:
        tags.append(("user", f"id:{user['id']}"))
    if url is not None:
        tags.append(("url", url))
    if template.platform == "javascript":
        tags.append(("os.name", os_name))
    return tags


def tag_objects(tags: list[tuple[str, str]], odd: str | None) -> list[dict[str, Any]]:
    """Sentry's tag list: sorted, ``user`` tags with their search query, odd ``_meta``."""
    out: list[dict[str, Any]] = []
    for key, value in sorted(tags):
        obj: dict[str, Any] = {"key": key, "value": value}
        if key == "user" and ":" in value:
            sub, _, rest = value.partition(":")
            obj["query"] = f'user.{sub}:"{rest}"'
        if odd == "tags_meta" and key == "url":
            obj["_meta"] = {"value": {"": {"rem": [["@password", "s", 0, 10]], "len": 42}}}
        elif odd == "tags_meta":
            obj["_meta"] = None
        out.append(obj)
    return out


def trace_context(event_id: str) -> str:
    """The ``trace`` context as the last member of the contexts object (which it closes)."""
    return (
        f'"trace":{{"trace_id":"{event_id[::-1]}","span_id":"{event_id[4:20]}",'
        '"op":"http.server","status":"internal_error","type":"trace"}}'
    )


META_SCRUB = dumps(
    {
        "user": {"ip_address": {"": {"rem": [["@ip:replace", "s", 0, 10]], "len": 13}}},
        "context": None,
        "entries": {"1": {"data": {"headers": {"0": {"1": {"": {"rem": [["@password", "s"]]}}}}}}},
        "contexts": None,
        "message": None,
        "packages": None,
        "tags": {},
        "sdk": None,
    }
)
"""``_meta`` of an event whose IP address and a header value were scrubbed."""


def meta(odd: str | None) -> str:
    """The event's ``_meta`` fragment."""
    return META_SCRUB if odd == "meta_scrub" else EMPTY_META


def event_ident(event_id: str, bits: int, odd: str | None) -> str:
    """The ``id`` fragment: the event ID, or a legacy numeric id (as a string or a number)."""
    if odd == "legacy_id":
        return dumps(str(bits % 10**9))
    if odd == "legacy_int_id":
        return str(bits % 10**9)
    return dumps(event_id)


def event_dates(ref: EventRef, bits: int, platform: str) -> tuple[str, str]:
    """(dateCreated, dateReceived): microseconds where the SDK sends them, received later."""
    micros = ref.micros
    created = iso(ref.timestamp, micros if platform in ("javascript", "cocoa", "node") else None)
    received_ms = (bits >> 60) % 3_000
    received = iso(
        ref.timestamp + (micros // 1000 + received_ms) // 1000,
        ((micros // 1000 + received_ms) % 1000) * 1000,
    )
    return created, received


UNKNOWN_ENTRY = dumps({"type": "threadpool_info", "data": {"pending": 3, "workers": [1, 2]}})
"""An entry type clients do not know (the ``unknown_entry`` odd shape)."""
