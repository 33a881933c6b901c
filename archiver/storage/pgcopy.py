"""PostgreSQL's bulk write: events and their child rows sent with ``COPY ... FROM STDIN``.

Binding each value of a multi-row INSERT cost the writer most of its CPU on PostgreSQL; COPY
takes the rows as data the workers already made (:class:`~archiver.storage.encode.CopyRows`:
``events`` rows in COPY's binary format, the rest in its text format), so the writer only
joins bytes. The guarantees stay the store's:

* ``events`` rows of events the archive does not hold are copied straight into ``events``,
  with ids drawn from its sequence first (COPY returns nothing). The store read which events
  are stored in this same transaction. Another writer may insert the same event at once (the
  writer's other lane, when two issues list one event while Sentry merges them: see
  :mod:`archiver.sync.lanes`): the natural key's unique index then fails one of the two pages
  instead of storing a second copy, and that page is written again
  (:mod:`archiver.storage.conflicts`), finding the event stored.
* ``events`` rows that replace stored ones go through a staging table, then one
  ``INSERT ... SELECT ... ON CONFLICT (project_id, event_id) DO UPDATE``: ``archived_at`` of
  the stored row is kept, and ``RETURNING`` gives the primary keys.
* Child rows are copied straight into their tables: the store writes children only for events
  that are new or whose old child rows it has just deleted, so every one of them is new.
* The store decides which events are written (unchanged ones and poorer copies are left out,
  see :mod:`archiver.storage.plan`) before anything reaches this module.
* Everything runs on the caller's connection, in its transaction: a page and its checkpoint
  still commit together.

The staging table is a temporary table of the session, emptied at every commit (and by the
statement that reads it). ``CREATE ... IF NOT EXISTS`` before each use costs one round trip and
stays right when a rolled-back transaction took the table away with it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError

from archiver.storage.encode import CHILD_COLUMNS, EVENT_COLUMNS, CopyRows, copy_field
from archiver.storage.models import CHILD_TABLES, EVENTS
from archiver.storage.pgbinary import HEADER, TRAILER, field_count, field_encoder, int8_field
from archiver.storage.stacks import FRAME_VALUES, STACK_FRAMES

STAGE = "archiver_events_stage"
_SESSION_READY = "archiver_write_session"  # key in the pooled connection's info
# Large values (the raw JSON above all) are compressed with LZ4 rather than pglz: the server
# spends a good part of a backfill compressing them, LZ4 does it several times faster for
# about the same size. A server without LZ4 (or before 14) keeps its default.
_SESSION_SQL = (
    "DO $$ BEGIN SET default_toast_compression = 'lz4'; EXCEPTION WHEN OTHERS THEN NULL; END $$"
)
_STAGE_COLUMNS = (*EVENT_COLUMNS, "archived_at", "updated_at")
# What the writer puts in front of a worker's binary ``events`` row (CopyRows.event): the
# field count, and the id for a row copied straight into ``events``.
_STAGED_ROW = field_count(len(_STAGE_COLUMNS))
_NEW_ROW = field_count(1 + len(_STAGE_COLUMNS))
_stamp_field = field_encoder(EVENTS.c.updated_at.type)  # archived_at's type too


def _quoted(conn: Connection, columns: Sequence[str]) -> str:
    preparer = conn.dialect.identifier_preparer
    return ", ".join(preparer.quote(c) for c in columns)


def prepare_session(conn: Connection) -> None:
    """Settings of the writer's session, made once per connection before its first write.

    Committed at once (a rolled-back transaction would undo a ``SET``); the caller is
    outside any transaction.
    """
    info = conn.connection.info
    if info.get(_SESSION_READY):
        return
    try:
        conn.exec_driver_sql(_SESSION_SQL)
        conn.commit()
    except DBAPIError:  # no PL/pgSQL for this role: the server's defaults stay
        conn.rollback()
    info[_SESSION_READY] = True


def create_stage(conn: Connection) -> None:
    """Create the session's staging table for ``events`` rows unless it exists."""
    conn.exec_driver_sql(
        f"CREATE TEMP TABLE IF NOT EXISTS {STAGE} ON COMMIT DELETE ROWS AS "
        f"SELECT {_quoted(conn, _STAGE_COLUMNS)} "
        f"FROM {conn.dialect.identifier_preparer.format_table(EVENTS)} WITH NO DATA"
    )


