"""What every table of the schema is built from: the declarative base and the column types.

The types make both databases behave alike: timestamps are aware UTC everywhere (SQLite has no
timestamp type), JSON is ``jsonb`` on PostgreSQL and JSON text on SQLite with None as SQL NULL,
and surrogate keys are the rowid alias on SQLite. The naming convention gives constraints and
indexes stable names, which Alembic migrations refer to.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Connection,
    Dialect,
    ForeignKeyConstraint,
    Integer,
    MetaData,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, mapped_column
from sqlalchemy.types import DateTime, TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timezone-aware UTC timestamp on every backend.

    SQLite has no timestamp type; SQLAlchemy would hand back naive datetimes. This converts to
    UTC on the way in and attaches UTC on the way out, so comparisons behave the same on both
    databases.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        value = value.astimezone(dt.timezone.utc)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        # raw SQL on SQLite may hand back text
        when: dt.datetime = dt.datetime.fromisoformat(value) if isinstance(value, str) else value
        if when.tzinfo is None:
            return when.replace(tzinfo=dt.timezone.utc)
        return when.astimezone(dt.timezone.utc)


# Portable JSON: jsonb on PostgreSQL (indexable, operators), JSON text on SQLite.
# None is stored as SQL NULL (not the JSON text 'null'), so `IS NULL` works as people expect.
JSONType = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
# Surrogate keys: BIGINT on PostgreSQL, INTEGER (the rowid alias) on SQLite.
BigIntPK = BigInteger().with_variant(Integer(), "sqlite")


def sqlite_only_fk(
    columns: list[str], refcolumns: list[str], *, ondelete: str | None = None
) -> ForeignKeyConstraint:
    """A foreign key of a per-event row, a database constraint on SQLite only.

    The child rows of an event (tags, breadcrumbs, contexts... tens per event) point at
    ``events.id`` through ``event_pk``, and ``event_stacks`` rows at ``stacks.stack_key``.
    PostgreSQL checks a foreign key row by row (a query and a row lock per inserted row, no
    batching): in a 10k-event backfill those checks were a third of the server's COPY time
    and 30% of its CPU per event (the README's schema section has the figures), CPU taken
    from the cores the sync runs on. SQLite's checks are cheap lookups in the same file, so
    they stay there. On PostgreSQL the archiver keeps the link itself:
    an event's child rows are written in its own transaction, replaced children are deleted
    explicitly, and so are the children of purged events (migration 0008).
    """
    return ForeignKeyConstraint(columns, refcolumns, ondelete=ondelete).ddl_if(dialect="sqlite")


# The comment of every ``event_pk`` column (PostgreSQL shows it in ``\d+`` and SQL tools).
EVENT_PK_COMMENT = (
    "events.id of the event this row belongs to. Not a foreign key on PostgreSQL: the "
    "archiver writes and deletes a row with its event (README, The schema)."
)


NOT_WRITTEN = "not_written"
"""The ``info`` key of a child table's column that normalization does not produce: the event
writer leaves it to its default (:data:`archiver.storage.encode.CHILD_COLUMNS`)."""


def event_pk_column() -> Any:
    """The ``event_pk`` column of a child table of ``events`` (its primary key's first)."""
    return mapped_column(BigInteger, primary_key=True, comment=EVENT_PK_COMMENT)


def event_fk() -> ForeignKeyConstraint:
    """``event_pk`` -> ``events.id`` ON DELETE CASCADE, a constraint on SQLite only."""
    return sqlite_only_fk(["event_pk"], ["events.id"], ondelete="CASCADE")


def utcnow() -> dt.datetime:
    """Now, as an aware UTC datetime (the default of every ``*_at`` column)."""
    return dt.datetime.now(dt.timezone.utc)


class Base(DeclarativeBase):
    """The declarative base of every table: one metadata, named by :data:`NAMING_CONVENTION`."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


IN_LIST_MAX = 500  # values per IN (...): bound parameters per statement are limited


def chunks(values: Sequence[Any]) -> Iterator[Sequence[Any]]:
    """``values`` in slices short enough for one ``IN (...)`` list."""
    for start in range(0, len(values), IN_LIST_MAX):
        yield values[start : start + IN_LIST_MAX]


def max_params(conn: Connection) -> int:
    """Bound parameters one statement may carry on this database."""
    if conn.dialect.name == "sqlite":
        import sqlite3

        return 32766 if sqlite3.sqlite_version_info >= (3, 32, 0) else 999
    return 65535  # PostgreSQL's protocol limit
