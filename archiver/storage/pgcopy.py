"""PostgreSQL's bulk write: events and their child rows sent with ``COPY ... FROM STDIN``.

Binding each value of a multi-row INSERT cost the writer most of its CPU on PostgreSQL; COPY
takes the rows as text the workers already made (:class:`~archiver.storage.encode.CopyRows`),
so the writer only joins bytes. The guarantees stay the store's:

* ``events`` rows go through a staging table, then one ``INSERT ... SELECT ... ON CONFLICT
  (project_id, event_id) DO UPDATE``: the natural key still decides (the same event twice is
  one row), ``archived_at`` of a stored event is kept, and ``RETURNING`` gives the primary
  keys of the rows written.
* Child rows are copied straight into their tables: the store writes children only for events
  that are new or whose old child rows it has just deleted, so every one of them is new.
* The store decides which events are written (unchanged ones and poorer copies are left out,
  see ``store._plan``) before anything reaches this module.
* Everything runs on the caller's connection, in its transaction: a page and its checkpoint
  still commit together.

The staging table is a temporary table of the session, emptied at every commit (and by the
statement that reads it). ``CREATE ... IF NOT EXISTS`` before each use costs one round trip and
stays right when a rolled-back transaction took the table away with it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection

from archiver.storage.encode import CHILD_COLUMNS, EVENT_COLUMNS, CopyRows, copy_field
from archiver.storage.models import CHILD_TABLES, EVENTS

STAGE = "archiver_events_stage"
_STAGE_COLUMNS = (*EVENT_COLUMNS, "archived_at", "updated_at")


def _quoted(conn: Connection, columns: Sequence[str]) -> str:
    preparer = conn.dialect.identifier_preparer
    return ", ".join(preparer.quote(c) for c in columns)


def create_stage(conn: Connection) -> None:
    """Create the session's staging table for ``events`` rows unless it exists."""
    conn.exec_driver_sql(
        f"CREATE TEMP TABLE IF NOT EXISTS {STAGE} ON COMMIT DELETE ROWS AS "
        f"SELECT {_quoted(conn, _STAGE_COLUMNS)} "
        f"FROM {conn.dialect.identifier_preparer.format_table(EVENTS)} WITH NO DATA"
    )


def write_copied(
    conn: Connection, events: Mapping[tuple[int, str], CopyRows], stamp: dt.datetime
) -> None:
    """Upsert the ``events`` rows of ``events`` and insert all of their child rows.

    ``stamp`` is the ``archived_at`` of new rows and the ``updated_at`` of every row written.
    """
    if not events:
        return
    create_stage(conn)
    preparer = conn.dialect.identifier_preparer
    stamps = f"\t{copy_field(stamp)}\t{copy_field(stamp)}\n".encode()
    driver: Any = conn.connection.driver_connection  # psycopg.Connection
    cursor = driver.cursor()
    try:
        with cursor.copy(f"COPY {STAGE} ({_quoted(conn, _STAGE_COLUMNS)}) FROM STDIN") as copy:
            copy.write(b"".join([rows.event + stamps for rows in events.values()]))
        cursor.execute(_upsert_sql(conn))
        pks = {(int(p), str(e)): b"%d" % i for i, p, e in cursor.fetchall()}
        for name, table in CHILD_TABLES.items():
            blocks = [
                pk + block[:-1].replace(b"\n", b"\n" + pk) + b"\n"
                for key, pk in pks.items()
                if (block := events[key].children.get(name))
            ]
            if blocks:
                columns = _quoted(conn, ("event_pk", *CHILD_COLUMNS[name]))
                with cursor.copy(
                    f"COPY {preparer.format_table(table)} ({columns}) FROM STDIN"
                ) as copy:
                    copy.write(b"".join(blocks))
    finally:
        cursor.close()


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
