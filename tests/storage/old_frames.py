"""The ``frames`` table as archives before migration 0007 held it, for tests of upgrades.

Before 0007 the writer stored an event's normalized ``frames`` rows as they were, JSON values
as the text of ``archiver.storage.encode``'s encoder; :func:`write_old_frames` does the same.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

from archiver.normalize import NormalizedEvent
from archiver.storage.base import JSONType
from archiver.storage.encode import encode_event
from archiver.storage.models import CHILD_TABLES, EVENTS
from archiver.storage.stacks import FRAME_COLUMNS
from archiver.storage.store import Store

_TYPES: dict[str, Any] = {
    "event_pk": BigInteger,
    "stack_kind": lambda: String(16),
    "stack_index": Integer,
    "is_raw": Boolean,
    "position": Integer,
    "lineno": BigInteger,
    "colno": BigInteger,
    "in_app": Boolean,
    "pre_context": lambda: JSONType,
    "post_context": lambda: JSONType,
    "vars": lambda: JSONType,
}
OLD_FRAMES = Table("frames", MetaData(), *(Column(c, _TYPES.get(c, Text)()) for c in FRAME_COLUMNS))
_JSON = {"pre_context", "post_context", "vars"}
_encode = json.JSONEncoder(ensure_ascii=False, allow_nan=False).encode


def write_old_frames(store: Store, conn: Connection, pk: int, ev: NormalizedEvent) -> None:
    """Insert the event's frames rows into a pre-0007 archive's ``frames`` table."""
    rows = [
        tuple(
            pk if c == "event_pk" else (_encode(r[c]) if c in _JSON and r[c] is not None else r[c])
            for c in FRAME_COLUMNS
        )
        for r in ev.children["frames"]
    ]
    store._insert_rows(conn, OLD_FRAMES, FRAME_COLUMNS, rows)


def write_old_children(store: Store, conn: Connection, pk: int, ev: NormalizedEvent) -> None:
    """Insert the event's child rows as a pre-0007 archive held them (frames in their table)."""
    for name, children in encode_event(ev, conn.dialect.name, copy=False).children.items():
        if name not in ("event_stacks", "frame_vars"):  # 0007's
            store._insert_many(conn, CHILD_TABLES[name], [(pk, *r) for r in children])
    write_old_frames(store, conn, pk, ev)


def write_0004(engine: Engine, events: Sequence[NormalizedEvent]) -> None:
    """What a writer at migration 0004 stored: every row, frames in the ``frames`` table."""
    store = Store(engine)
    with store.transaction() as conn:
        rows = [dict(ev.event) for ev in events]
        store.ensure_issues(conn, {e.issue_id: e.project_id for e in events if e.issue_id})
        store.ensure_projects(conn, {e.project_id for e in events})
        store.upsert(conn, EVENTS, rows, keys=["project_id", "event_id"])
        pks = store._existing(conn, [(ev.project_id, ev.event_id) for ev in events])
        for ev in events:
            pk = pks[(ev.project_id, ev.event_id)][0]
            write_old_children(store, conn, pk, ev)
