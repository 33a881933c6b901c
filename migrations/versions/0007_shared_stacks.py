"""shared stacks: stack frames stored once per distinct stack; frames becomes a view

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 13:30:00.000000

The events of an issue mostly share their stacks, yet ``frames`` held every frame of every
event (about 20 rows and 5 KB per event with its two indexes, the largest part of an archive
after the raw JSON). This revision stores each distinct stack once:

* ``stacks`` (``stack_key``: the first 16 bytes of the SHA-256 of the stack's frame values,
  computed as ``archiver.storage.stacks.stack_key`` does; ``frame_count``),
* ``stack_frames`` (the frames of a stack: every column of ``frames`` but the per-event ones),
* ``event_stacks`` (an event's stacks: kind, index, raw or not, thread id, stack key),
* ``frame_vars`` (``vars``, which differ per event; only frames that have them),

and replaces the ``frames`` table by a view of the same name, columns and rows. Existing rows
move over: their keys are computed here, in Python, from the values as stored (JSON values as
their text), and the values themselves are copied by SQL, exactly. On SQLite the new tables
are ``WITHOUT ROWID`` (each row lives in its primary key's b-tree; no second copy of the key).

The downgrade rebuilds the ``frames`` table from the view's rows.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KEY_BYTES = 16  # archiver.storage.stacks.KEY_BYTES, frozen here
CHUNK_ROWS = 50_000  # frames rows read per step of the move

# A frame's values after its position (stack_frames' columns, the key's input, in order).
VALUES = [
    "function", "raw_function", "module", "filename", "abs_path", "lineno", "colno", "in_app",
    "package", "platform", "instruction_addr", "symbol", "symbol_addr", "trust",
    "context_line", "pre_context", "post_context",
]
JSON_VALUES = {"pre_context", "post_context"}
KEY = ["event_pk", "stack_kind", "stack_index", "is_raw"]
COLUMNS = [*KEY, "position", "thread_id", *VALUES, "vars"]

VIEW = f"""
SELECT es.event_pk, es.stack_kind, es.stack_index, es.is_raw, sf.position, es.thread_id,
       {', '.join('sf.' + c for c in VALUES)}, fv.vars
FROM event_stacks es
JOIN stack_frames sf ON sf.stack_key = es.stack_key
LEFT JOIN frame_vars fv
  ON fv.event_pk = es.event_pk AND fv.stack_kind = es.stack_kind
 AND fv.stack_index = es.stack_index AND fv.is_raw = es.is_raw AND fv.position = sf.position
