"""Per-issue event templates: what every event of one issue has in common.

Real issues group events by fingerprint, so their events share exception types, stack traces,
SDK and most contexts, and differ in time, user, request details and breadcrumbs. A template
holds the shared part *pre-serialized* (JSON text), which is what makes serving thousands of
full events a second from Python possible; :mod:`payloads` adds the per-event part.

Each platform has a few issue *kinds*, chosen by weight, covering every entry type and the odd
shapes Sentry really returns: chained exceptions (cause first), threads, old-style top-level
``stacktrace`` entries, ``rawStacktrace``, ``message`` and ``template`` entries, security
reports (csp, hpkp, expectct, expectstaple), ``spans`` (a list), ``debugmeta``, an unknown
entry type, a null exception stack trace and traces hundreds of frames deep.

Mostly a data table (the kinds' stack frames, contexts and payload shapes written out), so it
is allowed to stay long: splitting it by platform would scatter one catalogue without making
any part easier to read.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import vocab

JSONDict = dict[str, Any]


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def dumps(value: Any) -> str:
    """Compact JSON the way the simulator serves it (UTF-8, no ASCII escaping)."""
    return _ENCODER.encode(value)


@dataclass(frozen=True)
class IssueTemplate:
    """The shared shape of one issue's events (see module docstring)."""

    platform: str
    kind: str
    event_type: str
    title: str
    culprit: str
    location: str | None
    message: str
    metadata: JSONDict
    level: str
    logger: str | None
    issue_type: str = "error"
    issue_category: str = "error"
    lead_entries: tuple[str, ...] = ()
    tail_entries: tuple[str, ...] = ()
    crumbs: str | None = "server"
    request: str | None = "server"
    sdk: JSONDict = field(default_factory=dict)
    contexts: JSONDict = field(default_factory=dict)
    packages: JSONDict = field(default_factory=dict)
    fingerprint: str = ""
    errors: tuple[JSONDict, ...] = ()
    tags: tuple[tuple[str, str], ...] = ()
    extra: JSONDict | None = None
    dist: str | None = None
    has_release: bool = True
    occurrence: JSONDict | None = None


def _frame(**kw: Any) -> JSONDict:
    """A frame with every key Sentry's serializer emits, defaults null."""
    base: JSONDict = {
        "function": None,
        "errors": None,
        "colNo": None,
        "vars": None,
        "package": None,
        "absPath": None,
        "inApp": False,
        "lineNo": None,
        "module": None,
        "filename": None,
        "platform": None,
        "instructionAddr": None,
        "context": [],
        "symbolAddr": None,
        "trust": None,
        "symbol": None,
        "rawFunction": None,
    }
    base.update(kw)
    return base


def _stacktrace(
    frames: list[JSONDict], registers: JSONDict | None = None, omitted: list[int] | None = None
) -> JSONDict:
    return {
        "frames": frames,
        "framesOmitted": omitted,
        "registers": registers,
        "hasSystemFrames": any(not f.get("inApp") for f in frames),
    }


def _exc_value(
    type_: str,
    value: str | None,
    stacktrace: JSONDict | None,
    *,
    module: str | None = None,
    mechanism: JSONDict | None = None,
    raw: JSONDict | None = None,
    thread_id: int | None = None,
) -> JSONDict:
    return {
        "type": type_,
        "value": value,
        "mechanism": mechanism,
        "threadId": thread_id,
        "module": module,
        "stacktrace": stacktrace,
        "rawStacktrace": raw,
    }


def _exception_entry(values: list[JSONDict]) -> str:
    has_system = any(v["stacktrace"] and v["stacktrace"]["hasSystemFrames"] for v in values)
    return dumps(
        {
            "type": "exception",
            "data": {"values": values, "excOmitted": None, "hasSystemFrames": has_system},
        }
    )


def _code_context(rng: random.Random, line: int, style: str) -> list[list[Any]]:
    words = ("order", "customer", "amount", "result", "payload", "retry", "config", "cache", "item")
    out: list[list[Any]] = []
    for n in range(line - 2, line + 3):
        a, b = rng.choice(words), rng.choice(words)
        if style == "python":
            text = f"        {a} = self.{b}_{a}({b})" if n != line else f"        return {a}[{b!r}]"
        elif style == "java":
            text = (
                f"        {a}.set{b.title()}({b});"
                if n != line
                else f"        return {a}.get{b.title()}();"
            )
        elif style == "php":
            text = (
                f"        ${a} = $this->{b}(${b});" if n != line else f"        return ${a}['{b}'];"
            )
        else:
            text = (
                f"    const {a} = {b}.{a}({b});"
                if n != line
                else f"    return {a}.map((x) => x.{b});"
            )
        out.append([n, text])
    return out


# --- python ----------------------------------------------------------------------------------


