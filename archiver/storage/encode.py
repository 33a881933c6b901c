"""Rows to parameter tuples: a normalized event as the writer stores it.

The writer sends events and their child rows (tens per event) straight to the driver, skipping
SQLAlchemy's per-row parameter processing, so the values must already be what SQLAlchemy would
bind: datetimes as SQLite text or aware UTC, dates as text on SQLite, JSON as its text. This
conversion is pure and runs in the sync's worker processes, which is why it lives apart from
the store: workers import this module, not the writer.

On PostgreSQL the rows go one step further, to the data of ``COPY ... FROM STDIN``
(:class:`CopyRows`): adapting each value in the driver was most of the writer's CPU there,
and the workers can do that work in parallel instead. ``events`` rows are in COPY's binary
format (:mod:`archiver.storage.pgbinary`), which costs the server a third less CPU for their
large raw JSON. Child rows and stack frames stay in its text format: their fields are short,
and binary saved the server little (a little on breadcrumbs' timestamps, nothing measurable
on the other tables) while costing the writer more (one piece per row to put the event's
key into, against one ``bytes.replace`` per block); stack frames are a few rows per stack.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import JSON, Date, DateTime

from archiver.normalize import NormalizedEvent
from archiver.storage.base import NOT_WRITTEN, UTCDateTime
from archiver.storage.models import CHILD_TABLES, EVENT_CHILD_TABLES, EVENTS
from archiver.storage.pgbinary import row_encoder
from archiver.storage.rawjson import PLAIN, RawCodec
from archiver.storage.stacks import Recent, StackRows, json_encoder, split_frames

# The events row's columns in the order of its tuple (the computed raw_zstd, raw_dict_id and
# raw_sha256 last; the writer adds archived_at and updated_at; id is the database's).
_COMPUTED = ("raw_zstd", "raw_dict_id", "raw_sha256")
EVENT_COLUMNS: tuple[str, ...] = (
    *(
        c.name
        for c in EVENTS.columns
        if c.name not in ("id", *_COMPUTED, "archived_at", "updated_at")
    ),
    *_COMPUTED,
)
_RAW_JSON = EVENT_COLUMNS.index("raw_json")

# Child row columns in the order of their tuples (``event_pk`` left out: the writer adds it;
# so are columns marked NOT_WRITTEN, left to their defaults, like event_problems.attempts).
# Normalized ``frames`` rows become ``event_stacks``, ``frame_vars`` and shared stacks
# (:func:`archiver.storage.stacks.split_frames`).
CHILD_COLUMNS: dict[str, tuple[str, ...]] = {
    t.name: tuple(c.name for c in t.columns if c.name != "event_pk" and not c.info.get(NOT_WRITTEN))
    for t in EVENT_CHILD_TABLES
}


def _picker(columns: tuple[str, ...]) -> Callable[[Mapping[str, Any]], tuple[Any, ...]]:
    """A row dict's values as a tuple in ``columns`` order (itemgetter, in C)."""
    if len(columns) == 1:
        (only,) = columns
        return lambda row: (row[only],)
    return operator.itemgetter(*columns)


_pickers = {name: _picker(cols) for name, cols in CHILD_COLUMNS.items()}
_pick_event = _picker(EVENT_COLUMNS[: -len(_COMPUTED)])  # computed, not normalized


@dataclass(frozen=True)
class CopyRows:
    """An event's rows as data of PostgreSQL's ``COPY``.

    ``event`` is the ``events`` row's fields in :data:`EVENT_COLUMNS` order, in COPY's binary
    format (:mod:`archiver.storage.pgbinary`) and without the field count: the writer puts that
    and the ``id`` in front and appends ``archived_at`` and ``updated_at``. The rest is COPY's
    text format, UTF-8 encoded. Each child table's rows are one block of lines, each line
    starting with a tab: the writer puts the event's primary key (known only once the event
    row is written) in front of every line. Values never hold a raw tab or
    line end (escaped), so every ``\\n`` in a block ends a row.
    ``stacks`` are the ``stack_frames`` rows of the event's stacks by key, one block each in
    the same form (the writer puts the key in front of the lines of the stacks it inserts).
    """

    event: bytes
    children: dict[str, bytes]
    stacks: dict[bytes, bytes] = field(default_factory=dict)


