"""Stack frames stored once per distinct stack, the values that differ per event kept per event.

The events of one issue mostly crash through the same code: their stacks hold the same frames
(function, file, line, source context...), twenty-odd rows each, and those rows were most of
an archive's frame storage. So a stack's frames are stored once, under a key derived from
their values, and each event only points at its stacks:

* ``stacks``: one row per distinct stack, keyed by ``stack_key`` (:func:`stack_key`: the first
  16 bytes of the SHA-256 of the frames' values). The key is computed from the values alone,
  in the sync's worker processes, so two writers that meet the same stack agree on its key
  without asking the database; each inserts it with ``ON CONFLICT DO NOTHING``.
* ``stack_frames``: the frames of a stack, every column of a frame except ``vars``.
* ``event_stacks``: which stacks an event has (exception, thread or stacktrace entry, raw or
  not), with the thread's id: the per-event row, deleted with its event.
* ``frame_vars``: a frame's local variables (``vars``) differ from one event to the next, so
  they stay per event, one row per frame that has them.

The view ``frames`` (migration 0007) joins them back into exactly the rows and columns of the
former ``frames`` table, so every query written against it answers the same.

A stack that no event points at any more (its events purged, or re-archived with another
stack) is left in place by the writer: ``purge`` removes such stacks (:func:`collect_garbage`).

The models and the split of an event's frame rows (:func:`split_frames`, pure: it runs in the
worker processes) are here; the writes are the store's (:func:`insert_stacks`).
"""

from __future__ import annotations

import hashlib
import json
import operator
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import Any, Generic, TypeVar, cast

from sqlalchemy import (
    BigInteger,
    Boolean,
    Connection,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    select,
)
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql import Select

from archiver.storage.base import Base, JSONType, event_fk, event_pk_column, sqlite_only_fk

KEY_BYTES = 16  # of the SHA-256: 128 bits, as many as a UUID's


class Stack(Base):
    """A distinct stack: the frames of ``stack_frames`` with this key."""

    __tablename__ = "stacks"

    stack_key: Mapped[bytes] = mapped_column(LargeBinary, primary_key=True)
    frame_count: Mapped[int] = mapped_column(Integer)

    # SQLite: the row is its primary key's entry (no rowid, no second copy of the key).
    __table_args__ = ({"sqlite_with_rowid": False},)


