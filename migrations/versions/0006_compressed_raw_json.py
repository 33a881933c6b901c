"""compressed raw JSON: zstd with a trained dictionary on SQLite

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 13:45:00.000000

The raw JSON was half of a SQLite archive (13.6 of 27 KB per simulator event). On SQLite it
moves from ``events.raw_json`` (now NULL there) into ``events.raw_zstd``: one zstd frame,
compressed with the ``zstd_dictionaries`` row ``raw_dict_id`` (NULL: no dictionary), which is
trained here on the archive's first events when it has at least ``TRAIN_AFTER`` of them (else
the sync trains one later, see ``archiver.storage.rawjson``, whose codec this revision
copies rather than imports). SQL reads the text back with
``sentry_raw_json(raw_zstd, raw_dict_id)`` (registered by the archiver on its connections) or
from the new view ``v_event_raw_json``.

PostgreSQL keeps ``raw_json`` as text (TOAST-compressed by the server, LZ4, and plain SQL);
it gets the same new columns, NULL there, and the same view, so the schema is one.

``raw_json`` becomes nullable. SQLite cannot alter a column: its NOT NULL is removed by editing
the table's definition in ``sqlite_master``, the procedure SQLite's documentation gives for
removing a NOT NULL constraint (the stored rows are not touched by it).

Existing events are compressed in batches of ``BATCH`` rows, in the migration's transaction.
SQLite does not give the freed pages back to the file system (VACUUM cannot run in a
transaction), and each old row stays on its now half-empty page: ``sqlite3 archive.db VACUUM``
(with no sync running) once after the upgrade shrinks the file (README, "Raw JSON
compression").

Dropped: the indexes of ``DROPPED_INDEXES``, which no view, cookbook recipe or query of the
archiver uses (checked with EXPLAIN QUERY PLAN on SQLite and EXPLAIN on PostgreSQL).

The downgrade writes every event's text back into ``raw_json`` and removes what this added.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
import zstandard
from alembic import op

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Indexes that no view, cookbook recipe or query of the archiver uses (EXPLAIN QUERY PLAN of
# each): (name, table, columns). Each cost the writer time per row and space per event.
DROPPED_INDEXES = [
    ("ix_event_tags_key_value", "event_tags", ["key", "value"]),
    ("ix_contexts_key_name", "contexts", ["key", "name"]),
    ("ix_exceptions_type", "exceptions", ["type"]),
    ("ix_event_entries_type", "event_entries", ["type"]),
    ("ix_event_problems_problem", "event_problems", ["problem"]),
]
BATCH = 2000  # events compressed per UPDATE
TRAIN_AFTER = 500  # archiver.storage.rawjson.TRAIN_AFTER, frozen here
TRAIN_SAMPLES = 1000  # more than the sync reads (2% smaller frames): a one-off command
_COMPRESS = "_archiver_0005_compress"
_READ = "_archiver_0006_raw_json"

# How archiver.storage.rawjson compressed raw JSON when this revision was written, frozen here
# so that a later change there cannot change what this revision does to an archive.
LEVEL = 3
DICT_SIZE = 64 * 1024
_ENCODING = ("utf-8", "surrogatepass")

VIEW = {
    "sqlite": """
SELECT id AS event_pk, project_id, event_id,
       CASE WHEN raw_zstd IS NULL THEN raw_json
            ELSE sentry_raw_json(raw_zstd, raw_dict_id) END AS raw_json
FROM events
""",
    "postgresql": """
SELECT id AS event_pk, project_id, event_id, raw_json
FROM events
""",
}


def _sqlite_not_null(nullable: bool) -> None:
    """Remove (or put back) ``NOT NULL`` on ``events.raw_json`` in SQLite's schema text."""
    bind = op.get_bind()
    old, new = "raw_json TEXT NOT NULL", "raw_json TEXT"
    if not nullable:
        old, new = new, old
    sql = bind.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'events'"
    ).scalar_one()
    if sql.count(old + ",") != 1:
        raise RuntimeError(f"events.raw_json is not declared as {old!r} in this archive")
    version = bind.exec_driver_sql("PRAGMA schema_version").scalar_one()
    bind.exec_driver_sql("PRAGMA writable_schema = ON")
    bind.exec_driver_sql(
        "UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = 'events'",
        (sql.replace(old + ",", new + ","),),
    )
    bind.exec_driver_sql(f"PRAGMA schema_version = {int(version) + 1}")
    bind.exec_driver_sql("PRAGMA writable_schema = OFF")


def _driver(bind: Any) -> Any:
    return bind.connection.driver_connection


def _compressor(dict_data: bytes | None) -> Callable[[str], bytes]:
    """The raw JSON text as one zstd frame (content size written, no checksum, no dictionary
    id: ``events.raw_dict_id`` names the dictionary)."""
    params: dict[str, Any] = {"level": LEVEL, "write_checksum": False}
    if dict_data is not None:
        params["dict_data"] = zstandard.ZstdCompressionDict(dict_data)
        params["write_dict_id"] = False
    cctx = zstandard.ZstdCompressor(**params)
    return lambda raw: bytes(cctx.compress(raw.encode(*_ENCODING)))