def _py_frames(rng: random.Random, count: int) -> list[JSONDict]:
    """Python frames; in very deep traces only the last ten carry source context and vars."""
    frames = []
    for i in range(count):
        rich = i >= count - 10
        module = rng.choice(vocab.PY_MODULES)
        in_app = module.startswith("acme")
        line = rng.randint(12, 900)
        frames.append(
            _frame(
                function=rng.choice(vocab.PY_FUNCTIONS),
                module=module,
                filename=module.replace(".", "/") + ".py",
                absPath=f"/srv/app/{module.replace('.', '/')}.py"
                if in_app
                else f"/usr/local/lib/python3.12/site-packages/{module.replace('.', '/')}.py",
                lineNo=line,
                inApp=in_app,
                context=_code_context(rng, line, "python") if rich else [],
                vars={
                    "self": f"<{module}.Handler object at 0x7f{rng.randrange(16**10):010x}>",
                    "retries": rng.randint(0, 3),
                    "order_id": rng.randint(1000, 99999),
                }
                if rich and i % 2
                else None,
            )
        )
    return frames


def _python(rng: random.Random, kind: str) -> IssueTemplate:
    sdk = {
        "name": "sentry.python.django",
        "version": "2.5.1",
        "integrations": ["django", "celery", "redis", "logging"],
        "packages": [{"name": "pypi:sentry-sdk", "version": "2.5.1"}],
    }
    contexts: JSONDict = {
        "runtime": {
            "name": "CPython",
            "version": "3.12.3",
            "type": "runtime",
            "build": "3.12.3 (main, Apr  9 2024, 08:09:14) [GCC 12.2.0]",
        },
        "os": {"name": "Linux", "version": "6.5.0", "type": "os"},
    }
    packages = {"django": "5.0.6", "celery": "5.4.0", "psycopg2": "2.9.9", "requests": "2.32.2"}
    base_tags = (
        ("runtime", "CPython 3.12.3"),
        ("runtime.name", "CPython"),
        ("server_name", f"web-{rng.randint(1, 12):02d}.acme.internal"),
    )
    exc_type, exc_module, value = rng.choice(vocab.PY_EXCEPTIONS)
    if kind == "message":
        template = rng.choice(vocab.LOG_MESSAGES)
        param = str(rng.randint(100, 9999))
        formatted = template % param
        entry = dumps(
            {
                "type": "message",
                "data": {"formatted": formatted, "message": template, "params": [param]},
            }
        )
        return IssueTemplate(
            platform="python",
            kind=kind,
            event_type="default",
            title=formatted,
            culprit="acme.orders.tasks in process_order",
            location=None,
            message=formatted,
            metadata={"title": formatted},
            level=rng.choice(("warning", "info", "error")),
            logger="acme.orders",
            lead_entries=(entry,),
            sdk=sdk,
            contexts=contexts,
            packages=packages,
            tags=base_tags,
            request=None,
        )
    if kind == "legacy":
        # The raven-era shape of seed 002: a message entry plus a top-level stacktrace entry.
        frames = _py_frames(rng, rng.randint(3, 8))
        msg = "This is an example Python exception"
        entries = (
            dumps({"type": "message", "data": {"formatted": msg}}),
            dumps({"type": "stacktrace", "data": _stacktrace(frames)}),
        )
        culprit = f"{frames[-1]['module']} in {frames[-1]['function']}"
        return IssueTemplate(
            platform="python",
            kind=kind,
            event_type="default",
            title=msg,
            culprit=culprit,
            location=None,
            message=msg,
            metadata={"title": msg},
            level="error",
            logger=None,
            lead_entries=entries,
            sdk={"name": "raven-python", "version": "6.10.0"},
            contexts={
                "browser": {"name": "Chrome", "version": "28.0.1500", "type": "browser"},
                "client_os": {"name": "Windows", "version": "8", "type": "os"},
            },
            packages={"my.package": "1.0.0"},
            tags=(("server_name", "web01.example.org"),),
            extra={
                "emptyList": [],
                "emptyMap": {},
                "length": 10837790,
                "results": [1, 2, 3, 4, 5],
                "session": {"foo": "bar"},
                "unauthorized": False,
                "url": "http://example.org/foo/bar/",
            },
        )
    if kind == "performance":
        spans = []
        trace = f"{rng.getrandbits(128):032x}"
        parent = f"{rng.getrandbits(64):016x}"
        start = 1_700_000_000.0
        for i in range(rng.randint(6, 14)):
            spans.append(
                {
                    "span_id": f"{rng.getrandbits(64):016x}",
                    "parent_span_id": parent,
                    "trace_id": trace,
                    "op": "db",
                    "description": 'SELECT "orders_item".* FROM "orders_item" '
                    'WHERE "orders_item"."order_id" = %s',
                    "start_timestamp": start + i * 0.004,
                    "timestamp": start + i * 0.004 + 0.003,
                    "status": "ok",
                    "data": {"db.system": "postgresql"},
                    "tags": None,
                    "hash": f"{rng.getrandbits(64):016x}",
                    "same_process_as_parent": True,
                }
            )
        title = "N+1 Query"
        occurrence = {
            "id": f"{rng.getrandbits(128):032x}",
            "projectId": 0,
            "eventId": "",
            "fingerprint": [f"{rng.getrandbits(128):032x}"],
            "issueTitle": title,
            "subtitle": spans[0]["description"],
            "resourceId": None,
            "evidenceData": {"op": "db"},
            "evidenceDisplay": [
                {"name": "Offending Spans", "value": spans[0]["description"], "important": True}
            ],
            "type": 1006,
            "detectionTime": 1_700_000_000,
            "level": "info",
            "culprit": "/api/orders/",
            "priority": 50,
            "assignee": None,
        }
        return IssueTemplate(
            platform="python",
            kind=kind,
            event_type="transaction",
            title=title,
            culprit="/api/orders/",
            location=None,
            message="",
            metadata={"title": title, "value": spans[0]["description"], "location": "/api/orders/"},
            level="info",
            logger=None,
            issue_type="performance_n_plus_one_db_queries",
            issue_category="performance",
            lead_entries=(dumps({"type": "spans", "data": spans}),),
            sdk=sdk,
            contexts=contexts,
            packages=packages,
            tags=(*base_tags, ("transaction", "/api/orders/")),
            occurrence=occurrence,
        )
    depth = rng.randint(3, 12)
    if kind == "deep":
        depth = rng.randint(150, 260)  # recursion: hundreds of frames
        exc_type, exc_module, value = (
            "RecursionError",
            "builtins",
            "maximum recursion depth exceeded",
        )
    frames = _py_frames(rng, depth)
    mechanism = {"type": "django", "handled": False}
    values = []
    if kind == "chained":
        cause_frames = _py_frames(rng, rng.randint(2, 6))
        values.append(
            _exc_value(
                "OperationalError",
                "server closed the connection unexpectedly",
                _stacktrace(cause_frames),
                module="psycopg2",
                mechanism={
                    "type": "chained",
                    "handled": True,
                    "source": "__cause__",
                    "exception_id": 1,
                    "parent_id": 0,
                },
            )
        )
        values.append(
            _exc_value(
                exc_type,
                value,
                _stacktrace(frames),
                module=exc_module,
                mechanism={**mechanism, "exception_id": 0, "is_exception_group": False},
            )
        )
    else:
        values.append(
            _exc_value(exc_type, value, _stacktrace(frames), module=exc_module, mechanism=mechanism)
        )
    lead = [_exception_entry(values)]
    if kind == "template":
        lead.append(
            dumps(
                {
                    "type": "template",
                    "data": {
                        "lineNo": 14,
                        "filename": "orders/detail.html",
                        "context": [
                            [11, "{% endif %}\n"],
                            [12, '<ul class="items">\n'],
                            [13, "  {% for item in order.items %}\n"],
                            [14, "    <li>{{ item.product.name|title }}</li>\n"],
                            [15, "  {% endfor %}\n"],
                            [16, "</ul>\n"],
                        ],
                    },
                }
            )
        )
    tail: tuple[str, ...] = ()
    if kind == "unknown_entry":
        tail = (
            dumps(
                {
                    "type": "resources",
                    "data": {"ids": ["a1", "b2"], "note": "entry type from the future"},
                }
            ),
        )
    culprit = f"{frames[-1]['module']} in {frames[-1]['function']}"
    return IssueTemplate(
        platform="python",
        kind=kind,
        event_type="error",
        title=f"{exc_type}: {value}",
        culprit=culprit,
        location=frames[-1]["filename"],
        message="",
        metadata={
            "type": exc_type,
            "value": value,
            "filename": frames[-1]["filename"],
            "function": frames[-1]["function"],
            "in_app_frame_mix": "mixed",
        },
        level="error",
        logger=None,
        lead_entries=tuple(lead),
        tail_entries=tail,
        sdk=sdk,
        contexts=contexts,
        packages=packages,
        tags=(*base_tags, ("handled", "no"), ("mechanism", "django")),
        errors=(
            {
                "type": "too_large_for_cache",
                "message": "Discarded value",
                "data": {"name": "request.data"},
            },
        )
        if kind == "deep"
        else (),
    )


