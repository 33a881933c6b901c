"""Pure functions from Sentry API payloads to table rows (no I/O, no ORM).

``normalize_event`` turns one event payload (list item, detail or event-ID lookup ``event``)
into the row of ``events`` and the rows of its child tables. It never raises on a malformed
payload: whatever it cannot read cleanly is left out or coerced, and recorded as an
``event_problems`` row, while the raw JSON keeps everything.

Text that databases cannot hold is made storable here, the same way on every backend:

* U+0000 (PostgreSQL text cannot hold it) becomes U+2400 SYMBOL FOR NULL in normalized values,
  with a ``nul_replaced`` problem naming the field. ``raw_json`` is written by ``json.dumps``,
  which escapes it as ``\\u0000``: valid JSON text on both databases, so ``json.loads`` of the
  raw JSON gives the exact original back.
* Lone surrogates (invalid UTF-8) become U+FFFD with an ``invalid_unicode`` problem; the raw
  JSON then falls back to ASCII escapes so it still round-trips.
* Values of indexed columns are cut to 1,000 characters (PostgreSQL index rows are limited to
  about 2,700 bytes) with a ``truncated`` problem; other text keeps its full length.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from archiver.storage.models import EVENT_CHILD_TABLES

INDEXED_MAX = 1000
NUL_SUBSTITUTE = "\u2400"
_BAD_TEXT = re.compile("[\x00\ud800-\udfff]")
# Substrings of dumped JSON text (dump_raw) that may stand for a NUL, a surrogate or a
# non-finite number; plain ``in`` tests are far cheaper than one regex over the whole text.
_RAW_SUSPECTS = ("\\u0000", "\\ud", "\\uD", "NaN", "Infinity")
_HEX32 = re.compile(r"^[0-9a-f]{32}$")
_ISO = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?)?"
    r"\s*(Z|z|[+-]\d{2}:?\d{2})?$"
)
# Entry types whose data goes to tables of their own; the rest keep data in event_entries.
TABLED_ENTRIES = frozenset({"exception", "threads", "stacktrace", "breadcrumbs", "request"})
CHILD_NAMES = tuple(t.name for t in EVENT_CHILD_TABLES)


@dataclass(frozen=True)
class NormalizedEvent:
    """An event's ``events`` row and its child rows (without ``event_pk``)."""

    project_id: int
    event_id: str
    issue_id: int | None
    event: dict[str, Any]
    children: dict[str, list[dict[str, Any]]]
    release_version: str | None
    release: dict[str, Any] | None = None


def dump_raw(payload: Any) -> str:
    """The raw JSON text: the same value, key order kept."""
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=True)
    try:
        text.encode("utf-8")  # fails only on a lone surrogate (json escapes every NUL)
    except UnicodeEncodeError:
        text = json.dumps(payload, ensure_ascii=True, separators=(",", ":"), allow_nan=True)
    return text