@dataclass(frozen=True)
class EncodedEvent:
    """A normalized event as the writer stores it, values already converted for one database.

    ``event`` is the ``events`` row as a tuple in :data:`EVENT_COLUMNS` order; child rows are
    tuples in :data:`CHILD_COLUMNS` order, without ``event_pk`` (the writer prepends it);
    ``stacks`` the frames of the event's stacks by key (``stack_frames`` tuples without
    the key), which the writer stores unless the archive has them.
    Made by :func:`encode_event`, in a worker process during a sync, so that the single
    writer spends its time in the database and not in Python.
    """

    project_id: int
    event_id: str
    issue_id: int | None
    event: tuple[Any, ...]
    children: dict[str, list[tuple[Any, ...]]]
    release_version: str | None
    release: dict[str, Any] | None
    sha256: str  # of the raw JSON: an unchanged event is not written again
    rank: int  # how rich the payload is (see :func:`rank`)
    # PostgreSQL: the rows as COPY data; ``event`` is then empty and ``children`` too
    copy: CopyRows | None = None
    stacks: StackRows = field(default_factory=dict)


# Whether PostgreSQL events are encoded for COPY by default (the writer's fast path there).
COPY_BY_DEFAULT = True


def encode_event(
    ev: NormalizedEvent | EncodedEvent,
    dialect: str,
    *,
    copy: bool | None = None,
    codec: RawCodec | None = None,
) -> EncodedEvent:
    """Rows to tuples of values converted for ``dialect``, and the raw JSON's SHA-256.

    On SQLite the raw JSON is compressed with ``codec`` (plain zstd when None) into
    ``raw_zstd`` and ``raw_json`` is left NULL (:mod:`archiver.storage.rawjson`); this is
    where the sync's page workers spend that CPU, not the writer. On PostgreSQL the rows
    become COPY data (:class:`CopyRows`) unless ``copy`` is false. Pure, so it runs in any
    process.
    """
    if isinstance(ev, EncodedEvent):
        return ev
    row = ev.event
    raw: str = row["raw_json"]
    data = raw.encode("utf-8", "surrogatepass")  # as RawCodec.compress encodes it
    sha = hashlib.sha256(data).hexdigest()
    picked = _pick_event(row)
    if dialect == "sqlite":
        codec = codec or PLAIN
        picked = (*picked[:_RAW_JSON], None, *picked[_RAW_JSON + 1 :])
        computed: tuple[Any, ...] = (codec.compress_bytes(data), codec.dict_id, sha)
    else:
        computed = (None, None, sha)
    values = _convert((*picked, *computed), _converters("events", dialect))
    children: dict[str, list[tuple[Any, ...]]] = {}
    stacks: StackRows = {}
    for name, rows in ev.children.items():
        if name == "frames":
            if rows:
                children["event_stacks"], vars_rows, stacks = split_frames(rows)
                if vars_rows:
                    children["frame_vars"] = vars_rows
        elif rows:
            pick, convert = _pickers[name], _converters(name, dialect)
            children[name] = [_convert(pick(r), convert) for r in rows]
    copied = None
    if dialect == "postgresql" and (COPY_BY_DEFAULT if copy is None else copy):
        copied = _copy_rows(values, children, stacks)
        values, children, stacks = (), {}, {}
    return EncodedEvent(
        ev.project_id,
        ev.event_id,
        ev.issue_id,
        values,
        children,
        ev.release_version,
        ev.release,
        sha,
        rank(bool(row.get("has_detail")), bool(row.get("is_full"))),
        copied,
        stacks,
    )


_RAW_ZSTD = EVENT_COLUMNS.index("raw_zstd")
_RAW_DICT_ID = EVENT_COLUMNS.index("raw_dict_id")


def with_codec(ev: EncodedEvent, codec: RawCodec) -> EncodedEvent:
    """``ev`` (SQLite) with its raw JSON compressed by ``codec`` when a worker compressed it
    without a dictionary: pages in flight when the archive's dictionary was trained."""
    values = ev.event
    if codec.dict_id is None or not values or values[_RAW_DICT_ID] is not None:
        return ev
    blob = values[_RAW_ZSTD]
    if blob is None:
        return ev
    out = list(values)
    out[_RAW_ZSTD] = codec.compress(PLAIN.decompress(blob))
    out[_RAW_DICT_ID] = codec.dict_id
    return replace(ev, event=tuple(out))


def _copy_rows(
    event: tuple[Any, ...], children: Mapping[str, list[tuple[Any, ...]]], stacks: StackRows
) -> CopyRows:
    """Converted rows as COPY data (see :class:`CopyRows`)."""
    blocks = {name: _copy_block(rows) for name, rows in children.items()}
    frames = {key: _stack_block(key, rows) for key, rows in stacks.items()}
    return CopyRows(_event_encoder()(event), blocks, frames)


