"""Writing normalized rows: bulk, idempotent upserts, one transaction per page.

The store is the single writer. The sync engine calls::

    with store.transaction() as conn:
        store.write_events(conn, events)
        store.save_issue_walk(conn, ...)   # the checkpoint that covers those rows

so a page's rows and its checkpoint commit together or not at all: a process killed at any
instant leaves either both or neither, and the resumed walk re-reads at most one page.

Idempotence: events are keyed by ``(project_id, event_id)``. Re-archiving an event whose raw
JSON is unchanged writes nothing; a changed payload replaces the event row and all of its child
rows (never appends). A payload never replaces a richer one (a slim list item never overwrites a
full event, a list item never overwrites a detail payload).
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import itertools
import json
import operator
import os
import socket
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypedDict

from sqlalchemy import (
    JSON,
    Connection,
    Date,
    DateTime,
    Engine,
    Table,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from archiver.normalize.event import NormalizedEvent
from archiver.storage.models import (
    EVENT_CHILD_TABLES,
    Event,
    Issue,
    IssueSync,
    Project,
    ProjectSync,
    Release,
    Run,
    UTCDateTime,
)

EVENTS: Table = Event.__table__  # type: ignore[assignment]
PROJECTS: Table = Project.__table__  # type: ignore[assignment]
ISSUES: Table = Issue.__table__  # type: ignore[assignment]
RELEASES: Table = Release.__table__  # type: ignore[assignment]
RUNS: Table = Run.__table__  # type: ignore[assignment]
ISSUE_SYNC: Table = IssueSync.__table__  # type: ignore[assignment]
PROJECT_SYNC: Table = ProjectSync.__table__  # type: ignore[assignment]
CHILD_TABLES: dict[str, Table] = {t.name: t for t in EVENT_CHILD_TABLES}


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@dataclass(frozen=True)
class WriteResult:
    """What one ``write_events`` call did."""

    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    # hollow copies (no body: sentry-api.md, Correction 6) left unwritten over a complete
    # archived event; counted, not stored, so the archived rows stay byte for byte
    hollow_ignored: int = 0

    def __add__(self, other: WriteResult) -> WriteResult:
        return WriteResult(
            self.inserted + other.inserted,
            self.updated + other.updated,
            self.unchanged + other.unchanged,
            self.hollow_ignored + other.hollow_ignored,
        )


class IssueWalkRow(TypedDict):
    """A row of ``sync_issues``: the checkpoint of one issue's event walk.

    A plain mapping, because storage never imports the sync engine: the engine turns it into
    its own record (``archiver.sync.state.IssueWalk``). ``status`` is the stored word.
    """

    issue_id: int
    project_id: int
    status: str
    synced_until: dt.datetime | None
    walk_start: dt.datetime | None
    walk_end: dt.datetime | None
    walk_cursor: str | None
    walk_events: int


@dataclass(frozen=True)
class EncodedEvent:
    """A normalized event as the writer stores it, values already converted for one database.

    ``event`` is the ``events`` row as a tuple in :data:`EVENT_COLUMNS` order; child rows are
    tuples in :data:`CHILD_COLUMNS` order, without ``event_pk`` (the writer prepends it).
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
    rank: int  # how rich the payload is (see _rank)

    def event_row(self) -> dict[str, Any]:
        """The ``events`` row as a dict (converted values), for tests and debugging."""
        return dict(zip(EVENT_COLUMNS, self.event, strict=True))


def encode_event(ev: NormalizedEvent | EncodedEvent, dialect: str) -> EncodedEvent:
    """Rows to tuples of values converted for ``dialect``, and the raw JSON's SHA-256.

    Pure, so it runs in any process.
    """
    if isinstance(ev, EncodedEvent):
        return ev
    row = ev.event
    sha = hashlib.sha256(row["raw_json"].encode("utf-8", "surrogatepass")).hexdigest()
    values = _convert((*_pick_event(row), sha), _converters("events", dialect))
    children: dict[str, list[tuple[Any, ...]]] = {}
    for name, rows in ev.children.items():
        if rows:
            pick, convert = _pickers[name], _converters(name, dialect)
            children[name] = [_convert(pick(r), convert) for r in rows]
    return EncodedEvent(
        ev.project_id,
        ev.event_id,
        ev.issue_id,
        values,
        children,
        ev.release_version,
        ev.release,
        sha,
        _rank(bool(row.get("has_detail")), bool(row.get("is_full"))),
    )