class _Problems:
    """Collects what could not be normalized cleanly (at most one row per path and kind)."""

    def __init__(self, raw: str | None = None) -> None:
        self.rows: list[dict[str, Any]] = []
        self._seen: set[tuple[str, str]] = set()
        # Most payloads hold no NUL, no lone surrogate and no non-finite number anywhere: one
        # look at the raw JSON text proves it, and then no string or JSON value needs a copy.
        self.pristine = raw is not None and not any(s in raw for s in _RAW_SUSPECTS)

    def add(self, path: str, problem: str, detail: str | None = None) -> None:
        if (path, problem) in self._seen:
            return
        self._seen.add((path, problem))
        self.rows.append(
            {
                "position": len(self.rows),
                "path": _clean_plain(path)[:INDEXED_MAX],
                "problem": problem,
                "detail": None if detail is None else _clean_plain(detail)[:INDEXED_MAX],
            }
        )

    # ---------------------------------------------------------------- coercions

    def text(self, value: Any, path: str, *, indexed: bool = False) -> str | None:
        if value is None:
            return None
        if isinstance(value, str):
            out = value
        elif isinstance(value, bool):
            out = "true" if value else "false"
        elif isinstance(value, (int, float)):
            out = str(value)
        else:
            self.add(path, "malformed", f"expected text, got {type(value).__name__}")
            out = json.dumps(value, ensure_ascii=False, default=str)
        out = self.clean(out, path)
        if indexed and len(out) > INDEXED_MAX:
            self.add(path, "truncated", f"{len(out)} characters cut to {INDEXED_MAX}")
            out = out[:INDEXED_MAX]
        return out

    def clean(self, value: str, path: str) -> str:
        if self.pristine or not _BAD_TEXT.search(value):
            return value
        if "\x00" in value:
            self.add(path, "nul_replaced", "U+0000 stored as U+2400; raw_json has the original")
            value = value.replace("\x00", NUL_SUBSTITUTE)
        if re.search("[\ud800-\udfff]", value):
            self.add(path, "invalid_unicode", "lone surrogate replaced by U+FFFD")
            value = re.sub("[\ud800-\udfff]", "\ufffd", value)
        return value

    def json(self, value: Any, path: str) -> Any:
        """A JSON value made storable (NUL, surrogates; non-finite floats become text)."""
        if self.pristine:
            return value
        if isinstance(value, str):
            return self.clean(value, path)
        if isinstance(value, dict):
            return {self.clean(str(k), path): self.json(v, f"{path}.{k}") for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.json(v, f"{path}[{i}]") for i, v in enumerate(value)]
        if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
            self.add(path, "malformed", "non-finite number stored as text")
            return str(value)
        return value

    def int_(self, value: Any, path: str) -> int | None:
        if value is None or value == "":
            return None
        if isinstance(value, bool):
            self.add(path, "malformed", "expected a number, got a boolean")
            return None
        if isinstance(value, int):
            return value if -(2**63) <= value < 2**63 else self._bad_int(path, value)
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                try:
                    number = float(value)
                    if number.is_integer():
                        return int(number)
                except ValueError:
                    pass
        self.add(path, "malformed", f"expected an integer, got {_short(value)}")
        return None

    def _bad_int(self, path: str, value: int) -> int | None:
        self.add(path, "malformed", f"integer out of range: {_short(value)}")
        return None

    def bool_(self, value: Any, path: str) -> bool | None:
        if value is None or isinstance(value, bool):
            return value
        if isinstance(value, (int, float)) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in (
            "true",
            "false",
            "1",
            "0",
            "yes",
            "no",
        ):
            return value.strip().lower() in ("true", "1", "yes")
        self.add(path, "malformed", f"expected a boolean, got {_short(value)}")
        return None

    def datetime(self, value: Any, path: str) -> dt.datetime | None:
        if value is None or value == "":
            return None
        parsed = parse_timestamp(value)
        if parsed is None:
            self.add(path, "malformed", f"not a timestamp: {_short(value)}")
        return parsed

    def list_(self, value: Any, path: str) -> list[Any]:
        if value is None:
            return []
        if isinstance(value, list):
            return value
        self.add(path, "malformed", f"expected a list, got {type(value).__name__}")
        return []

    def dict_(self, value: Any, path: str) -> dict[str, Any]:
        if value is None:
            return {}
        if isinstance(value, dict):
            return value
        self.add(path, "malformed", f"expected an object, got {type(value).__name__}")
        return {}


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _clean_plain(text: str) -> str:
    return re.sub("[\ud800-\udfff]", "\ufffd", text.replace("\x00", NUL_SUBSTITUTE))