class StackFrame(Base):
    """A frame of a distinct stack, oldest first (the crash site is the highest position)."""

    __tablename__ = "stack_frames"

    stack_key: Mapped[bytes] = mapped_column(
        LargeBinary, ForeignKey("stacks.stack_key", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    function: Mapped[str | None] = mapped_column(Text)
    raw_function: Mapped[str | None] = mapped_column(Text)
    module: Mapped[str | None] = mapped_column(Text)
    filename: Mapped[str | None] = mapped_column(Text)
    abs_path: Mapped[str | None] = mapped_column(Text)
    lineno: Mapped[int | None] = mapped_column(BigInteger)
    colno: Mapped[int | None] = mapped_column(BigInteger)
    in_app: Mapped[bool | None] = mapped_column(Boolean)
    package: Mapped[str | None] = mapped_column(Text)
    platform: Mapped[str | None] = mapped_column(Text)
    instruction_addr: Mapped[str | None] = mapped_column(Text)
    symbol: Mapped[str | None] = mapped_column(Text)
    symbol_addr: Mapped[str | None] = mapped_column(Text)
    trust: Mapped[str | None] = mapped_column(Text)
    context_line: Mapped[str | None] = mapped_column(Text)
    pre_context: Mapped[Any | None] = mapped_column(JSONType)
    post_context: Mapped[Any | None] = mapped_column(JSONType)

    __table_args__ = (Index(None, "in_app", "function"), {"sqlite_with_rowid": False})


class EventStack(Base):
    """A stack of an event.

    ``stack_kind`` says which: ``exception`` (``stack_index`` is the exception's position),
    ``thread`` (``stack_index`` is the thread's position, ``thread_id`` its id) or
    ``stacktrace`` (a top-level stacktrace entry; ``stack_index`` is the entry's position).
    ``is_raw`` marks the unsymbolicated ``rawStacktrace``.
    """

    __tablename__ = "event_stacks"

    event_pk: Mapped[int] = event_pk_column()
    stack_kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    stack_index: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    is_raw: Mapped[bool] = mapped_column(Boolean, primary_key=True)
    thread_id: Mapped[str | None] = mapped_column(Text)
    # Not indexed: only purge's garbage collection looks events up by stack, in one pass
    # (:func:`unused_stacks`), and an index would cost as much as the rows (~40 B a row).
    stack_key: Mapped[bytes] = mapped_column(LargeBinary)

    # SQLite only (see base.sqlite_only_fk): on PostgreSQL the check of stack_key cost as much
    # per row as event_pk's (the README's "PostgreSQL: no foreign keys on the per-event rows").
    # Stacks are deleted only by purge, under the run lock that keeps every sync out, and only
    # those no row of this table names.
    __table_args__ = (
        event_fk(),
        sqlite_only_fk(["stack_key"], ["stacks.stack_key"]),
        {"sqlite_with_rowid": False},
    )


class FrameVars(Base):
    """The local variables of a frame of an event's stack (only frames that have them)."""

    __tablename__ = "frame_vars"

    event_pk: Mapped[int] = event_pk_column()
    stack_kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    stack_index: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    is_raw: Mapped[bool] = mapped_column(Boolean, primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    vars: Mapped[Any] = mapped_column(JSONType)

    __table_args__ = (event_fk(), {"sqlite_with_rowid": False})


STACKS = cast(Table, Stack.__table__)
EVENT_STACKS = cast(Table, EventStack.__table__)
STACK_FRAMES = cast(Table, StackFrame.__table__)
# A stack frame's values after its position, in the order of the tuples of ``stack_frames``
# (:func:`split_frames`) and of the ``frames`` view.
FRAME_VALUES: tuple[str, ...] = tuple(
    c.name for c in STACK_FRAMES.columns if c.name not in ("stack_key", "position")
)
# The columns of the ``frames`` view (the former table's), in its order.
FRAME_COLUMNS: tuple[str, ...] = (
    "event_pk",
    "stack_kind",
    "stack_index",
    "is_raw",
    "position",
    "thread_id",
    *FRAME_VALUES,
    "vars",
)
# The JSON values of a frame's tuple (after its position): its last two, stored as text.
_PRE, _POST = (FRAME_VALUES.index("pre_context") + 1, FRAME_VALUES.index("post_context") + 1)
assert len(FRAME_VALUES) == _POST == _PRE + 1
_pick_frame = operator.itemgetter("position", *FRAME_VALUES)


def json_encoder() -> Callable[[Any], str]:
    """``json.JSONEncoder(ensure_ascii=False, allow_nan=False).encode``: the text of JSON
    values as the store binds them, the same characters.

    That method builds a new C encoder on every call, and the workers call it tens of times
    per event (context lines, variables, breadcrumb data, each stack): this one is built
    once. It skips the check for circular references, which values parsed from JSON never
    have (a cycle would end in RecursionError instead of ValueError).
    """
    encoder = json.JSONEncoder(ensure_ascii=False, allow_nan=False)
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # pragma: no cover - CPython always has it
        return encoder.encode
    chunks = make(
        None,
        encoder.default,
        json.encoder.encode_basestring,
        None,
        encoder.key_separator,
        encoder.item_separator,
        encoder.sort_keys,
        encoder.skipkeys,
        encoder.allow_nan,
    )

    def encode(value: Any) -> str:
        return "".join(chunks(value, 0))

    return encode


_encode_json = json_encoder()


def stack_key(frames: Sequence[tuple[Any, ...]]) -> bytes:
    """The key of a stack: the first :data:`KEY_BYTES` bytes of the SHA-256 of its frames.

    ``frames`` are ``stack_frames`` tuples (position, then :data:`FRAME_VALUES`) with JSON
    values as their text: the same stack has the same key in every process and on both
    databases. The JSON array of those tuples is one text per distinct list of values, so
    two stacks share a key only if the hash collides (about 2**64 distinct stacks for even
    odds).
    """
    text = _encode_json(frames).encode("utf-8", "surrogatepass")
    return hashlib.sha256(text).digest()[:KEY_BYTES]


StackRows = dict[bytes, list[tuple[Any, ...]]]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Recent(Generic[K, V]):
    """What was made for the keys met lately (a worker's stacks: the events of an issue mostly
    share theirs), emptied once it holds ``limit`` of them: a few MB at most."""

    def __init__(self, limit: int = 512) -> None:
        self.limit = limit
        self._made: dict[K, V] = {}

    def get(self, key: K, make: Callable[[], V]) -> V:
        """``make()``'s value for ``key``, made only when it was not met lately."""
        value = self._made.get(key)
        if value is None:
            value = make()
            if len(self._made) >= self.limit:
                self._made.clear()
            self._made[key] = value
        return value


# Keys of the stacks met lately, by their values: hashing the values as a tuple costs a
# fraction of encoding and digesting them.
_KEYS: Recent[tuple[tuple[Any, ...], ...], bytes] = Recent()


def _cached_key(values: list[tuple[Any, ...]]) -> bytes:
    """:func:`stack_key` of ``values``, from :data:`_KEYS` when they were met lately.

    Equal values have equal JSON texts, hence equal keys: each column holds one type (text,
    an integer that is never a boolean, a boolean, the JSON values' text) or None, so
    Python's ``1 == True`` never meets a column where JSON would tell them apart.
    """
    return _KEYS.get(tuple(values), lambda: stack_key(values))


def split_frames(
    rows: Iterable[Mapping[str, Any]],
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], StackRows]:
    """An event's ``frames`` rows (as normalized) as the rows stored for them.

    Returns the ``event_stacks`` and ``frame_vars`` tuples (without ``event_pk``, in their
    tables' column order) and the stacks (key -> ``stack_frames`` tuples without the key),
    JSON values as their text. Pure: runs in the sync's worker processes.
    """
    stacks_of_event: dict[tuple[str, int, bool], list[Mapping[str, Any]]] = {}
    last: tuple[str, int, bool] | None = None
    frames: list[Mapping[str, Any]] = []
    for row in rows:
        stack = (row["stack_kind"], row["stack_index"], row["is_raw"])
        if stack != last:  # a stack's rows come together: one lookup per stack, not per row
            frames = stacks_of_event.setdefault(stack, [])
            last = stack
        frames.append(row)
    event_stacks: list[tuple[Any, ...]] = []
    frame_vars: list[tuple[Any, ...]] = []
    stacks: StackRows = {}
    encode = _encode_json
    for (kind, index, raw), frames in stacks_of_event.items():
        values = []
        for f in frames:
            picked = _pick_frame(f)
            pre, post = picked[_PRE], picked[_POST]
            values.append(
                (
                    *picked[:_PRE],
                    None if pre is None else encode(pre),
                    None if post is None else encode(post),
                )
            )
            if f["vars"] is not None:
                frame_vars.append((kind, index, raw, f["position"], encode(f["vars"])))
        key = _cached_key(values)
        stacks[key] = values
        event_stacks.append((kind, index, raw, frames[0]["thread_id"], key))
    return event_stacks, frame_vars, stacks


# ----------------------------------------------------------------------------- writes


def insert_stacks(conn: Connection, frame_counts: Mapping[bytes, int]) -> list[bytes]:
    """Insert the ``stacks`` rows the archive lacks; the keys of those inserted.

    Only the caller that inserted a stack writes its frames. On PostgreSQL two writers
    inserting the same stack at once serialize on its key: the second waits for the first to
    commit, then ``ON CONFLICT DO NOTHING`` leaves its row out of ``RETURNING`` (or, if the
    first rolled back, inserts it). Keys go in sorted order, so two calls never wait for each
    other in a circle; but a page is written in several batches, a call each, so two pages
    meeting the same new stacks in opposite batch orders can deadlock: PostgreSQL aborts one
    of them, which the writer writes again (:mod:`archiver.storage.conflicts`). SQLite has
    one writer, which holds the write lock from BEGIN.
    """
    keys = sorted(frame_counts)
    if not keys:
        return []
    preparer = conn.dialect.identifier_preparer
    table = preparer.format_table(STACKS)
    new: list[bytes] = []
    if conn.dialect.name == "postgresql":
        for chunk in _chunks(keys):
            sql = (
                f"INSERT INTO {table} (stack_key, frame_count) VALUES "
                + ", ".join(["(%s, %s)"] * len(chunk))
                + " ON CONFLICT (stack_key) DO NOTHING RETURNING stack_key"
            )
            params = tuple(v for k in chunk for v in (k, frame_counts[k]))
            new.extend(bytes(r[0]) for r in conn.exec_driver_sql(sql, params))
        return sorted(new)
    for chunk in _chunks(keys):
        marks = ", ".join(["?"] * len(chunk))
        found = conn.exec_driver_sql(
            f"SELECT stack_key FROM {table} WHERE stack_key IN ({marks})", tuple(chunk)
        )
        stored = {bytes(r[0]) for r in found}
        missing = [k for k in chunk if k not in stored]
        if missing:
            conn.exec_driver_sql(
                f"INSERT INTO {table} (stack_key, frame_count) VALUES (?, ?)",
                [(k, frame_counts[k]) for k in missing],
            )
            new.extend(missing)
    return new


def unused_stacks(dialect: str, refs: Select[Any]) -> Select[Any]:
    """The keys of the stacks that no row of ``refs`` (a select of ``event_stacks.stack_key``)
    names, in one pass over each table whatever their sizes.

    SQLite runs ``NOT IN (subquery)`` by building the subquery's keys once (a correlated
    ``NOT EXISTS`` would scan ``event_stacks`` once per stack); PostgreSQL plans ``NOT EXISTS``
    as a hash anti-join (its ``NOT IN`` hashes only what fits in ``work_mem``).
    """
    key = STACKS.c.stack_key
    if dialect == "sqlite":
        return select(key).where(key.not_in(refs))
    return select(key).where(~refs.where(EVENT_STACKS.c.stack_key == key).exists())


def collect_garbage(conn: Connection) -> tuple[int, int]:
    """Delete the stacks no event points at; (stacks, stack frames) deleted.

    Run by ``purge`` under the archive's run lock (no sync writes meanwhile), after it deleted
    events: so that a purge frees their frames too. It finds every such stack, whether its
    events were purged or re-archived with another stack.
    """
    refs = select(EVENT_STACKS.c.stack_key)
    orphans = [bytes(k) for k in conn.execute(unused_stacks(conn.dialect.name, refs)).scalars()]
    stacks = frames = 0
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    for chunk in _chunks(orphans):
        marks = ", ".join([mark] * len(chunk))
        frames += max(
            conn.exec_driver_sql(
                f"DELETE FROM stack_frames WHERE stack_key IN ({marks})", tuple(chunk)
            ).rowcount,
            0,
        )
        stacks += max(
            conn.exec_driver_sql(
                f"DELETE FROM stacks WHERE stack_key IN ({marks})", tuple(chunk)
            ).rowcount,
            0,
        )
    return stacks, frames


def _chunks(keys: Sequence[bytes], size: int = 500) -> Iterable[Sequence[bytes]]:
    for start in range(0, len(keys), size):
        yield keys[start : start + size]
