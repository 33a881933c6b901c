"""One Sentry event payload to the row of ``events`` and the rows of its child tables.

``normalize_event`` reads a list item, a detail payload or an event-ID lookup's ``event``. It
never raises on a malformed payload (only when no project id is known at all): whatever it
cannot read cleanly is left out or coerced, and recorded as an ``event_problems`` row, while
the raw JSON keeps everything. Pure: no I/O, no database.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from archiver.normalize.coerce import Problems, dump_raw, normalize_event_id, parse_timestamp
from archiver.normalize.entries import (
    Children,
    context_rows,
    entry_rows,
    error_rows,
    tag_rows,
)
from archiver.normalize.facts import event_facts
from archiver.normalize.lenient import DecodeProblem
from archiver.normalize.resources import normalize_release

# The child tables an event's rows go to, by name, in the order the schema lists them
# (``archiver.storage.models.EVENT_CHILD_TABLES``; a test keeps the two the same). Named here
# rather than read from the models so that normalization does not import SQLAlchemy.
CHILD_NAMES: tuple[str, ...] = (
    "event_tags",
    "exceptions",
    "threads",
    "frames",
    "breadcrumbs",
    "requests",
    "contexts",
    "event_errors",
    "event_entries",
    "event_problems",
)


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


def normalize_event(
    payload: Any,
    *,
    project_id: int | None = None,
    issue_id: int | None = None,
    has_detail: bool = False,
    raw: str | None = None,
    decoded: Sequence[DecodeProblem] = (),
) -> NormalizedEvent:
    """One API event payload to rows. Raises ValueError only when no project id is known.

    ``raw`` is the payload's JSON text as the server sent it, when the caller has it (a slice
    of a list page): stored as is, it is the most faithful copy and saves re-encoding the
    payload. Without it the payload is dumped (:func:`dump_raw`). ``decoded``: what reading
    the text found wrong (:mod:`archiver.normalize.lenient`), recorded first.

    The order in which values are read is the order of the ``event_problems`` rows, so it is
    kept: ids, tags, entries, user and sdk, contexts, errors, then the event's own columns.
    """
    if raw is None:
        raw = dump_raw(payload)
    p = Problems(raw)
    for path, problem, detail in decoded:
        p.add(path, problem, detail, cut=False)
    ev: dict[str, Any] = payload if isinstance(payload, dict) else {}
    if not isinstance(payload, dict):
        p.add("$", "malformed", f"the event is a {type(payload).__name__}, not an object")

    pid, gid = _owners(ev, p, project_id, issue_id)
    event_id, legacy_id = _ids(ev, raw, p)

    children: Children = {name: [] for name in CHILD_NAMES}
    children["event_tags"] = tag_rows(ev.get("tags"), p)
    tag: dict[str | None, str | None] = {}
    for row in children["event_tags"]:
        tag.setdefault(row["key"], row["value"])
    message_entry = entry_rows(ev.get("entries"), children, p)
    user = p.dict_(ev.get("user"), "user")
    sdk = p.dict_(ev.get("sdk"), "sdk")
    release_version, release_row = _release(ev.get("release"), tag.get("release"))
    children["contexts"] = context_rows(p.dict_(ev.get("contexts"), "contexts"), p)
    children["event_errors"] = error_rows(ev.get("errors"), p)

    event_row: dict[str, Any] = {
        "project_id": pid,
        "event_id": event_id,
        "issue_id": gid,
        "legacy_id": legacy_id,
        **_described(ev, tag, message_entry, release_version, p),
        **_people(ev, user, sdk, p),
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


def _owners(
    ev: Mapping[str, Any], p: Problems, project_id: int | None, issue_id: int | None
) -> tuple[int, int | None]:
    """(project id, issue id): the payload's own, else the ones the caller knows."""
    pid = p.int_(ev.get("projectID"), "projectID") if ev.get("projectID") is not None else None
    if pid is None:
        pid = project_id
    if pid is None:
        raise ValueError("the event names no project and none was given")
    gid = p.int_(ev.get("groupID"), "groupID") if ev.get("groupID") is not None else None
    return pid, issue_id if gid is None else gid