def write_copied(
    conn: Connection,
    events: Mapping[tuple[int, str], CopyRows],
    stamp: dt.datetime,
    new: Collection[tuple[int, str]] = (),
    ids: Sequence[int] | None = None,
) -> None:
    """Write the ``events`` rows of ``events`` and insert all of their child rows.

    ``new`` are the events the archive does not hold (the store read that in this
    transaction; a concurrent insert of one of them fails the page, see above): their rows are
    copied straight into ``events`` with ids drawn from its sequence. The others replace
    stored rows through the staging table. ``stamp`` is the ``archived_at`` of new rows and
    the ``updated_at`` of every row written. ``ids``: the new rows' ids, in the order of
    ``events``, drawn from the sequence by the caller (the store draws them in blocks, not a
    round trip per page); drawn here when None.
    """
    if not events:
        return
    stamps = _stamp_field(stamp) * 2  # archived_at, updated_at
    if conn.dialect.driver != "psycopg":  # the URL named another driver explicitly
        raise NotImplementedError("PostgreSQL archives are written with psycopg 3 (psycopg)")
    driver: Any = conn.connection.driver_connection  # psycopg.Connection
    cursor = driver.cursor()
    try:
        pks = _copy_new(conn, cursor, [(k, events[k]) for k in events if k in new], stamps, ids)
        changed = [rows for k, rows in events.items() if k not in new]
        if changed:
            create_stage(conn)
            data = [HEADER]
            for rows in changed:
                data += (_STAGED_ROW, rows.event, stamps)
            data.append(TRAILER)
            columns = _quoted(conn, _STAGE_COLUMNS)
            with cursor.copy(f"COPY {STAGE} ({columns}) FROM STDIN (FORMAT BINARY)") as out:
                out.write(b"".join(data))
            cursor.execute(_upsert_sql(conn))
            pks.update({(int(p), str(e)): int(i) for i, p, e in cursor.fetchall()})
        texts = {key: b"%d" % pk for key, pk in pks.items()}  # child rows are COPY text
        for name, table in CHILD_TABLES.items():
            blocks = [
                pk + block[:-1].replace(b"\n", b"\n" + pk) + b"\n"
                for key, pk in texts.items()
                if (block := events[key].children.get(name))
            ]
            if blocks:
                columns = _quoted(conn, ("event_pk", *CHILD_COLUMNS[name]))
                with cursor.copy(
                    f"COPY {conn.dialect.identifier_preparer.format_table(table)} ({columns}) "
                    "FROM STDIN"
                ) as out:
                    out.write(b"".join(blocks))
    finally:
        cursor.close()


def copy_stack_frames(conn: Connection, blocks: Mapping[bytes, bytes]) -> None:
    """COPY the frames of stacks this transaction just inserted into ``stacks`` (so none of
    them is stored yet): each block's lines get their stack's key in front."""
    if conn.dialect.driver != "psycopg":
        raise NotImplementedError("PostgreSQL archives are written with psycopg 3 (psycopg)")
    driver: Any = conn.connection.driver_connection
    lines = []
    for key, block in sorted(blocks.items()):
        prefix = copy_field(key).encode()
        lines.append(prefix + block[:-1].replace(b"\n", b"\n" + prefix) + b"\n")
    columns = _quoted(conn, ("stack_key", "position", *FRAME_VALUES))
    table = conn.dialect.identifier_preparer.format_table(STACK_FRAMES)
    with driver.cursor() as cursor, cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as out:
        out.write(b"".join(lines))


def _copy_new(
    conn: Connection,
    cursor: Any,
    new: Sequence[tuple[tuple[int, str], CopyRows]],
    stamps: bytes,
    ids: Sequence[int] | None = None,
) -> dict[tuple[int, str], int]:
    """COPY the rows of events not yet archived into ``events`` (with ``ids``, or ids drawn
    from its sequence now); their ids."""
    if not new:
        return {}
    table = conn.dialect.identifier_preparer.format_table(EVENTS)
    if ids is None:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
            (table, len(new)),
        )
        ids = [pk for (pk,) in cursor.fetchall()]
    pks = {key: int(pk) for (key, _), pk in zip(new, ids, strict=True)}
    data = [HEADER]
    for key, rows in new:
        data += (_NEW_ROW + int8_field(pks[key]), rows.event, stamps)
    data.append(TRAILER)
    columns = _quoted(conn, ("id", *_STAGE_COLUMNS))
    with cursor.copy(f"COPY {table} ({columns}) FROM STDIN (FORMAT BINARY)") as out:
        out.write(b"".join(data))
    return pks


def _upsert_sql(conn: Connection) -> str:
    """Move the staged rows into ``events``: inserted, or replacing the stored row's values
    (``archived_at`` kept: it says when the event first entered the archive)."""
    preparer = conn.dialect.identifier_preparer
    columns = _quoted(conn, _STAGE_COLUMNS)
    updates = ", ".join(
        f"{preparer.quote(c)} = excluded.{preparer.quote(c)}"
        for c in (*EVENT_COLUMNS, "updated_at")
        if c not in ("project_id", "event_id")
    )
    return (
        f"WITH staged AS (DELETE FROM {STAGE} RETURNING {columns}) "
        f"INSERT INTO {preparer.format_table(EVENTS)} ({columns}) SELECT {columns} FROM staged "
        f"ON CONFLICT (project_id, event_id) DO UPDATE SET {updates} "
        "RETURNING id, project_id, event_id"
    )
