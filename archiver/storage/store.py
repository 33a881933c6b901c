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
import itertools
import os
import socket
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypedDict

from sqlalchemy import (
    JSON,
    Connection,
    Engine,
    Table,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from archiver.normalize import NormalizedEvent
from archiver.storage.base import chunks, max_params
from archiver.storage.base import utcnow as utcnow
from archiver.storage.encode import (
    CHILD_COLUMNS,
    EVENT_COLUMNS,
    EncodedEvent,
    converter,
    encode_event,
    with_codec,
)

# The tables as Core objects are the schema's; they are importable from here too, where the
# writer's callers have always found them.
from archiver.storage.models import CHILD_TABLES as CHILD_TABLES
from archiver.storage.models import EVENTS as EVENTS
from archiver.storage.models import ISSUE_SYNC as ISSUE_SYNC
from archiver.storage.models import ISSUES as ISSUES
from archiver.storage.models import PROJECT_SYNC as PROJECT_SYNC
from archiver.storage.models import PROJECTS as PROJECTS
from archiver.storage.models import RELEASES as RELEASES
from archiver.storage.models import RUNS as RUNS
from archiver.storage.pgcopy import copy_stack_frames, write_copied
from archiver.storage.plan import WriteResult as WriteResult
from archiver.storage.plan import plan_writes, stored_events
from archiver.storage.rawjson import RawCodec
from archiver.storage.rawtrain import CodecState
from archiver.storage.session import EventIds, Sessions
from archiver.storage.stacks import FRAME_VALUES, STACK_FRAMES, StackRows, insert_stacks


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


def _insert_fn(conn: Connection) -> Any:
    """The dialect's own ``insert``, the one with ``ON CONFLICT`` (SQLite and PostgreSQL)."""
    name = conn.dialect.name
    if name == "postgresql":
        return postgresql.insert
    if name == "sqlite":
        return sqlite.insert
    raise NotImplementedError(f"unsupported database dialect: {name}")


class Store:
    """The archive's only writer."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._codecs = CodecState(engine)
        self.sessions = Sessions(engine)  # the writer pins its connection (sync.writer)
        # Issues and projects this store's commits stored: never deleted (purge keeps them)
        self._issues: set[int] = set()
        self._projects: set[int] = set()
        self._event_ids = EventIds()  # PostgreSQL's COPY

    def raw_codec(self) -> RawCodec | None:
        """How raw JSON is compressed now (SQLite; None on PostgreSQL): the page workers get
        it with each page (:mod:`archiver.storage.rawjson`). Thread-safe."""
        return self._codecs.codec()

    # ----------------------------------------------------------------- transactions

    @contextmanager
    def transaction(self, *, wait_for_disk: bool = True) -> Iterator[Connection]:
        """A write transaction; on SQLite it takes the write lock at BEGIN (IMMEDIATE).

        ``wait_for_disk=False`` (the sync's page writes) commits on PostgreSQL without
        waiting for the commit to reach the disk (``synchronous_commit = off``, for this
        transaction only, or for the session of a connection :meth:`pinned` by the writer),
        which is what SQLite's WAL with ``synchronous=NORMAL`` does for every commit. The
        guarantee stays the same: the commit is atomic and in order, so a server crash may
        lose the last commits (a fraction of a second of them) but never part of one; a page
        and its checkpoint are lost together, and the walk resumes from the last checkpoint
        that reached the disk and fetches those pages again. A later commit that waits for
        the disk (a run's end, another process's) makes every earlier one durable with it.
        """
        with self.sessions.transaction(wait_for_disk=wait_for_disk) as conn:
            try:
                yield conn
            except BaseException:
                self._codecs.rolled_back()
                raise
        self._codecs.committed()

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
        size = max(1, min(MULTI_ROW_MAX, max_params(conn) // len(columns)))
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
        """Insert or refresh ``projects`` rows (``normalize_project``); archived_at is kept."""
        now = utcnow()
        self.upsert(conn, PROJECTS, [{**r, "updated_at": now} for r in rows], keys=["id"])
        self.sessions.after_commit(
            functools.partial(self._projects.update, [r["id"] for r in rows])
        )

    def upsert_issues(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Insert or refresh ``issues`` rows, with placeholder projects for the foreign key."""
        now = utcnow()
        self.ensure_projects(conn, {int(r["project_id"]) for r in rows})
        self.upsert(conn, ISSUES, [{**r, "updated_at": now} for r in rows], keys=["id"])
        self.sessions.after_commit(functools.partial(self._issues.update, [r["id"] for r in rows]))

    def upsert_releases(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Insert or refresh ``releases`` rows, keyed by version."""
        self.upsert(conn, RELEASES, rows, keys=["version"])

    def ensure_projects(self, conn: Connection, project_ids: Iterable[int]) -> None:
        """Placeholder rows so foreign keys hold before a project's details are known (but
        for those this store's commits stored: they are never deleted)."""
        ids = set(project_ids) - self._projects
        rows = [{"id": pid} for pid in sorted(ids)]
        self.upsert(conn, PROJECTS, rows, keys=["id"], update_columns=())
        self.sessions.after_commit(functools.partial(self._projects.update, ids))

    def ensure_issues(self, conn: Connection, issues: Mapping[int, int]) -> set[int]:
        """Placeholder rows (issue id -> project id) for events of issues not yet listed (the
        writer's every page): but for those this store's commits stored (never deleted).
        Returns the projects it ensured with them."""
        issues = {i: p for i, p in issues.items() if i not in self._issues}
        self.ensure_projects(conn, issues.values())
        rows = [{"id": iid, "project_id": pid} for iid, pid in sorted(issues.items())]
        self.upsert(conn, ISSUES, rows, keys=["id"], update_columns=())
        self.sessions.after_commit(functools.partial(self._issues.update, issues))
        return set(issues.values())

    def times_seen(self, conn: Connection, issue_ids: Sequence[int]) -> dict[int, int | None]:
        """Stored lifetime event counts of these issues (absent ones are left out)."""
        found: dict[int, int | None] = {}
        for chunk in chunks(issue_ids):
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

    # ----------------------------------------------------------------- events

    def write_events(
        self, conn: Connection, events: Sequence[NormalizedEvent | EncodedEvent]
    ) -> WriteResult:
        """Upsert a batch of events and replace the child rows of those that changed."""
        if not events:
            return WriteResult()
        dialect = conn.dialect.name
        codec = self._codecs.for_writer()
        batch: dict[tuple[int, str], EncodedEvent] = {}
        for ev in events:  # the last copy of an event in a batch wins
            encoded = encode_event(ev, dialect, codec=codec)
            batch[(ev.project_id, ev.event_id)] = with_codec(encoded, codec) if codec else encoded

        issues = {ev.issue_id: ev.project_id for ev in batch.values() if ev.issue_id is not None}
        ensured = self.ensure_issues(conn, issues)  # and their projects: a statement less
        self.ensure_projects(conn, {ev.project_id for ev in batch.values()} - ensured)

        existing = self._existing(conn, batch.keys())
        plan = plan_writes(batch, existing)
        if plan.changed_pks:
            for table in CHILD_TABLES.values():
                conn.execute(delete(table).where(table.c.event_pk.in_(plan.changed_pks)))
        self._write_stacks(conn, [batch[k] for k in plan.written])
        copied = {k: rows for k in plan.written if (rows := batch[k].copy) is not None}
        if copied:  # PostgreSQL, rows encoded for COPY
            new = copied.keys() - existing.keys()
            write_copied(conn, copied, utcnow(), new, self._event_ids.take(conn, len(new)))
        if len(copied) < len(plan.written):
            self._write_events(conn, batch, [k for k in plan.written if k not in copied])
        self._codecs.written(conn, len(plan.written))
        return plan.result

    def _write_stacks(self, conn: Connection, events: Iterable[EncodedEvent]) -> None:
        """Store the stacks of these events that the archive lacks, with their frames: before
        the events' ``event_stacks`` rows, which point at them."""
        rows: StackRows = {}
        blocks: dict[bytes, bytes] = {}
        for ev in events:
            rows.update(ev.stacks)
            if ev.copy is not None:
                blocks.update(ev.copy.stacks)
        counts = {key: block.count(b"\n") for key, block in blocks.items()}
        counts.update((key, len(frames)) for key, frames in rows.items())
        new = insert_stacks(conn, counts)
        copy_new = {key: blocks[key] for key in new if key not in rows}
        if copy_new:
            copy_stack_frames(conn, copy_new)
        params = [(key, *frame) for key in new if key in rows for frame in rows[key]]
        self._insert_rows(conn, STACK_FRAMES, ("stack_key", "position", *FRAME_VALUES), params)

    def _write_events(
        self,
        conn: Connection,
        batch: Mapping[tuple[int, str], EncodedEvent],
        written: Sequence[tuple[int, str]],
    ) -> None:
        """Upsert the ``events`` rows of ``written``, then insert all of their child rows."""
        stamp = converter(EVENTS.c.updated_at.type, conn.dialect.name)(utcnow())
        to_write = [(*batch[key].event, stamp, stamp) for key in written]  # archived/updated_at
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

    def _existing(
        self, conn: Connection, keys: Iterable[tuple[int, str]]
    ) -> dict[tuple[int, str], tuple[int, str | None, int]]:
        """(project_id, event_id) -> (events.id, raw_sha256, richness) for stored events."""
        return stored_events(conn, keys)

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
        """The project's discovery bookmark (its ``sync_projects`` row), None before the first."""
        row = conn.execute(
            select(PROJECT_SYNC).where(PROJECT_SYNC.c.project_id == project_id)
        ).first()
        return dict(row._mapping) if row is not None else None

    def save_project_sync(self, conn: Connection, project_id: int, **values: Any) -> None:
        """Write the given ``sync_projects`` columns, in the caller's transaction."""
        row = {"project_id": project_id, **values, "updated_at": utcnow()}
        self.upsert(conn, PROJECT_SYNC, [row], keys=["project_id"])

    # ----------------------------------------------------------------- runs

    def start_run(self, command: str, **values: Any) -> int:
        """Record a command run as ``running`` in its own transaction; returns its id.

        Committed at once, so a run killed later still leaves its trace in ``runs``.
        """
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
        """Record how a run ended (``success``, ``partial``, ``failed``, ``interrupted``)."""
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

    def clear_issues_gone(self, conn: Connection, issue_ids: Sequence[int]) -> None:
        """These issues answered again (listed, or walked): a 404 was not their end."""
        for chunk in chunks(issue_ids):
            conn.execute(
                update(ISSUES)
                .where(ISSUES.c.id.in_(chunk), ISSUES.c.gone_at.is_not(None))
                .values(gone_at=None, updated_at=utcnow())
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
