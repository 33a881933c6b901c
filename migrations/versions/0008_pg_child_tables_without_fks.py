"""PostgreSQL: the per-event rows carry no foreign keys (checked row by row, they cost a third
of the server's COPY time)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 19:00:00.000000

An event's child rows (tags, breadcrumbs, contexts, entries... about 29 per event) point at
``events.id`` through ``event_pk``, each with ``ON DELETE CASCADE``, and ``event_stacks`` rows
at ``stacks.stack_key``. PostgreSQL checks a foreign key once per inserted row (a query and a
row lock each; PostgreSQL 15 does not batch them): replaying a 10k-event archive's tables with
COPY, the checks took 1.1 s of the server's 3.3 s, and a backfill without them spent
0.24-0.26 instead of 0.36-0.38 ms of server CPU per event. So on PostgreSQL this revision drops them and
comments each ``event_pk`` column instead; the archiver keeps the link itself (an event's rows
are written in its transaction, replaced rows and those of purged events are deleted
explicitly). SQLite keeps its constraints: its checks are cheap, and it could drop them only by
rebuilding every child table.

The downgrade (PostgreSQL) deletes any row whose event is gone, as the cascade would have,
then adds the constraints back.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Every table with event_pk -> events.id ON DELETE CASCADE at revision 0007.
CHILD_TABLES = [
    "event_tags", "exceptions", "threads", "event_stacks", "frame_vars", "breadcrumbs",
    "requests", "contexts", "event_errors", "event_entries", "event_problems",
]
# archiver.storage.base.EVENT_PK_COMMENT, frozen here
EVENT_PK_COMMENT = (
    "events.id of the event this row belongs to. Not a foreign key on PostgreSQL: the "
    "archiver writes and deletes a row with its event (README, The schema)."
)


def _event_fk(table: str) -> str:
    return f"fk_{table}_event_pk_events"


STACK_FK = "fk_event_stacks_stack_key_stacks"


def _quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in CHILD_TABLES:
        # IF EXISTS: an archive whose constraints were dropped by hand (to measure) upgrades.
        op.execute(f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {_event_fk(table)}")
        op.execute(f"COMMENT ON COLUMN {table}.event_pk IS {_quoted(EVENT_PK_COMMENT)}")
    op.execute(f"ALTER TABLE event_stacks DROP CONSTRAINT IF EXISTS {STACK_FK}")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in CHILD_TABLES:
        op.execute(
            f"DELETE FROM {table} c WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.id = c.event_pk)"
        )
        op.execute(f"COMMENT ON COLUMN {table}.event_pk IS NULL")
        op.create_foreign_key(
            _event_fk(table), table, "events", ["event_pk"], ["id"], ondelete="CASCADE"
        )
    op.create_foreign_key(STACK_FK, "event_stacks", "stacks", ["stack_key"], ["stack_key"])