# --- javascript --------------------------------------------------------------------------------


def _js_frames(rng: random.Random, count: int) -> tuple[list[JSONDict], list[JSONDict]]:
    """Source-mapped frames and the minified frames they came from (rawStacktrace)."""
    mapped, raw = [], []
    bundle = f"https://static.acme.io/assets/app.{rng.getrandbits(32):08x}.js"
    for i in range(count):
        rich = i >= count - 10
        file = rng.choice(vocab.JS_FILES)
        func = rng.choice(vocab.JS_FUNCTIONS)
        line, col = rng.randint(5, 400), rng.randint(1, 80)
        in_app = not file.startswith("node_modules")
        mapped.append(
            _frame(
                function=func,
                filename=f"./{file}",
                absPath=f"webpack:///{file}",
                module=file.rsplit(".", 1)[0],
                lineNo=line,
                colNo=col,
                inApp=in_app,
                context=_code_context(rng, line, "js") if rich else [],
                data={
                    "sourcemap": bundle + ".map",
                    "resolved_with": "release-old",
                    "symbolicated": True,
                },
            )
        )
        mline, mcol = 1, rng.randint(1000, 900000)
        raw.append(
            _frame(
                function=func[:1],
                filename=bundle.split("acme.io")[1],
                absPath=bundle,
                lineNo=mline,
                colNo=mcol,
                inApp=False,
                context=[
                    [
                        1,
                        "{snip} ;return e.handleEvent?e.handleEvent.apply(this,s):e.apply(this,s)}"
                        "catch(e){throw c(),Object(o.m)( {snip}",
                    ]
                ]
                if rich
                else [],
            )
        )
    return mapped, raw