"""

_encode_json = json.JSONEncoder(ensure_ascii=False, allow_nan=False).encode


def _json() -> Any:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def _value_columns() -> list[sa.Column[Any]]:
    types: dict[str, Any] = {"lineno": sa.BigInteger(), "colno": sa.BigInteger(),
                             "in_app": sa.Boolean(), "pre_context": _json(),
                             "post_context": _json()}
    return [sa.Column(c, types.get(c, sa.Text()), nullable=True) for c in VALUES]


def _create_tables() -> None:
    op.create_table(
        'stacks',
        sa.Column('stack_key', sa.LargeBinary(), nullable=False),
        sa.Column('frame_count', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('stack_key', name=op.f('pk_stacks')),
        sqlite_with_rowid=False,
    )
    op.create_table(
        'stack_frames',
        sa.Column('stack_key', sa.LargeBinary(), nullable=False),
        sa.Column('position', sa.Integer(), autoincrement=False, nullable=False),
        *_value_columns(),
        sa.ForeignKeyConstraint(['stack_key'], ['stacks.stack_key'],
                                name=op.f('fk_stack_frames_stack_key_stacks'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('stack_key', 'position', name=op.f('pk_stack_frames')),
        sqlite_with_rowid=False,
    )
    op.create_index(op.f('ix_stack_frames_in_app_function'), 'stack_frames',
                    ['in_app', 'function'], unique=False)
    op.create_table(
        'event_stacks',
        sa.Column('event_pk', sa.BigInteger(), nullable=False),
        sa.Column('stack_kind', sa.String(length=16), nullable=False),
        sa.Column('stack_index', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('is_raw', sa.Boolean(), nullable=False),
        sa.Column('thread_id', sa.Text(), nullable=True),
        sa.Column('stack_key', sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(['event_pk'], ['events.id'],
                                name=op.f('fk_event_stacks_event_pk_events'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['stack_key'], ['stacks.stack_key'],
                                name=op.f('fk_event_stacks_stack_key_stacks')),
        sa.PrimaryKeyConstraint(*KEY, name=op.f('pk_event_stacks')),
        sqlite_with_rowid=False,
    )
    op.create_table(
        'frame_vars',
        sa.Column('event_pk', sa.BigInteger(), nullable=False),
        sa.Column('stack_kind', sa.String(length=16), nullable=False),
        sa.Column('stack_index', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('is_raw', sa.Boolean(), nullable=False),
        sa.Column('position', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('vars', _json(), nullable=False),
        sa.ForeignKeyConstraint(['event_pk'], ['events.id'],
                                name=op.f('fk_frame_vars_event_pk_events'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint(*KEY, 'position', name=op.f('pk_frame_vars')),
        sqlite_with_rowid=False,
    )


def _stack_key(frames: list[tuple[Any, ...]]) -> bytes:
    """archiver.storage.stacks.stack_key, frozen here."""
    text = _encode_json(frames).encode("utf-8", "surrogatepass")
    return hashlib.sha256(text).digest()[:KEY_BYTES]


def _frame_values(row: Sequence[Any]) -> tuple[Any, ...]:
    """(position, *VALUES) of a frames row read by _move, as the writer hashes them."""
    values = list(row[4:5]) + list(row[6:])
    in_app = 1 + VALUES.index("in_app")
    if values[in_app] is not None:
        values[in_app] = bool(values[in_app])  # SQLite hands back 0/1
    return tuple(values)


def _move(conn: sa.Connection) -> None:
    """Every stack of ``frames`` into the new tables, ``CHUNK_ROWS`` frames at a time."""
    pg = conn.dialect.name == "postgresql"
    read = [f"CAST({c} AS TEXT)" if pg and c in JSON_VALUES else c
            for c in [*KEY, "position", "thread_id", *VALUES]]
    where = " AND ".join(f"{c} = :{c}" for c in KEY)
    copy_frames = sa.text(
        f"INSERT INTO stack_frames (stack_key, position, {', '.join(VALUES)}) "
        f"SELECT :stack_key, position, {', '.join(VALUES)} FROM frames WHERE {where}"
    )
    insert_stack = sa.text("INSERT INTO stacks (stack_key, frame_count) VALUES (:k, :n)")
    insert_event_stack = sa.text(
        "INSERT INTO event_stacks (event_pk, stack_kind, stack_index, is_raw, thread_id, "
        "stack_key) VALUES (:event_pk, :stack_kind, :stack_index, :is_raw, :thread_id, :k)"
    )
    last = -1
    while True:
        upto = conn.execute(sa.text(
            "SELECT max(event_pk) FROM (SELECT event_pk FROM frames WHERE event_pk > :last "
            "ORDER BY event_pk LIMIT :n) chunk"), {"last": last, "n": CHUNK_ROWS}).scalar()
        if upto is None:
            return
        stacks: dict[tuple[Any, ...], list[tuple[Any, ...]]] = {}
        thread_ids: dict[tuple[Any, ...], Any] = {}
        for row in conn.execute(sa.text(
            f"SELECT {', '.join(read)} FROM frames WHERE event_pk > :last AND event_pk <= :upto "
            "ORDER BY event_pk, stack_kind, stack_index, is_raw, position"),
            {"last": last, "upto": upto},
        ):
            stack = tuple(row[:4])
            stacks.setdefault(stack, []).append(_frame_values(row))
            thread_ids.setdefault(stack, row[5])
        keys = {stack: _stack_key(frames) for stack, frames in stacks.items()}
        distinct = sorted(set(keys.values()))
        stored = {
            bytes(k) for (k,) in conn.execute(
                sa.text("SELECT stack_key FROM stacks WHERE stack_key IN :keys").bindparams(
                    sa.bindparam("keys", expanding=True)), {"keys": distinct})
        }
        new: dict[bytes, tuple[Any, ...]] = {}
        for stack, key in keys.items():
            if key not in stored:
                new.setdefault(key, stack)
        if new:
            conn.execute(insert_stack, [{"k": k, "n": len(stacks[s])} for k, s in new.items()])
            conn.execute(copy_frames, [
                {"stack_key": k, **dict(zip(KEY, s, strict=True))} for k, s in new.items()
            ])
        conn.execute(insert_event_stack, [
            {**dict(zip(KEY, s, strict=True)), "thread_id": thread_ids[s], "k": k}
            for s, k in keys.items()
        ])
        last = upto


def upgrade() -> None:
    conn = op.get_bind()
    _create_tables()
    _move(conn)
    op.execute(
        f"INSERT INTO frame_vars ({', '.join([*KEY, 'position', 'vars'])}) "
        f"SELECT {', '.join([*KEY, 'position', 'vars'])} FROM frames WHERE vars IS NOT NULL"
    )
    op.drop_index('ix_frames_in_app_function', table_name='frames')
    op.drop_table('frames')
    op.execute(f"CREATE VIEW frames AS {VIEW.strip()}")


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS frames")
    op.create_table(
        'frames',
        sa.Column('event_pk', sa.BigInteger(), nullable=False),
        sa.Column('stack_kind', sa.String(length=16), nullable=False),
        sa.Column('stack_index', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('is_raw', sa.Boolean(), nullable=False),
        sa.Column('position', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('thread_id', sa.Text(), nullable=True),
        *_value_columns(),
        sa.Column('vars', _json(), nullable=True),
        sa.ForeignKeyConstraint(['event_pk'], ['events.id'], name=op.f('fk_frames_event_pk_events'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint(*KEY, 'position', name=op.f('pk_frames')),
    )
    op.execute(f"INSERT INTO frames ({', '.join(COLUMNS)}) {VIEW.strip()}")
    op.create_index(op.f('ix_frames_in_app_function'), 'frames', ['in_app', 'function'],
                    unique=False)
    op.drop_table('frame_vars')
    op.drop_table('event_stacks')
    op.drop_index(op.f('ix_stack_frames_in_app_function'), table_name='stack_frames')
    op.drop_table('stack_frames')
    op.drop_table('stacks')