def parse_timestamp(value: Any) -> dt.datetime | None:
    """ISO 8601 text (any fraction length, Z or offset) or epoch seconds, as aware UTC."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        seconds = float(value)
        if seconds != seconds or abs(seconds) > 1e13:
            return None
        if abs(seconds) > 1e11:  # milliseconds
            seconds /= 1000.0
        try:
            return dt.datetime.fromtimestamp(seconds, dt.timezone.utc)
        except (OverflowError, OSError, ValueError):
            return None
    if not isinstance(value, str):
        return None
    text = value.strip()
    m = _ISO.match(text)
    if not m:
        try:
            return parse_timestamp(float(text)) if text else None
        except ValueError:
            return None
    year, month, day, hour, minute, second, fraction, zone = m.groups()
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    try:
        tz = dt.timezone.utc
        if zone and zone not in ("Z", "z"):
            sign = 1 if zone[0] == "+" else -1
            digits = zone[1:].replace(":", "")
            tz = dt.timezone(sign * dt.timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))
        return dt.datetime(
            int(year),
            int(month),
            int(day),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            micro,
            tzinfo=tz,
        ).astimezone(dt.timezone.utc)
    except (ValueError, OverflowError):
        return None


def normalize_event_id(value: Any) -> str | None:
    """32 lowercase hex characters (UUIDs with dashes accepted), else None."""
    if not isinstance(value, str):
        return None
    text = value.strip().lower().replace("-", "")
    return text if _HEX32.match(text) else None


# --------------------------------------------------------------------------- events


def normalize_event(
    payload: Any,
    *,
    project_id: int | None = None,
    issue_id: int | None = None,
    has_detail: bool = False,
    raw: str | None = None,
) -> NormalizedEvent:
    """One API event payload to rows. Raises ValueError only when no project id is known.

    ``raw`` is the payload's JSON text as the server sent it, when the caller has it (a slice
    of a list page): stored as is, it is the most faithful copy and saves re-encoding the
    payload. Without it the payload is dumped (:func:`dump_raw`).
    """
    if raw is None:
        raw = dump_raw(payload)
    p = _Problems(raw)
    ev: dict[str, Any] = payload if isinstance(payload, dict) else {}
    if not isinstance(payload, dict):
        p.add("$", "malformed", f"the event is a {type(payload).__name__}, not an object")

    pid = p.int_(ev.get("projectID"), "projectID") if ev.get("projectID") is not None else None
    if pid is None:
        pid = project_id
    if pid is None:
        raise ValueError("the event names no project and none was given")
    gid = p.int_(ev.get("groupID"), "groupID") if ev.get("groupID") is not None else None
    if gid is None:
        gid = issue_id

    event_id = normalize_event_id(ev.get("eventID")) or normalize_event_id(ev.get("id"))
    if event_id is None:
        event_id = hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()[:32]
        p.add("eventID", "missing_event_id", "no 32-hex event id; a hash of the raw JSON is used")
    legacy = ev.get("id")
    legacy_id = None
    if legacy is not None and normalize_event_id(legacy) != event_id:
        legacy_id = p.text(legacy, "id")

    children: dict[str, list[dict[str, Any]]] = {name: [] for name in CHILD_NAMES}
    tags = _tags(ev.get("tags"), p)
    children["event_tags"] = tags
    tag: dict[str | None, str | None] = {}
    for row in tags:
        tag.setdefault(row["key"], row["value"])

    message_entry: str | None = None
    for i, entry in enumerate(p.list_(ev.get("entries"), "entries")):
        msg = _entry(entry, i, children, p)
        if msg is not None and message_entry is None:
            message_entry = msg

    user = p.dict_(ev.get("user"), "user")
    sdk = p.dict_(ev.get("sdk"), "sdk")
    release_obj = ev.get("release")
    release_row = normalize_release(release_obj) if isinstance(release_obj, dict) else None
    release_version = tag.get("release")
    if release_version is None:
        if release_row is not None:
            release_version = release_row["version"]
        elif isinstance(release_obj, str):
            release_version = release_obj
    contexts = p.dict_(ev.get("contexts"), "contexts")
    children["contexts"] = _contexts(contexts, p)
    children["event_errors"] = [
        {
            "position": i,
            "type": p.text(e.get("type"), f"errors[{i}].type"),
            "message": p.text(e.get("message"), f"errors[{i}].message"),
            "data": p.json(e.get("data"), f"errors[{i}].data"),
        }
        if isinstance(e, dict)
        else {"position": i, "type": None, "message": p.text(e, f"errors[{i}]"), "data": None}
        for i, e in enumerate(p.list_(ev.get("errors"), "errors"))
    ]

    message = ev.get("message")
    if not message and message_entry:
        message = message_entry
    event_row: dict[str, Any] = {
        "project_id": pid,
        "event_id": event_id,
        "issue_id": gid,
        "legacy_id": legacy_id,
        "title": p.text(ev.get("title"), "title"),
        "message": p.text(message, "message"),
        "platform": p.text(ev.get("platform"), "platform"),
        "type": p.text(ev.get("type", ev.get("event.type")), "type"),
        "level": p.text(ev.get("level") or tag.get("level"), "level"),
        "logger": p.text(ev.get("logger") or tag.get("logger"), "logger"),
        "culprit": p.text(ev.get("culprit"), "culprit"),
        "location": p.text(ev.get("location"), "location"),
        "transaction_name": p.text(tag.get("transaction") or ev.get("transaction"), "transaction"),
        "environment": p.text(
            tag.get("environment") or ev.get("environment"), "environment", indexed=True
        ),
        "release": p.text(release_version, "release", indexed=True),
        "dist": p.text(ev.get("dist") if not isinstance(ev.get("dist"), dict) else None, "dist"),
        "date_created": _event_date(ev, p),
        "date_received": p.datetime(ev.get("dateReceived"), "dateReceived"),
        "sdk_name": p.text(sdk.get("name"), "sdk.name"),
        "sdk_version": p.text(sdk.get("version"), "sdk.version"),
        "user_id": p.text(user.get("id"), "user.id"),
        "user_email": p.text(user.get("email"), "user.email"),
        "user_username": p.text(user.get("username"), "user.username"),
        "user_ip_address": p.text(user.get("ip_address"), "user.ip_address"),
        "user_name": p.text(user.get("name"), "user.name"),
        "user_geo": p.json(user.get("geo"), "user.geo"),
        "user_data": p.json(user.get("data"), "user.data"),
        "size": p.int_(ev.get("size"), "size"),
        "fingerprints": p.json(ev.get("fingerprints"), "fingerprints"),
        "contexts": p.json(ev.get("contexts"), "contexts"),
        "metadata": p.json(ev.get("metadata"), "metadata"),
        "extra": p.json(ev.get("context"), "context"),
        "has_detail": bool(has_detail),
        "is_full": isinstance(ev.get("entries"), list) and not is_hollow(ev),
        "problem_count": 0,
        "scrubbed": None,
        "raw_json": raw,
    }
    children["event_problems"] = p.rows
    event_row["problem_count"] = len(p.rows)
    event_row.update(event_facts(event_row, children))
    return NormalizedEvent(
        pid, event_id, gid, event_row, children, event_row["release"], release_row
    )


def event_second(ev: Mapping[str, Any]) -> dt.datetime | None:
    """When an event happened: ``dateCreated``, else ``endTimestamp``, else ``dateReceived``.

    Issue Platform events (performance issues) are transactions: they carry no
    ``dateCreated``, only epoch-second ``startTimestamp``/``endTimestamp`` and ``dateReceived``
    (sentry-api.md, Correction 8). The same rule must date an event everywhere (the sync's
    keyset walk uses it too), so it lives here once.
    """
    for key in ("dateCreated", "endTimestamp", "dateReceived"):
        value = ev.get(key)
        if value is not None and value != "":
            parsed = parse_timestamp(value)
            if parsed is not None:
                return parsed
    return None


def _event_date(ev: Mapping[str, Any], p: _Problems) -> dt.datetime | None:
    """``date_created`` by :func:`event_second`; a malformed ``dateCreated`` is recorded."""
    if ev.get("dateCreated") not in (None, ""):
        p.datetime(ev.get("dateCreated"), "dateCreated")
    return event_second(ev)


def is_hollow(ev: Mapping[str, Any]) -> bool:
    """A copy whose body nodestore lost (sentry-api.md, Correction 6).

    Sentry still lists it with its real id and date but ``entries: []``, empty contexts and
    null ``user`` and ``sdk``; ``latest`` serves it so too. It is never complete, whatever
    endpoint served it, so it must rank below any archived copy with a body.
    """
    return (
        ev.get("entries") == []
        and not ev.get("contexts")
        and ev.get("user") is None
        and ev.get("sdk") is None
    )


def event_facts(
    event: Mapping[str, Any], children: Mapping[str, list[dict[str, Any]]]
) -> dict[str, Any]:
    """The per-event facts the query views read, kept on ``events`` (migration 0004).

    Derived from the event row and its child rows only, exactly as the views used to compute
    them on every query (migration 0004 backfills older events with the same rules in SQL):

    * ``day``: the UTC calendar day of ``date_created``;
    * ``user_key``: Sentry's ``sentry:user``: ``id:``, else ``email:``, else ``username:``,
      else ``ip:`` and the value (None when the event names no user);
    * ``exception_position``, ``exception_type``: the raised exception (the last of the
      chain: the ``is_last`` row; the highest position if a payload has several);
    * ``crash_position``, ``crash_function``, ``crash_module``, ``crash_filename``,
      ``crash_lineno``: the top in-app frame of the raised exception's stack (the in-app,
      non-raw frame with the highest position), None when it has none.

    Text that goes into indexes is cut to ``INDEXED_MAX`` characters; the full values stay in
    the user columns and in ``frames``.
    """
    created = event.get("date_created")
    user_key = None
    for prefix, column in (
        ("id:", "user_id"),
        ("email:", "user_email"),
        ("username:", "user_username"),
        ("ip:", "user_ip_address"),
    ):
        if event.get(column) is not None:
            user_key = (prefix + event[column])[:INDEXED_MAX]
            break
    raised = None
    for exc in children.get("exceptions", ()):
        if exc.get("is_last") and (raised is None or exc["position"] > raised["position"]):
            raised = exc
    crash = None
    if raised is not None:
        for frame in children.get("frames", ()):
            if (
                frame["stack_kind"] == "exception"
                and frame["stack_index"] == raised["position"]
                and not frame["is_raw"]
                and frame.get("in_app") is True
                and (crash is None or frame["position"] > crash["position"])
            ):
                crash = frame

    def cut(value: str | None) -> str | None:
        return None if value is None else value[:INDEXED_MAX]

    return {
        "day": None if created is None else _utc_day(created),
        "user_key": user_key,
        "exception_position": None if raised is None else raised["position"],
        "exception_type": None if raised is None else cut(raised.get("type")),
        "crash_position": None if crash is None else crash["position"],
        "crash_function": None if crash is None else cut(crash.get("function")),
        "crash_module": None if crash is None else cut(crash.get("module")),
        "crash_filename": None if crash is None else cut(crash.get("filename")),
        "crash_lineno": None if crash is None else crash.get("lineno"),
    }


def _utc_day(when: dt.datetime) -> dt.date:
    """The UTC calendar day; a naive datetime is UTC already (as the UTCDateTime column takes it)."""
    return (when if when.tzinfo is None else when.astimezone(dt.timezone.utc)).date()


def _tags(value: Any, p: _Problems) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for i, item in enumerate(p.list_(value, "tags")):
        path = f"tags[{i}]"
        if isinstance(item, dict):
            key, val = item.get("key"), item.get("value")
        elif isinstance(item, (list, tuple)) and len(item) == 2:
            key, val = item
        else:
            p.add(path, "malformed", f"not a tag: {_short(item)}")
            continue
        if key is None:
            p.add(path, "malformed", "tag without a key")
            key = ""
        rows.append(
            {
                "position": len(rows),
                "key": p.text(key, f"{path}.key", indexed=True),
                "value": p.text(val, f"{path}.value", indexed=True),
            }
        )
    return rows


def _entry(
    entry: Any, i: int, children: dict[str, list[dict[str, Any]]], p: _Problems
) -> str | None:
    """Rows for one entry; returns the message text of a ``message`` entry."""
    path = f"entries[{i}]"
    if not isinstance(entry, dict):
        p.add(path, "malformed", f"entry is a {type(entry).__name__}")
        children["event_entries"].append({"position": i, "type": None, "data": p.json(entry, path)})
        return None
    raw_type = entry.get("type")
    etype = raw_type if isinstance(raw_type, str) else None
    data = entry.get("data")
    etype_text = p.text(raw_type, f"{path}.type", indexed=True)
    children["event_entries"].append(
        {
            "position": i,
            "type": etype_text,
            "data": None if etype in TABLED_ENTRIES else p.json(data, f"{path}.data"),
        }
    )
    dpath = f"{path}.data"
    if etype == "exception":
        _exceptions(p.dict_(data, dpath), dpath, children, p)
    elif etype == "threads":
        _threads(p.dict_(data, dpath), dpath, children, p)
    elif etype == "stacktrace":
        _frames(p.dict_(data, dpath), dpath, "stacktrace", i, False, None, children, p)
    elif etype == "breadcrumbs":
        _breadcrumbs(p.dict_(data, dpath), dpath, children, p)
    elif etype == "request":
        if children["requests"]:
            p.add(path, "malformed", "a second request entry (kept in raw_json only)")
        else:
            children["requests"].append(_request(p.dict_(data, dpath), dpath, p))
    elif etype == "message":
        d = data if isinstance(data, dict) else {}
        text = d.get("formatted") or d.get("message")
        if isinstance(data, str):
            text = data
        return p.text(text, f"{dpath}.formatted") if text else None
    return None


def _exceptions(
    data: dict[str, Any], path: str, children: dict[str, list[dict[str, Any]]], p: _Problems
) -> None:
    values = p.list_(data.get("values"), f"{path}.values")
    start = len(children["exceptions"])
    for j, exc in enumerate(values):
        epath = f"{path}.values[{j}]"
        if not isinstance(exc, dict):
            p.add(epath, "malformed", "exception is not an object")
            continue
        position = start + j
        mechanism = exc.get("mechanism")
        mech = mechanism if isinstance(mechanism, dict) else {}
        if mechanism is not None and not isinstance(mechanism, dict):
            p.add(f"{epath}.mechanism", "malformed", "mechanism is not an object")
        children["exceptions"].append(
            {
                "position": position,
                "type": p.text(exc.get("type"), f"{epath}.type", indexed=True),
                "value": p.text(exc.get("value"), f"{epath}.value"),
                "module": p.text(exc.get("module"), f"{epath}.module"),
                "mechanism_type": p.text(mech.get("type"), f"{epath}.mechanism.type"),
                "handled": p.bool_(mech.get("handled"), f"{epath}.mechanism.handled"),
                "synthetic": p.bool_(mech.get("synthetic"), f"{epath}.mechanism.synthetic"),
                "mechanism": p.json(mechanism, f"{epath}.mechanism"),
                "thread_id": p.text(exc.get("threadId"), f"{epath}.threadId"),
                "is_last": j == len(values) - 1,
            }
        )
        for key, raw in (("stacktrace", False), ("rawStacktrace", True)):
            trace = exc.get(key)
            if trace is not None:
                _frames(
                    p.dict_(trace, f"{epath}.{key}"),
                    f"{epath}.{key}",
                    "exception",
                    position,
                    raw,
                    None,
                    children,
                    p,
                )


def _threads(
    data: dict[str, Any], path: str, children: dict[str, list[dict[str, Any]]], p: _Problems
) -> None:
    for k, thread in enumerate(p.list_(data.get("values"), f"{path}.values")):
        tpath = f"{path}.values[{k}]"
        if not isinstance(thread, dict):
            p.add(tpath, "malformed", "thread is not an object")
            continue
        position = len(children["threads"])
        thread_id = p.text(thread.get("id"), f"{tpath}.id")
        children["threads"].append(
            {
                "position": position,
                "thread_id": thread_id,
                "name": p.text(thread.get("name"), f"{tpath}.name"),
                "current": p.bool_(thread.get("current"), f"{tpath}.current"),
                "crashed": p.bool_(thread.get("crashed"), f"{tpath}.crashed"),
                "state": p.text(thread.get("state"), f"{tpath}.state"),
            }
        )
        for key, raw in (("stacktrace", False), ("rawStacktrace", True)):
            trace = thread.get(key)
            if trace is not None:
                _frames(
                    p.dict_(trace, f"{tpath}.{key}"),
                    f"{tpath}.{key}",
                    "thread",
                    position,
                    raw,
                    thread_id,
                    children,
                    p,
                )


def _frames(
    trace: dict[str, Any],
    path: str,
    kind: str,
    index: int,
    raw: bool,
    thread_id: str | None,
    children: dict[str, list[dict[str, Any]]],
    p: _Problems,
) -> None:
    rows = children["frames"]
    for n, frame in enumerate(p.list_(trace.get("frames"), f"{path}.frames")):
        fpath = f"{path}.frames[{n}]"
        if not isinstance(frame, dict):
            p.add(fpath, "malformed", "frame is not an object")
            continue
        lineno = p.int_(_first(frame, "lineNo", "lineno"), f"{fpath}.lineNo")
        context_line, pre, post = _context(frame, lineno, fpath, p)
        rows.append(
            {
                "stack_kind": kind,
                "stack_index": index,
                "is_raw": raw,
                "position": n,
                "thread_id": thread_id,
                "function": p.text(frame.get("function"), f"{fpath}.function", indexed=True),
                "raw_function": p.text(
                    _first(frame, "rawFunction", "raw_function"), f"{fpath}.rawFunction"
                ),
                "module": p.text(frame.get("module"), f"{fpath}.module"),
                "filename": p.text(frame.get("filename"), f"{fpath}.filename"),
                "abs_path": p.text(_first(frame, "absPath", "abs_path"), f"{fpath}.absPath"),
                "lineno": lineno,
                "colno": p.int_(_first(frame, "colNo", "colno"), f"{fpath}.colNo"),
                "in_app": p.bool_(_first(frame, "inApp", "in_app"), f"{fpath}.inApp"),
                "package": p.text(frame.get("package"), f"{fpath}.package"),
                "platform": p.text(frame.get("platform"), f"{fpath}.platform"),
                "instruction_addr": p.text(
                    _first(frame, "instructionAddr", "instruction_addr"), f"{fpath}.instructionAddr"
                ),
                "symbol": p.text(frame.get("symbol"), f"{fpath}.symbol"),
                "symbol_addr": p.text(
                    _first(frame, "symbolAddr", "symbol_addr"), f"{fpath}.symbolAddr"
                ),
                "trust": p.text(frame.get("trust"), f"{fpath}.trust"),
                "context_line": context_line,
                "pre_context": pre,
                "post_context": post,
                "vars": p.json(frame.get("vars"), f"{fpath}.vars"),
            }
        )


def _first(d: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        if d.get(key) is not None:
            return d[key]
    return None


def _context(
    frame: dict[str, Any], lineno: int | None, path: str, p: _Problems
) -> tuple[str | None, list[Any] | None, list[Any] | None]:
    """(context line, lines before, lines after) from ``context`` pairs or the flat fields."""
    context = frame.get("context")
    if context is None:
        line = p.text(frame.get("context_line"), f"{path}.context_line")
        pre = frame.get("pre_context")
        post = frame.get("post_context")
        return (
            line,
            p.json(pre, f"{path}.pre_context") if pre is not None else None,
            p.json(post, f"{path}.post_context") if post is not None else None,
        )
    pairs = []
    for item in p.list_(context, f"{path}.context"):
        if isinstance(item, (list, tuple)) and len(item) == 2:
            number = p.int_(item[0], f"{path}.context")
            pairs.append((number, p.text(item[1], f"{path}.context")))
        else:
            p.add(f"{path}.context", "malformed", "context item is not a [line, text] pair")
    if not pairs:
        return None, None, None
    if lineno is None or all(n != lineno for n, _ in pairs):
        return None, [t for _, t in pairs], []
    before = [t for n, t in pairs if n is not None and n < lineno]
    after = [t for n, t in pairs if n is not None and n > lineno]
    line = next(t for n, t in pairs if n == lineno)
    return line, before, after


def _breadcrumbs(
    data: dict[str, Any], path: str, children: dict[str, list[dict[str, Any]]], p: _Problems
) -> None:
    for k, crumb in enumerate(p.list_(data.get("values"), f"{path}.values")):
        cpath = f"{path}.values[{k}]"
        if not isinstance(crumb, dict):
            p.add(cpath, "malformed", "breadcrumb is not an object")
            continue
        children["breadcrumbs"].append(
            {
                "position": len(children["breadcrumbs"]),
                "timestamp": p.datetime(crumb.get("timestamp"), f"{cpath}.timestamp"),
                "type": p.text(crumb.get("type"), f"{cpath}.type"),
                "category": p.text(crumb.get("category"), f"{cpath}.category"),
                "level": p.text(crumb.get("level"), f"{cpath}.level"),
                "message": p.text(crumb.get("message"), f"{cpath}.message"),
                "data": p.json(crumb.get("data"), f"{cpath}.data"),
                "breadcrumb_event_id": p.text(crumb.get("event_id"), f"{cpath}.event_id"),
            }
        )


def _request(data: dict[str, Any], path: str, p: _Problems) -> dict[str, Any]:
    query = data.get("query")
    return {
        "method": p.text(data.get("method"), f"{path}.method"),
        "url": p.text(data.get("url"), f"{path}.url"),
        "query_string": p.text(_query_string(query, f"{path}.query", p), f"{path}.query"),
        "query": p.json(query, f"{path}.query"),
        "fragment": p.text(data.get("fragment"), f"{path}.fragment"),
        "data": p.json(data.get("data"), f"{path}.data"),
        "headers": p.json(data.get("headers"), f"{path}.headers"),
        "cookies": p.json(data.get("cookies"), f"{path}.cookies"),
        "env": p.json(data.get("env"), f"{path}.env"),
        "inferred_content_type": p.text(
            _first(data, "inferredContentType", "inferred_content_type"),
            f"{path}.inferredContentType",
        ),
    }


def _query_string(query: Any, path: str, p: _Problems) -> str | None:
    if query is None or isinstance(query, str):
        return query
    pairs: Iterable[Any] = query.items() if isinstance(query, dict) else query
    if not isinstance(pairs, (list, tuple)) and not isinstance(query, dict):
        p.add(path, "malformed", f"query is a {type(query).__name__}")
        return None
    clean: list[tuple[str, str]] = []
    for pair in pairs:
        if isinstance(pair, (list, tuple)) and len(pair) == 2:
            name, val = (
                "" if v is None else v if isinstance(v, str) else json.dumps(v) for v in pair
            )
            clean.append((name, val))
        else:
            p.add(path, "malformed", "query item is not a [name, value] pair")
    try:
        return urlencode(clean)
    except UnicodeEncodeError:
        p.add(path, "invalid_unicode", "query pair cannot be URL-encoded")
        return None


def _contexts(contexts: dict[str, Any], p: _Problems) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    seen: set[str | None] = set()
    for key, ctx in contexts.items():
        path = f"contexts.{key}"
        clean_key = p.text(key, path, indexed=True)
        if clean_key in seen:
            p.add(path, "malformed", "duplicate context key after cleaning")
            continue
        seen.add(clean_key)
        c = ctx if isinstance(ctx, dict) else {}
        version = c.get("version")
        rows.append(
            {
                "key": clean_key,
                "type": p.text(c.get("type"), f"{path}.type"),
                "name": p.text(c.get("name"), f"{path}.name", indexed=True),
                "version": p.text(version, f"{path}.version")
                if not isinstance(version, (dict, list))
                else None,
                "data": p.json(ctx, path),
            }
        )
    return rows


# --------------------------------------------------------------------------- other objects


def _scrub_text(value: Any) -> str | None:
    """Text for discovery objects (no problem table there): NUL and surrogates replaced."""
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    return _clean_plain(text)


def _clean_json(value: Any) -> Any:
    return _Problems().json(value, "$")


def normalize_project(payload: Mapping[str, Any], organization_slug: str) -> dict[str, Any]:
    """A ``projects`` row from the organization projects list."""
    return {
        "id": int(payload["id"]),
        "organization_slug": _scrub_text(organization_slug),
        "slug": _scrub_text(payload.get("slug")),
        "name": _scrub_text(payload.get("name")),
        "platform": _scrub_text(payload.get("platform")) or None,
        "date_created": parse_timestamp(payload.get("dateCreated")),
        "raw_json": dump_raw(payload),
    }


def normalize_issue(payload: Mapping[str, Any], *, project_id: int | None = None) -> dict[str, Any]:
    """An ``issues`` row. Counts and first/last seen come from ``lifetime`` when present.

    With a date window, Sentry's issue search reports ``count``, ``userCount``, ``firstSeen``
    and ``lastSeen`` for that window only; ``lifetime`` carries the issue's totals.
    """
    project = payload.get("project")
    pid = project.get("id") if isinstance(project, dict) else None
    pid = int(pid) if pid is not None else project_id
    if pid is None:
        raise ValueError("the issue names no project and none was given")
    lifetime = payload.get("lifetime")
    totals = lifetime if isinstance(lifetime, dict) else {}

    def pick(key: str) -> Any:
        value = totals.get(key)
        return value if value is not None else payload.get(key)

    p = _Problems()
    return {
        "id": int(payload["id"]),
        "project_id": int(pid),
        "short_id": _scrub_text(payload.get("shortId")),
        "title": _scrub_text(payload.get("title")),
        "culprit": _scrub_text(payload.get("culprit")),
        "level": _scrub_text(payload.get("level")),
        "status": _scrub_text(payload.get("status")),
        "substatus": _scrub_text(payload.get("substatus")),
        "issue_type": _scrub_text(payload.get("issueType")),
        "issue_category": _scrub_text(payload.get("issueCategory")),
        "priority": _scrub_text(payload.get("priority")),
        "logger": _scrub_text(payload.get("logger")),
        "first_seen": parse_timestamp(pick("firstSeen")),
        "last_seen": parse_timestamp(pick("lastSeen")),
        "times_seen": p.int_(pick("count"), "count"),
        "user_count": p.int_(pick("userCount"), "userCount"),
        "permalink": _scrub_text(payload.get("permalink")),
        "metadata": _clean_json(payload.get("metadata")),
        "merged_into_id": None,
        "gone_at": None,
        "raw_json": dump_raw(payload),
    }


def normalize_release(payload: Mapping[str, Any]) -> dict[str, Any]:
    """A ``releases`` row from a release object."""
    p = _Problems()
    return {
        "version": _scrub_text(payload.get("version")) or "",
        "short_version": _scrub_text(payload.get("shortVersion")),
        "ref": _scrub_text(payload.get("ref")),
        "url": _scrub_text(payload.get("url")),
        "date_created": parse_timestamp(payload.get("dateCreated")),
        "date_released": parse_timestamp(payload.get("dateReleased")),
        "first_event": parse_timestamp(payload.get("firstEvent")),
        "last_event": parse_timestamp(payload.get("lastEvent")),
        "new_groups": p.int_(payload.get("newGroups"), "newGroups"),
        "commit_count": p.int_(payload.get("commitCount"), "commitCount"),
        "deploy_count": p.int_(payload.get("deployCount"), "deployCount"),
        "authors": _clean_json(payload.get("authors")),
        "last_deploy": _clean_json(payload.get("lastDeploy")),
        "raw_json": dump_raw(payload),
    }