def _report(rng: random.Random, kind: str) -> tuple[str, str, str, JSONDict, JSONDict]:
    """A browser security report: (event type, title, culprit, metadata, entry data)."""
    host = rng.choice(("www.acme.io", "shop.acme.io", "checkout.acme.io"))
    when = "2024-05-01T10:00:00Z"
    chain = [
        "-----BEGIN CERTIFICATE-----\n"
        "MIIEBDCCAuygAwIBAgIDAjppMA0GCSqGSIb3DQEBBQUAMEIxCzAJBgNVBAYTAlVT\n"
        "-----END CERTIFICATE-----"
    ]
    if kind == "csp":
        blocked = rng.choice(("evil.example.com", "inline", "eval", "data"))
        data = {
            "document_uri": f"https://{host}/checkout",
            "referrer": "",
            "violated_directive": "script-src 'self'",
            "effective_directive": "script-src",
            "original_policy": "default-src 'self'; script-src 'self'; report-uri /api/csp/",
            "disposition": "enforce",
            "blocked_uri": blocked,
            "status_code": 200,
            "source_file": None,
            "line_number": None,
            "column_number": None,
            "script_sample": "",
        }
        title = f"Blocked 'script' from '{blocked}'"
        return (
            "csp",
            title,
            "script-src",
            {"directive": "script-src", "uri": blocked, "message": title},
            data,
        )
    if kind == "hpkp":
        data = {
            "date_time": when,
            "hostname": host,
            "port": 443,
            "effective_expiration_date": "2024-06-01T00:00:00Z",
            "include_subdomains": False,
            "noted_hostname": host,
            "served_certificate_chain": chain,
            "validated_certificate_chain": chain,
            "known_pins": ['pin-sha256="d6qzRu9zOECb90Uez27xWltNsj0e1Md7GkYYkVoZWmM="'],
        }
        title = f"Public key pinning validation failed for '{host}'"
        return "hpkp", title, host, {"origin": host, "message": title}, data
    if kind == "expectct":
        data = {
            "date_time": when,
            "hostname": host,
            "port": 443,
            "effective_expiration_date": "2024-06-01T00:00:00Z",
            "served_certificate_chain": chain,
            "validated_certificate_chain": chain,
            "scts": [
                {
                    "version": 1,
                    "status": "invalid",
                    "source": "embedded",
                    "serialized_sct": "ABCD==",
                }
            ],
            "failure_mode": "enforce",
            "test_report": False,
        }
        title = f"Expect-CT failed for '{host}'"
        return "expectct", title, host, {"origin": host, "message": title}, data
    data = {
        "date_time": when,
        "hostname": host,
        "port": 443,
        "effective_expiration_date": "2024-06-01T00:00:00Z",
        "response_status": "ERROR_RESPONSE",
        "cert_status": "REVOKED",
        "served_certificate_chain": chain,
        "validated_certificate_chain": chain,
        "ocsp_response": "MIIB5woBAKCCAeAwggHcBgkrBgEFBQcwAQEEggHNMIIByTCB",
    }
    title = f"Expect-Staple failed for '{host}'"
    return "expectstaple", title, host, {"origin": host, "message": title}, data