def _insert_fn(conn: Connection) -> Any:
    name = conn.dialect.name
    if name == "postgresql":
        return postgresql.insert
    if name == "sqlite":
        return sqlite.insert
    raise NotImplementedError(f"unsupported database dialect: {name}")


def _rank(has_detail: bool, is_full: bool) -> int:
    """How rich a payload is: detail > full list item > slim or hollow item.

    A payload without a body (``is_full`` false) ranks lowest even when a detail endpoint
    served it: ``latest`` serves hollow events (sentry-api.md, Correction 6).
    """
    if not is_full:
        return 0
    return 2 if has_detail else 1


class Store:
    """The archive's only writer."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # ----------------------------------------------------------------- transactions

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A write transaction; on SQLite it takes the write lock at BEGIN (IMMEDIATE)."""
        with self.engine.connect() as conn:
            conn = conn.execution_options(sqlite_immediate=True)
            with conn.begin():
                yield conn

    # ----------------------------------------------------------------- generic upsert

    def upsert(
        self,
        conn: Connection,
        table: Table,
        rows: Sequence[Mapping[str, Any]],
        *,
        keys: Sequence[str],
        update_columns: Iterable[str] | None = None,
    ) -> None:
        """INSERT ... ON CONFLICT (keys) DO UPDATE (or DO NOTHING when nothing to update)."""
        if not rows:
            return
        insert_fn = _insert_fn(conn)
        columns = list(rows[0].keys())
        if update_columns is None:
            update_columns = [c for c in columns if c not in keys and c != "archived_at"]
        update_columns = list(update_columns)
        stmt = insert_fn(table)
        if update_columns:
            stmt = stmt.on_conflict_do_update(
                index_elements=list(keys),
                set_={c: stmt.excluded[c] for c in update_columns},
            )
        else:
            stmt = stmt.on_conflict_do_nothing(index_elements=list(keys))
        # executemany: one compiled statement, the driver loops (sqlite3 in C, psycopg pipelined)
        conn.execute(stmt, [dict(r) for r in rows])

    def _insert_many(
        self, conn: Connection, table: Table, params: Sequence[tuple[Any, ...]]
    ) -> None:
        """Plain bulk INSERT of child rows (``event_pk`` first, converted values)."""
        self._insert_rows(conn, table, ("event_pk", *CHILD_COLUMNS[table.name]), params)

    def _insert_rows(
        self,
        conn: Connection,
        table: Table,
        columns: Sequence[str],
        params: Sequence[tuple[Any, ...]],
        suffix: str = "",
    ) -> None:
        """Multi-row ``INSERT ... VALUES`` of converted tuples, straight to the driver.

        Events and their child rows (tens per event) are the bulk of the writes, so
        SQLAlchemy's per-row parameter processing is skipped: :func:`encode_event` converted
        the values already, the way SQLAlchemy would store them. And one statement carries
        many rows: ``executemany`` steps SQLite once per row, releasing and re-taking the GIL
        each time. ``suffix`` follows the VALUES (an ``ON CONFLICT`` clause).
        """
        if not params:
            return
        mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
        preparer = conn.dialect.identifier_preparer
        head = (
            f"INSERT INTO {preparer.format_table(table)} "
            f"({', '.join(preparer.quote(c) for c in columns)}) VALUES "
        )
        json_cast = conn.dialect.name == "postgresql"
        marks = [
            f"CAST({mark} AS JSONB)" if json_cast and isinstance(table.c[c].type, JSON) else mark
            for c in columns
        ]
        one = f"({', '.join(marks)})"
        # Always the same two statement texts per table (a full chunk, one row): the driver
        # caches prepared statements by text, and a big one costs memory while cached.
        size = max(1, min(MULTI_ROW_MAX, _max_params(conn) // len(columns)))
        full = len(params) // size * size if size > 1 else 0
        if full:
            chunk_sql = head + ", ".join([one] * size) + suffix
            for start in range(0, full, size):
                conn.exec_driver_sql(
                    chunk_sql, tuple(itertools.chain.from_iterable(params[start : start + size]))
                )
        if full < len(params):
            conn.exec_driver_sql(head + one + suffix, params[full:])

    # ----------------------------------------------------------------- discovery objects

    def upsert_projects(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        now = utcnow()
        self.upsert(conn, PROJECTS, [{**r, "updated_at": now} for r in rows], keys=["id"])

    def upsert_issues(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        now = utcnow()
        self.ensure_projects(conn, {int(r["project_id"]) for r in rows})
        self.upsert(conn, ISSUES, [{**r, "updated_at": now} for r in rows], keys=["id"])

    def upsert_releases(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        self.upsert(conn, RELEASES, rows, keys=["version"])

    def ensure_projects(self, conn: Connection, project_ids: Iterable[int]) -> None:
        """Placeholder rows so foreign keys hold before a project's details are known."""
        rows = [{"id": pid} for pid in sorted(set(project_ids))]
        self.upsert(conn, PROJECTS, rows, keys=["id"], update_columns=())

    def ensure_issues(self, conn: Connection, issues: Mapping[int, int]) -> None:
        """Placeholder rows (issue id -> project id) for events of issues not yet listed."""
        self.ensure_projects(conn, issues.values())
        rows = [{"id": iid, "project_id": pid} for iid, pid in sorted(issues.items())]
        self.upsert(conn, ISSUES, rows, keys=["id"], update_columns=())

    def times_seen(self, conn: Connection, issue_ids: Sequence[int]) -> dict[int, int | None]:
        """Stored lifetime event counts of these issues (absent ones are left out)."""
        found: dict[int, int | None] = {}
        for chunk in _chunks(issue_ids):
            rows = conn.execute(
                select(ISSUES.c.id, ISSUES.c.times_seen).where(ISSUES.c.id.in_(chunk))
            )
            found.update((int(i), n) for i, n in rows)
        return found

    def archived_counts(self, conn: Connection, issue_ids: Sequence[int]) -> dict[int, int]:
        """Archived events per issue."""
        if not issue_ids:
            return {}
        rows = conn.execute(
            select(EVENTS.c.issue_id, func.count())
            .where(EVENTS.c.issue_id.in_(issue_ids))
            .group_by(EVENTS.c.issue_id)
        )
        return {int(i): int(n) for i, n in rows}

    def known_releases(self, conn: Connection, versions: Iterable[str]) -> set[str]:
        wanted = sorted(set(versions))
        if not wanted:
            return set()
        found = conn.execute(select(RELEASES.c.version).where(RELEASES.c.version.in_(wanted)))
        return {row[0] for row in found}

    # ----------------------------------------------------------------- events

    def write_events(
        self, conn: Connection, events: Sequence[NormalizedEvent | EncodedEvent]
    ) -> WriteResult:
        """Upsert a batch of events and replace the child rows of those that changed."""
        if not events:
            return WriteResult()
        dialect = conn.dialect.name
        batch: dict[tuple[int, str], EncodedEvent] = {}
        for ev in events:  # the last copy of an event in a batch wins
            batch[(ev.project_id, ev.event_id)] = encode_event(ev, dialect)

        self.ensure_issues(
            conn, {ev.issue_id: ev.project_id for ev in batch.values() if ev.issue_id is not None}
        )
        self.ensure_projects(conn, {ev.project_id for ev in batch.values()})

        existing = self._existing(conn, batch.keys())
        stamp = _converter(EVENTS.c.updated_at.type, dialect)(utcnow())
        to_write: list[tuple[Any, ...]] = []
        written: list[tuple[int, str]] = []
        changed_pks: list[int] = []
        inserted = updated = unchanged = hollow = 0
        for key, ev in batch.items():
            old = existing.get(key)
            if old is not None:
                pk, old_sha, old_rank = old
                if old_sha == ev.sha256 or ev.rank < old_rank:
                    unchanged += 1
                    if old_sha != ev.sha256 and ev.rank == 0 and old_rank > 0:
                        hollow += 1  # (a slim list item ranks 0 too; it is counted alike)
                    continue
                changed_pks.append(pk)
                updated += 1
            else:
                inserted += 1
            to_write.append((*ev.event, stamp, stamp))  # archived_at, updated_at
            written.append(key)

        if changed_pks:
            for table in CHILD_TABLES.values():
                conn.execute(delete(table).where(table.c.event_pk.in_(changed_pks)))
        if to_write:
            preparer = conn.dialect.identifier_preparer
            # archived_at is kept: it says when the event first entered the archive
            conflict = " ON CONFLICT (project_id, event_id) DO UPDATE SET " + ", ".join(
                f"{preparer.quote(c)} = excluded.{preparer.quote(c)}"
                for c in (*EVENT_COLUMNS, "updated_at")
                if c not in ("project_id", "event_id")
            )
            self._insert_rows(
                conn, EVENTS, (*EVENT_COLUMNS, "archived_at", "updated_at"), to_write, conflict
            )
            pks = {k: v[0] for k, v in self._existing(conn, written).items()}
            children: dict[str, list[tuple[Any, ...]]] = {name: [] for name in CHILD_TABLES}
            for key in written:
                pk_prefix = (pks[key],)
                for name, rows in batch[key].children.items():
                    children[name].extend([pk_prefix + r for r in rows])
            for name, params in children.items():
                self._insert_many(conn, CHILD_TABLES[name], params)
        return WriteResult(inserted, updated, unchanged, hollow)

    def _existing(
        self, conn: Connection, keys: Iterable[tuple[int, str]]
    ) -> dict[tuple[int, str], tuple[int, str | None, int]]:
        """(project_id, event_id) -> (events.id, raw_sha256, richness) for stored events."""
        keys = set(keys)
        by_project: dict[int, list[str]] = {}
        for pid, eid in keys:
            by_project.setdefault(pid, []).append(eid)
        found: dict[tuple[int, str], tuple[int, str | None, int]] = {}
        # project_id leads the natural key's unique index: both columns in the WHERE clause
        # make this an index lookup, not a scan of every archived event.
        for pid, eids in by_project.items():
            eids.sort()
            for chunk in _chunks(eids):
                rows = conn.execute(
                    select(
                        EVENTS.c.id,
                        EVENTS.c.event_id,
                        EVENTS.c.raw_sha256,
                        EVENTS.c.has_detail,
                        EVENTS.c.is_full,
                    ).where(EVENTS.c.project_id == pid, EVENTS.c.event_id.in_(chunk))
                )
                for pk, eid, sha, has_detail, is_full in rows:
                    found[(pid, eid)] = (pk, sha, _rank(bool(has_detail), bool(is_full)))
        return found

    # ----------------------------------------------------------------- checkpoints

    def issue_walk(self, conn: Connection, issue_id: int) -> IssueWalkRow | None:
        row = conn.execute(select(ISSUE_SYNC).where(ISSUE_SYNC.c.issue_id == issue_id)).first()
        return _issue_walk(dict(row._mapping)) if row is not None else None

    def issue_walks(self, conn: Connection, project_id: int) -> dict[int, IssueWalkRow]:
        rows = conn.execute(select(ISSUE_SYNC).where(ISSUE_SYNC.c.project_id == project_id))
        return {int(r.issue_id): _issue_walk(dict(r._mapping)) for r in rows}

    def save_issue_walk(
        self, conn: Connection, walk: IssueWalkRow, *, error: str | None = None
    ) -> None:
        row = {**_issue_walk(walk), "last_error": error, "updated_at": utcnow()}
        self.upsert(conn, ISSUE_SYNC, [row], keys=["issue_id"])

    def project_sync(self, conn: Connection, project_id: int) -> Mapping[str, Any] | None:
        row = conn.execute(
            select(PROJECT_SYNC).where(PROJECT_SYNC.c.project_id == project_id)
        ).first()
        return dict(row._mapping) if row is not None else None

    def save_project_sync(self, conn: Connection, project_id: int, **values: Any) -> None:
        row = {"project_id": project_id, **values, "updated_at": utcnow()}
        self.upsert(conn, PROJECT_SYNC, [row], keys=["project_id"])

    # ----------------------------------------------------------------- runs

    def start_run(self, command: str, **values: Any) -> int:
        with self.transaction() as conn:
            result = conn.execute(
                insert(RUNS).values(
                    command=command,
                    started_at=utcnow(),
                    outcome="running",
                    host=socket.gethostname(),
                    pid=os.getpid(),
                    **values,
                )
            )
            pk = result.inserted_primary_key
            assert pk is not None
            return int(pk[0])

    def finish_run(self, run_id: int, outcome: str, **values: Any) -> None:
        with self.transaction() as conn:
            conn.execute(
                update(RUNS)
                .where(RUNS.c.id == run_id)
                .values(outcome=outcome, finished_at=utcnow(), **values)
            )

    # ----------------------------------------------------------------- issue fates

    def mark_issue_merged(self, conn: Connection, issue_id: int, into: int) -> None:
        """Sentry answered for the issue with another one's events: it was merged there."""
        conn.execute(
            update(ISSUES)
            .where(ISSUES.c.id == issue_id)
            .values(merged_into_id=into, updated_at=utcnow())
        )

    def mark_issue_gone(self, conn: Connection, issue_id: int) -> None:
        """The issue answers 404 (deleted): its archived events stay, dated by ``gone_at``."""
        now = utcnow()
        conn.execute(
            update(ISSUES).where(ISSUES.c.id == issue_id).values(gone_at=now, updated_at=now)
        )

    def release_versions(self) -> set[str]:
        """Every archived release version (a sync fetches each release once per archive)."""
        with self.engine.connect() as conn:
            return {str(r[0]) for r in conn.execute(select(RELEASES.c.version))}


def _issue_walk(m: Mapping[str, Any]) -> IssueWalkRow:
    """The checkpoint's columns of a ``sync_issues`` row (or of a row to save)."""
    return IssueWalkRow(
        issue_id=m["issue_id"],
        project_id=m["project_id"],
        status=str(m["status"]),
        synced_until=m["synced_until"],
        walk_start=m["walk_start"],
        walk_end=m["walk_end"],
        walk_cursor=m["walk_cursor"],
        walk_events=m["walk_events"],
    )


MULTI_ROW_MAX = 100  # rows per multi-row INSERT statement
IN_LIST_MAX = 500  # values per IN (...): bound parameters per statement are limited


def _chunks(values: Sequence[Any]) -> Iterator[Sequence[Any]]:
    """``values`` in slices short enough for one ``IN (...)`` list."""
    for start in range(0, len(values), IN_LIST_MAX):
        yield values[start : start + IN_LIST_MAX]


# The events row's columns in the order of its tuple (raw_sha256 last; the writer adds
# archived_at and updated_at; id is the database's).
EVENT_COLUMNS: tuple[str, ...] = (
    *(
        c.name
        for c in EVENTS.columns
        if c.name not in ("id", "raw_sha256", "archived_at", "updated_at")
    ),
    "raw_sha256",
)

# Child row columns in the order of their tuples (``event_pk`` left out: the writer adds it).
CHILD_COLUMNS: dict[str, tuple[str, ...]] = {
    t.name: tuple(c.name for c in t.columns if c.name != "event_pk") for t in EVENT_CHILD_TABLES
}


def _picker(columns: tuple[str, ...]) -> Callable[[Mapping[str, Any]], tuple[Any, ...]]:
    """A row dict's values as a tuple in ``columns`` order (itemgetter, in C)."""
    if len(columns) == 1:
        (only,) = columns
        return lambda row: (row[only],)
    return operator.itemgetter(*columns)


_pickers = {name: _picker(cols) for name, cols in CHILD_COLUMNS.items()}
_pick_event = _picker(EVENT_COLUMNS[:-1])  # raw_sha256 is computed, not normalized


def _max_params(conn: Connection) -> int:
    """Bound parameters one statement may carry on this database."""
    if conn.dialect.name == "sqlite":
        import sqlite3

        return 32766 if sqlite3.sqlite_version_info >= (3, 32, 0) else 999
    return 65535  # PostgreSQL's protocol limit


def _identity(value: Any) -> Any:
    return value


# One encoder for every value: json.dumps with options builds a new encoder per call.
_encode_json = json.JSONEncoder(ensure_ascii=False, allow_nan=False).encode


def _json_value(value: Any) -> Any:
    return None if value is None else _encode_json(value)


def _sqlite_datetime(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return value.strftime("%Y-%m-%d %H:%M:%S.%f")


def _pg_datetime(value: dt.datetime | None) -> dt.datetime | None:
    """UTCDateTime's rule: a naive value is UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=dt.timezone.utc)


def _sqlite_date(value: dt.date | None) -> str | None:
    return None if value is None else value.isoformat()


def _converter(type_: Any, dialect: str) -> Callable[[Any], Any]:
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
        conv = _converter(types[column].type, dialect)
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