def _ids(ev: Mapping[str, Any], raw: str, p: Problems) -> tuple[str, str | None]:
    """(event id, legacy id): the 32-hex id, and the payload's ``id`` when it differs.

    An event without a 32-hex id still gets a stable one. When it has an id of another shape,
    that id is hashed: the same id is the same row whatever else a later copy changes. Only
    an event with no id at all is keyed by a hash of its raw JSON (the same payload archived
    twice is one event).
    """
    event_id = normalize_event_id(ev.get("eventID")) or normalize_event_id(ev.get("id"))
    if event_id is None:
        event_id = _fallback_id(ev, raw, p)
    legacy = ev.get("id")
    legacy_id = None
    if legacy is not None and normalize_event_id(legacy) != event_id:
        legacy_id = p.text(legacy, "id")
    return event_id, legacy_id


def _fallback_id(ev: Mapping[str, Any], raw: str, p: Problems) -> str:
    """The stable key of an event without a 32-hex id: a hash of its own id, else of its JSON."""
    for path in ("eventID", "id"):
        value = ev.get(path)
        if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value).strip():
            text = str(value).strip()
            p.add(path, "malformed", "not a 32-hex event id; a hash of the id is used")
            return _hash32(f"id:{text}")
    p.add("eventID", "missing_event_id", "no 32-hex event id; a hash of the raw JSON is used")
    return _hash32(raw)


def _hash32(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _release(release: Any, tagged: str | None) -> tuple[str | None, dict[str, Any] | None]:
    """(release version, ``releases`` row): the ``release`` tag wins over the object."""
    row = normalize_release(release) if isinstance(release, dict) else None
    if tagged is not None:
        return tagged, row
    if row is not None:
        return row["version"], row
    return (release if isinstance(release, str) else None), row


def _described(
    ev: Mapping[str, Any],
    tag: Mapping[str | None, str | None],
    message_entry: str | None,
    release_version: str | None,
    p: Problems,
) -> dict[str, Any]:
    """The columns that say what happened and where (title through the dates).

    Some values come from the payload first, others from the tags first: the tags hold what
    Sentry indexed, and ``transaction``, ``environment`` and ``release`` are read there first
    as the search does. A payload without a message of its own takes its message entry's.
    """
    message = ev.get("message")
    if not message and message_entry:
        message = message_entry
    dist = ev.get("dist")
    return {
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
        "dist": p.text(dist if not isinstance(dist, dict) else None, "dist"),
        "date_created": _event_date(ev, p),
        "date_received": p.datetime(ev.get("dateReceived"), "dateReceived"),
    }


def _people(
    ev: Mapping[str, Any], user: Mapping[str, Any], sdk: Mapping[str, Any], p: Problems
) -> dict[str, Any]:
    """The SDK and user columns, then the event's remaining JSON values."""
    return {
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
    }


def event_second(ev: Mapping[str, Any]) -> dt.datetime | None:
    """When an event happened: ``dateCreated``, else ``endTimestamp``, else ``dateReceived``.

    Issue Platform events (performance issues) are transactions: they carry no
    ``dateCreated``, only epoch-second ``startTimestamp``/``endTimestamp`` and ``dateReceived``
    (as Sentry's event serializer writes them). The same rule must date an event everywhere
    (the sync's keyset walk uses it too), so it lives here once.
    """
    for key in ("dateCreated", "endTimestamp", "dateReceived"):
        value = ev.get(key)
        if value is not None and value != "":
            parsed = parse_timestamp(value)
            if parsed is not None:
                return parsed
    return None


def _event_date(ev: Mapping[str, Any], p: Problems) -> dt.datetime | None:
    """``date_created`` by :func:`event_second`; a malformed ``dateCreated`` is recorded."""
    if ev.get("dateCreated") not in (None, ""):
        p.datetime(ev.get("dateCreated"), "dateCreated")
    return event_second(ev)


def is_hollow(ev: Mapping[str, Any]) -> bool:
    """A copy whose body Sentry's nodestore lost.

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