def _javascript(rng: random.Random, kind: str) -> IssueTemplate:
    browser, bversion = rng.choice(vocab.BROWSERS)
    sdk = {
        "name": "sentry.javascript.react",
        "version": "7.114.0",
        "integrations": [
            "InboundFilters",
            "FunctionToString",
            "TryCatch",
            "Breadcrumbs",
            "GlobalHandlers",
            "LinkedErrors",
            "Dedupe",
            "HttpContext",
            "BrowserTracing",
        ],
        "packages": [{"name": "npm:@sentry/react", "version": "7.114.0"}],
    }
    contexts: JSONDict = {"browser": {"name": browser, "version": bversion, "type": "browser"}}
    if kind in ("csp", "hpkp", "expectct", "expectstaple"):
        etype, title, culprit, metadata, data = _report(rng, kind)
        return IssueTemplate(
            platform="javascript",
            kind=kind,
            event_type=etype,
            title=title,
            culprit=culprit,
            location=None,
            message=title,
            metadata=metadata,
            level="error",
            logger="csp",
            lead_entries=(dumps({"type": kind, "data": data}),),
            crumbs=None,
            request="browser",
            sdk={"name": "sentry.interfaces.security", "version": "1"},
            contexts=contexts,
            tags=(("browser", f"{browser} {bversion}"), ("browser.name", browser)),
            has_release=False,
        )
    exc_type, value = rng.choice(vocab.JS_ERRORS)
    count = rng.randint(3, 9)
    if kind == "deep":
        exc_type, value = "RangeError", "Maximum call stack size exceeded"
        count = rng.randint(120, 200)
    mapped, raw = _js_frames(rng, count)
    handled = kind != "unhandled"
    mechanism = {
        "type": "onunhandledrejection" if not handled else "instrument",
        "handled": handled,
        "synthetic": None,
        "description": None,
        "help_link": None,
        "data": {"function": "addEventListener"},
        "meta": None,
    }
    stack: JSONDict | None = _stacktrace(mapped)
    raw_stack: JSONDict | None = _stacktrace(raw)
    if kind == "unhandled":
        stack, raw_stack = None, None  # promise rejections often carry no stack at all
    values = [_exc_value(exc_type, value, stack, mechanism=mechanism, raw=raw_stack)]
    if kind == "chained":
        cause_mapped, cause_raw = _js_frames(rng, rng.randint(3, 6))
        values.insert(
            0,
            _exc_value(
                "AxiosError",
                "Network Error",
                _stacktrace(cause_mapped),
                mechanism={
                    "type": "chained",
                    "handled": True,
                    "source": "cause",
                    "exception_id": 1,
                    "parent_id": 0,
                },
                raw=_stacktrace(cause_raw),
            ),
        )
    last = mapped[-1]
    culprit = f"{last['absPath']} in {last['function']}"
    errors: tuple[JSONDict, ...] = ()
    if rng.random() < 0.5:
        errors = (
            {
                "type": "js_invalid_sourcemap_location",
                "message": "Invalid location in sourcemap",
                "data": {
                    "column": 8,
                    "source": "https://static.acme.io/assets/app.js.map",
                    "row": 15,
                },
            },
        )
    return IssueTemplate(
        platform="javascript",
        kind=kind,
        event_type="error",
        title=f"{exc_type}: {value}",
        culprit=culprit,
        location=last["filename"],
        message="",
        metadata={
            "type": exc_type,
            "value": value,
            "filename": last["filename"],
            "function": last["function"],
        },
        level="error",
        logger=None,
        lead_entries=(_exception_entry(values),),
        crumbs="browser",
        request="browser",
        sdk=sdk,
        contexts=contexts,
        tags=(
            ("browser", f"{browser} {bversion}"),
            ("browser.name", browser),
            ("handled", "yes" if handled else "no"),
            ("mechanism", str(mechanism["type"])),
            ("transaction", "/checkout"),
        ),
        errors=errors,
    )


# --- java ----------------------------------------------------------------------------------------


def _java_frames(rng: random.Random, count: int, context: bool = True) -> list[JSONDict]:
    frames = []
    for _ in range(count):
        cls = rng.choice(vocab.JAVA_CLASSES)
        line = rng.randint(20, 700)
        frames.append(
            _frame(
                function=rng.choice(vocab.JAVA_METHODS),
                module=cls,
                filename=cls.rsplit(".", 1)[1] + ".java",
                lineNo=line,
                inApp=cls.startswith("com.acme"),
                context=_code_context(rng, line, "java")
                if context and cls.startswith("com.acme")
                else [],
            )
        )
    return frames