@functools.cache
def _event_encoder() -> Callable[[Sequence[Any]], bytes]:
    """The ``events`` row's binary encoder, made on first use: a column of a type it has no
    encoder for fails PostgreSQL writes, not every import of this module."""
    return row_encoder([EVENTS.c[column].type for column in EVENT_COLUMNS])


# The COPY text of the stacks met lately, by key: events of an issue mostly share their stacks
# (see archiver.storage.stacks), and a key stands for exactly one list of frame values.
_STACK_BLOCKS: Recent[bytes, bytes] = Recent()


def _stack_block(key: bytes, rows: list[tuple[Any, ...]]) -> bytes:
    return _STACK_BLOCKS.get(key, lambda: _copy_block(rows))


def _copy_block(rows: list[tuple[Any, ...]]) -> bytes:
    return "".join(["\t" + "\t".join(map(copy_field, r)) + "\n" for r in rows]).encode()


def copy_field(value: Any) -> str:
    """A converted value as a field of COPY's text format (NULL is ``\\N``).

    Backslashes, tabs and line ends are escaped; other text goes as it is. Aware datetimes
    keep their offset, so PostgreSQL stores the same instant as from a bound parameter.
    """
    if value is None:
        return "\\N"
    if isinstance(value, str):
        if "\\" in value:
            value = value.replace("\\", "\\\\")
        if "\n" in value:
            value = value.replace("\n", "\\n")
        if "\r" in value:
            value = value.replace("\r", "\\r")
        if "\t" in value:
            value = value.replace("\t", "\\t")
        return str(value)
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, bytes):  # bytea's hex form, its backslash escaped
        return "\\\\x" + value.hex()
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return str(value)


def rank(has_detail: bool, is_full: bool) -> int:
    """How rich a payload is: detail > full list item > slim or hollow item.

    A payload without a body (``is_full`` false) ranks lowest even when a detail endpoint
    served it: ``latest`` serves hollow events (whose body Sentry lost).
    """
    if not is_full:
        return 0
    return 2 if has_detail else 1


def _identity(value: Any) -> Any:
    return value


# One encoder for every value: json.dumps with options builds a new encoder per call.
_encode_json = json_encoder()


def _json_value(value: Any) -> Any:
    return None if value is None else _encode_json(value)


def _sqlite_datetime(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
    if value.year < 1000:  # strftime's %Y does not pad to four digits (glibc)
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")
    # strftime's text, in a third of its time (isoformat leaves out a zero fraction)
    text = value.isoformat(" ")
    return text if value.microsecond else text + ".000000"


def _pg_datetime(value: dt.datetime | None) -> dt.datetime | None:
    """UTCDateTime's rule: a naive value is UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=dt.timezone.utc)


def _sqlite_date(value: dt.date | None) -> str | None:
    return None if value is None else value.isoformat()


def converter(type_: Any, dialect: str) -> Callable[[Any], Any]:
    """How SQLAlchemy would bind a value of this column type, as a plain function.

    JSON becomes its text on both databases (PostgreSQL casts it in the INSERT).
    """
    if isinstance(type_, (UTCDateTime, DateTime)):
        return _sqlite_datetime if dialect == "sqlite" else _pg_datetime
    if isinstance(type_, Date):
        return _sqlite_date if dialect == "sqlite" else _identity
    if isinstance(type_, JSON):
        return _json_value
    return _identity


@functools.lru_cache(maxsize=64)
def _converters(table: str, dialect: str) -> tuple[tuple[int, Callable[[Any], Any]], ...]:
    """(position, converter) of the columns, in tuple order, whose values need converting
    (``events``: :data:`EVENT_COLUMNS`; a child table: its :data:`CHILD_COLUMNS`)."""
    columns = EVENT_COLUMNS if table == "events" else CHILD_COLUMNS[table]
    types = EVENTS.c if table == "events" else CHILD_TABLES[table].c
    out = []
    for i, column in enumerate(columns):
        conv = converter(types[column].type, dialect)
        if conv is not _identity:
            out.append((i, conv))
    return tuple(out)


def _convert(
    values: tuple[Any, ...], converters: tuple[tuple[int, Callable[[Any], Any]], ...]
) -> tuple[Any, ...]:
    if not converters:
        return values
    out = list(values)
    for i, conv in converters:
        out[i] = conv(out[i])
    return tuple(out)