def _train(samples: list[bytes]) -> bytes | None:
    """A dictionary trained on the samples, or None when zstd cannot make one."""
    if len(samples) < 8:
        return None
    try:
        return bytes(zstandard.train_dictionary(DICT_SIZE, samples, level=LEVEL).as_bytes())
    except zstandard.ZstdError:
        return None


def _register_reader(bind: Any) -> None:
    """``_READ(raw_zstd, raw_dict_id)``: the text of a frame, read with the archive's
    dictionaries (under a name of its own: the archiver's ``sentry_raw_json`` stays its own)."""
    plain = zstandard.ZstdDecompressor()
    readers = {
        int(dict_id): zstandard.ZstdDecompressor(
            dict_data=zstandard.ZstdCompressionDict(bytes(data))
        )
        for dict_id, data in bind.exec_driver_sql("SELECT id, data FROM zstd_dictionaries")
    }

    def read(blob: bytes | None, dict_id: int | None) -> str | None:
        if blob is None:
            return None
        dctx = plain if dict_id is None else readers[int(dict_id)]
        return bytes(dctx.decompress(bytes(blob))).decode(*_ENCODING)

    _driver(bind).create_function(_READ, 2, read, deterministic=True)


def _compress_events() -> None:
    """Every event's raw JSON into ``raw_zstd``, with a dictionary when there are enough."""
    bind = op.get_bind()
    samples = [  # the UTF-8 bytes SQLite holds: one copy of the samples in memory
        bytes(r[0])
        for r in bind.exec_driver_sql(
            "SELECT CAST(raw_json AS BLOB) FROM events ORDER BY id LIMIT ?", (TRAIN_SAMPLES,)
        )
    ]
    count = len(samples)
    data = _train(samples) if count >= TRAIN_AFTER else None
    del samples
    dict_id = None
    if data is not None:
        dict_id = bind.exec_driver_sql(
            "INSERT INTO zstd_dictionaries (created_at, samples, data) VALUES (?, ?, ?)",
            (_now(), count, data),
        ).lastrowid
    _driver(bind).create_function(_COMPRESS, 1, _compressor(data))
    last = -1
    top = bind.exec_driver_sql("SELECT max(id) FROM events").scalar()
    while top is not None and last < top:
        bind.exec_driver_sql(
            f"UPDATE events SET raw_zstd = {_COMPRESS}(raw_json), raw_dict_id = ?, "
            "raw_json = NULL WHERE id > ? AND id <= ? AND raw_json IS NOT NULL",
            (dict_id, last, last + BATCH),
        )
        last += BATCH


def _now() -> str:
    """Now, as UTCDateTime stores it on SQLite."""
    import datetime as dt

    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.create_table(
        "zstd_dictionaries",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("samples", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_zstd_dictionaries")),
    )
    for name, table, _ in DROPPED_INDEXES:
        op.drop_index(name, table_name=table)
    op.add_column("events", sa.Column("raw_zstd", sa.LargeBinary(), nullable=True))
    op.add_column("events", sa.Column("raw_dict_id", sa.Integer(), nullable=True))
    if dialect == "sqlite":
        _sqlite_not_null(True)
        _compress_events()
    else:
        op.alter_column("events", "raw_json", existing_type=sa.Text(), nullable=True)
    op.execute(f"CREATE VIEW v_event_raw_json AS {VIEW.get(dialect, VIEW['postgresql']).strip()}")


def downgrade() -> None:
    bind = op.get_bind()
    dialect = bind.dialect.name
    op.execute("DROP VIEW IF EXISTS v_event_raw_json")
    if dialect == "sqlite":
        _register_reader(bind)
        last = -1
        top = bind.exec_driver_sql("SELECT max(id) FROM events").scalar()
        while top is not None and last < top:
            bind.exec_driver_sql(
                f"UPDATE events SET raw_json = {_READ}(raw_zstd, raw_dict_id) "
                "WHERE id > ? AND id <= ? AND raw_zstd IS NOT NULL",
                (last, last + BATCH),
            )
            last += BATCH
        _sqlite_not_null(False)
    else:
        op.alter_column("events", "raw_json", existing_type=sa.Text(), nullable=False)
    # Native on PostgreSQL and on SQLite 3.35+ (a batch copy of events would rewrite it all).
    op.execute("ALTER TABLE events DROP COLUMN raw_dict_id")
    op.execute("ALTER TABLE events DROP COLUMN raw_zstd")
    op.drop_table("zstd_dictionaries")
    for name, table, columns in reversed(DROPPED_INDEXES):
        op.create_index(name, table, columns, unique=False)