def _java(rng: random.Random, kind: str) -> IssueTemplate:
    exc_type, value = rng.choice(vocab.JAVA_EXCEPTIONS)
    frames = _java_frames(rng, rng.randint(5, 15))
    values = [
        _exc_value(
            "java.net.SocketTimeoutException",
            "Read timed out",
            _stacktrace(_java_frames(rng, rng.randint(3, 6), context=False)),
            module="java.net",
            mechanism={"type": "chained", "handled": True},
            thread_id=1,
        ),
        _exc_value(
            "org.hibernate.exception.JDBCConnectionException",
            "Unable to acquire JDBC Connection",
            _stacktrace(_java_frames(rng, rng.randint(3, 6), context=False)),
            module="org.hibernate.exception",
            mechanism={"type": "chained", "handled": True},
            thread_id=1,
        ),
        _exc_value(
            exc_type.rsplit(".", 1)[1],
            value,
            _stacktrace(frames),
            module=exc_type.rsplit(".", 1)[0],
            mechanism={"type": "UncaughtExceptionHandler", "handled": False},
            thread_id=1,
        ),
    ]
    if kind != "chained":
        values = values[-1:]
    threads = []
    for tid in range(1, rng.randint(3, 6)):
        threads.append(
            {
                "id": tid,
                "current": tid == 1,
                "crashed": tid == 1,
                "name": "main"
                if tid == 1
                else rng.choice(
                    ("http-nio-8080-exec-", "HikariPool-1 housekeeper ", "pool-2-thread-")
                )
                + str(tid),
                "state": rng.choice(("RUNNABLE", "WAITING", "TIMED_WAITING")),
                "stacktrace": None
                if tid == 1
                else _stacktrace(_java_frames(rng, rng.randint(2, 8), context=False)),
                "rawStacktrace": None,
                "heldLocks": None,
            }
        )
    last = frames[-1]
    short = exc_type.rsplit(".", 1)[1]
    return IssueTemplate(
        platform="java",
        kind=kind,
        event_type="error",
        title=f"{short}: {value}",
        culprit=f"{last['module']} in {last['function']}",
        location=last["filename"],
        message="",
        metadata={
            "type": short,
            "value": value,
            "filename": last["filename"],
            "function": last["function"],
        },
        level="fatal" if "OutOfMemory" in exc_type else "error",
        logger=None,
        lead_entries=(
            _exception_entry(values),
            dumps({"type": "threads", "data": {"values": threads}}),
        ),
        sdk={
            "name": "sentry.java.spring-boot.jakarta",
            "version": "7.9.0",
            "packages": [
                {"name": "maven:io.sentry:sentry-spring-boot-starter-jakarta", "version": "7.9.0"}
            ],
        },
        contexts={
            "runtime": {
                "name": "OpenJDK Runtime Environment",
                "version": "21.0.3",
                "type": "runtime",
            },
            "os": {"name": "Linux", "version": "5.15.0", "type": "os"},
        },
        tags=(
            ("runtime", "OpenJDK Runtime Environment 21.0.3"),
            ("server_name", f"payments-{rng.randint(1, 6)}"),
        ),
        dist=None,
    )


# --- cocoa / native -----------------------------------------------------------------------------


def _native_frames(
    rng: random.Random, count: int, symbols: tuple[str, ...], images: tuple[str, ...]
) -> list[JSONDict]:
    frames = []
    for _ in range(count):
        addr = rng.randrange(0x100000000, 0x200000000)
        sym = rng.choice(symbols)
        image = rng.choice(images)
        frame = _frame(
            function=sym,
            rawFunction=sym,
            symbol=f"_{sym.split('(')[0].replace(' ', '_')}",
            package=image,
            instructionAddr=f"0x{addr:x}",
            symbolAddr=f"0x{addr - rng.randint(4, 400):x}",
            inApp="AcmeShop" in image or "Game" in image,
            trust=rng.choice(("fp", "cfi", "scan", "context")),
            platform=None,
            context=[],
        )
        if rng.random() < 0.2:
            frame["addrMode"] = "rel:0"
        frames.append(frame)
    return frames


def _debugmeta(rng: random.Random, images: tuple[str, ...], kind: str) -> str:
    entries = []
    base = 0x100000000
    for image in images:
        size = rng.randint(0x10000, 0x2000000)
        entries.append(
            {
                "type": "macho" if kind == "cocoa" else "pe",
                "code_file": image,
                "debug_id": f"{rng.getrandbits(128):032x}"[:8]
                + "-"
                + f"{rng.getrandbits(64):016x}"[:4]
                + "-4e5b-9c1a-"
                + f"{rng.getrandbits(48):012x}",
                "image_addr": f"0x{base:x}",
                "image_size": size,
                "arch": "arm64" if kind == "cocoa" else "x86_64",
                "image_vmaddr": "0x0",
            }
        )
        base += size + 0x1000
    return dumps(
        {
            "type": "debugmeta",
            "data": {
                "images": entries,
                "sdk_info": {
                    "sdk_name": "iOS",
                    "version_major": 17,
                    "version_minor": 5,
                    "version_patchlevel": 0,
                }
                if kind == "cocoa"
                else None,
            },
        }
    )


def _cocoa_or_native(rng: random.Random, kind: str, platform: str) -> IssueTemplate:
    if platform == "cocoa":
        exc_type, value, mech = rng.choice(vocab.COCOA_SIGNALS)
        symbols, images = vocab.COCOA_SYMBOLS, vocab.COCOA_IMAGES
        sdk = {"name": "sentry.cocoa", "version": "8.26.0"}
        contexts: JSONDict = {
            "device": {
                "family": "iOS",
                "model": rng.choice(("iPhone15,2", "iPhone14,7", "iPad13,4")),
                "arch": "arm64e",
                "memory_size": 5_926_617_088,
                "free_memory": 104_808_448,
                "simulator": False,
                "type": "device",
            },
            "os": {
                "name": "iOS",
                "version": "17.5",
                "build": "21F79",
                "kernel_version": "Darwin Kernel Version 23.5.0",
                "type": "os",
            },
            "app": {
                "app_identifier": "io.acme.shop",
                "app_name": "AcmeShop",
                "app_version": "5.2.1",
                "app_build": "512",
                "type": "app",
            },
        }
        mechanism = {
            "type": mech,
            "handled": False,
            "synthetic": None,
            "meta": {
                "signal": {"number": 6, "code": 0, "name": "SIGABRT", "code_name": None},
                "mach_exception": {
                    "exception": 1,
                    "code": 1,
                    "subcode": 8,
                    "name": "EXC_BAD_ACCESS",
                },
            },
        }
    else:
        exc_type, value = rng.choice(vocab.NATIVE_CRASHES)
        symbols, images = (
            vocab.NATIVE_SYMBOLS,
            (
                "C:\\Program Files\\AcmeGame\\AcmeGame.exe",
                "C:\\Windows\\System32\\ntdll.dll",
                "C:\\Windows\\System32\\kernel32.dll",
                "C:\\Windows\\System32\\ucrtbase.dll",
            ),
        )
        sdk = {"name": "sentry.native", "version": "0.7.4"}
        contexts = {
            "device": {"arch": "x86_64", "type": "device"},
            "os": {"name": "Windows", "version": "10.0.22631", "build": "3593", "type": "os"},
            "gpu": {"name": "NVIDIA GeForce RTX 3070", "vendor_name": "NVIDIA", "type": "gpu"},
        }
        mechanism = {"type": "minidump", "handled": False, "synthetic": True}
    crashed_frames = _native_frames(rng, rng.randint(8, 40), symbols, images)
    registers = {
        r: f"0x{rng.getrandbits(64):016x}"
        for r in (
            ("x0", "x1", "x2", "x3", "fp", "lr", "sp", "pc")
            if platform == "cocoa"
            else ("rax", "rbx", "rcx", "rdx", "rsp", "rbp", "rip")
        )
    }
    threads = []
    for tid in range(rng.randint(3, 14)):
        crashed = tid == 0
        threads.append(
            {
                "id": tid,
                "current": crashed,
                "crashed": crashed,
                "name": "com.apple.main-thread"
                if tid == 0 and platform == "cocoa"
                else (None if tid % 3 else f"worker-{tid}"),
                "stacktrace": _stacktrace(crashed_frames, registers)
                if crashed
                else _stacktrace(_native_frames(rng, rng.randint(2, 12), symbols, images)),
                "rawStacktrace": None,
            }
        )
    values = [_exc_value(exc_type, value, None, mechanism=mechanism, thread_id=0)]
    in_app = [f for f in crashed_frames if f["inApp"]] or crashed_frames
    return IssueTemplate(
        platform=platform,
        kind=kind,
        event_type="error",
        title=f"{exc_type}: {value}",
        culprit=in_app[-1]["function"],
        location=None,
        message="",
        metadata={"type": exc_type, "value": value, "function": in_app[-1]["function"]},
        level="fatal",
        logger=None,
        lead_entries=(
            _exception_entry(values),
            dumps({"type": "threads", "data": {"values": threads}}),
        ),
        tail_entries=(_debugmeta(rng, images, platform),),
        crumbs="mobile" if platform == "cocoa" else None,
        request=None,
        sdk=sdk,
        contexts=contexts,
        tags=(
            ("device", str(contexts["device"].get("model", "x86_64"))),
            ("os.name", contexts["os"]["name"]),
        ),
        dist="512" if platform == "cocoa" else None,
    )


# --- php / node / ruby ---------------------------------------------------------------------------


def _scripting(rng: random.Random, kind: str, platform: str) -> IssueTemplate:
    if platform == "php":
        exc_type, value = rng.choice(vocab.PHP_EXCEPTIONS)
        sdk = {"name": "sentry.php.laravel", "version": "4.5.1"}
        contexts: JSONDict = {"runtime": {"name": "php", "version": "8.2.19", "type": "runtime"}}
    elif platform == "node":
        exc_type, value = rng.choice(vocab.NODE_ERRORS)
        sdk = {"name": "sentry.javascript.node", "version": "8.7.0"}
        contexts = {
            "runtime": {"name": "node", "version": "v20.13.1", "type": "runtime"},
            "app": {
                "app_start_time": "2024-05-30T08:00:00.000Z",
                "app_memory": 134217728,
                "type": "app",
            },
        }
    else:
        exc_type, value = rng.choice(vocab.RUBY_ERRORS)
        sdk = {"name": "sentry.ruby.rails", "version": "5.17.3"}
        contexts = {
            "runtime": {
                "name": "ruby",
                "version": "ruby 3.3.1 (2024-04-23 revision c56cd86388) [x86_64-linux]",
                "type": "runtime",
            }
        }
    if kind == "message":
        msg = rng.choice(vocab.LOG_MESSAGES) % rng.randint(1, 999)
        return IssueTemplate(
            platform=platform,
            kind=kind,
            event_type="default",
            title=msg,
            culprit="",
            location=None,
            message=msg,
            metadata={"title": msg},
            level="warning",
            logger=None,
            lead_entries=(
                dumps(
                    {"type": "message", "data": {"formatted": msg, "message": None, "params": None}}
                ),
            ),
            sdk=sdk,
            contexts=contexts,
        )
    frames = []
    for _ in range(rng.randint(6, 25)):
        line = rng.randint(10, 600)
        if platform == "php":
            path = rng.choice(vocab.PHP_FILES)
            frames.append(
                _frame(
                    function=rng.choice(
                        ("handle", "add", "run", "select", "Illuminate\\Pipeline\\Pipeline::then")
                    ),
                    filename=path.replace("/var/www/html/", ""),
                    absPath=path,
                    lineNo=line,
                    inApp="/vendor/" not in path,
                    context=_code_context(rng, line, "php"),
                )
            )
        else:
            name = rng.choice(
                (
                    "app/jobs/invoice_job",
                    "app/models/invoice",
                    "lib/stripe_client",
                    "node_modules/ioredis/built/redis/event_handler",
                    "src/handlers/price",
                )
            )
            frames.append(
                _frame(
                    function=rng.choice(
                        ("perform", "charge!", "fetchPrice", "onError", "processTicksAndRejections")
                    ),
                    filename=name + (".rb" if platform == "ruby" else ".js"),
                    module=name.replace("/", "."),
                    absPath=f"/app/{name}",
                    lineNo=line,
                    colNo=None if platform == "ruby" else rng.randint(1, 60),
                    inApp="node_modules" not in name,
                    context=_code_context(rng, line, "js"),
                )
            )
    values = [
        _exc_value(
            exc_type, value, _stacktrace(frames), mechanism={"type": "generic", "handled": True}
        )
    ]
    if kind == "chained":
        values.insert(
            0,
            _exc_value(
                "Error",
                "socket hang up",
                _stacktrace(frames[: max(1, len(frames) // 2)]),
                mechanism={"type": "chained", "handled": True, "source": "cause"},
            ),
        )
    last = frames[-1]
    return IssueTemplate(
        platform=platform,
        kind=kind,
        event_type="error",
        title=f"{exc_type}: {value}",
        culprit=f"{last['filename']} in {last['function']}",
        location=last["filename"],
        message="",
        metadata={"type": exc_type, "value": value, "filename": last["filename"]},
        level="error",
        logger=None,
        lead_entries=(_exception_entry(values),),
        sdk=sdk,
        contexts=contexts,
        tags=(("handled", "yes"), ("mechanism", "generic")),
    )


KINDS: dict[str, tuple[tuple[str, int], ...]] = {
    # platform -> (kind, weight); odd kinds are rare on purpose
    "python": (
        ("plain", 50),
        ("chained", 20),
        ("message", 10),
        ("template", 4),
        ("legacy", 4),
        ("deep", 3),
        ("performance", 4),
        ("unknown_entry", 3),
    ),
    "javascript": (
        ("plain", 55),
        ("chained", 12),
        ("unhandled", 8),
        ("deep", 3),
        ("csp", 9),
        ("hpkp", 3),
        ("expectct", 3),
        ("expectstaple", 3),
    ),
    "java": (("plain", 60), ("chained", 40)),
    "cocoa": (("crash", 100),),
    "native": (("crash", 100),),
    "php": (("plain", 70), ("message", 30)),
    "node": (("plain", 70), ("chained", 30)),
    "ruby": (("plain", 80), ("message", 20)),
}


def choose_kind(rng: random.Random, platform: str) -> str:
    kinds = KINDS[platform]
    return rng.choices([k for k, _ in kinds], weights=[w for _, w in kinds])[0]


_BUILDERS: dict[str, Callable[[random.Random, str], IssueTemplate]] = {
    "python": _python,
    "javascript": _javascript,
    "java": _java,
    "cocoa": lambda rng, kind: _cocoa_or_native(rng, kind, "cocoa"),
    "native": lambda rng, kind: _cocoa_or_native(rng, kind, "native"),
    "php": lambda rng, kind: _scripting(rng, kind, "php"),
    "node": lambda rng, kind: _scripting(rng, kind, "node"),
    "ruby": lambda rng, kind: _scripting(rng, kind, "ruby"),
}


def build_template(seed: int, platform: str, kind: str) -> IssueTemplate:
    """The template of an issue, fully determined by its seed, platform and kind."""
    rng = random.Random(seed)
    template = _BUILDERS[platform](rng, kind)
    fingerprint = f"{random.Random(seed ^ 0x5EED).getrandbits(128):032x}"
    return IssueTemplate(**{**template.__dict__, "fingerprint": fingerprint})
