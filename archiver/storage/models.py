"""The relational schema: the archive's main user interface.

Table and column names are a contract: people write SQL against them for years, so they change
only through an Alembic migration and never silently. Conventions:

* Sentry's own ids (projects, issues) are kept as 64-bit integers: they exceed 2**31.
* ``events.id`` is a surrogate integer key; the natural key is ``(project_id, event_id)`` where
  ``event_id`` is the 32-character lowercase hex id. Child tables point at ``events.id`` through
  a column named ``event_pk`` (never ``event_id``, to keep the two apart) with ON DELETE CASCADE.
* Every timestamp is timezone-aware UTC (:class:`UTCDateTime`), stored as ISO text on SQLite so
  it sorts and compares correctly there too.
* JSON columns are ``json`` on SQLite and ``jsonb`` on PostgreSQL. ``raw_json`` columns are plain
  text holding the API's JSON exactly (same values, same key order), so nothing is ever lost.
* Text cannot hold U+0000 on PostgreSQL: normalized columns carry U+2400 (SYMBOL FOR NULL) in its
  place and the event records an ``event_problems`` row; the raw JSON keeps the escaped
  ``\\u0000``, so the original is recoverable exactly. See README, "NUL characters".
"""

from __future__ import annotations

import datetime as dt
from typing import Any, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
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
        if isinstance(value, str):  # raw SQL on SQLite may hand back text
            value = dt.datetime.fromisoformat(value)
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.timezone.utc)
        return value.astimezone(dt.timezone.utc)


# Portable JSON: jsonb on PostgreSQL (indexable, operators), JSON text on SQLite.
# None is stored as SQL NULL (not the JSON text 'null'), so `IS NULL` works as people expect.
JSONType = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
# Surrogate keys: BIGINT on PostgreSQL, INTEGER (the rowid alias) on SQLite.
BigIntPK = BigInteger().with_variant(Integer(), "sqlite")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


# --------------------------------------------------------------------------- discovery objects


class Project(Base):
    """A Sentry project (``GET /api/0/organizations/{org}/projects/``)."""

    __tablename__ = "projects"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    organization_slug: Mapped[str | None] = mapped_column(Text)
    slug: Mapped[str | None] = mapped_column(Text)
    name: Mapped[str | None] = mapped_column(Text)
    platform: Mapped[str | None] = mapped_column(Text)
    date_created: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    raw_json: Mapped[str | None] = mapped_column(Text)
    archived_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=_now)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=_now)

    __table_args__ = (Index(None, "organization_slug", "slug"),)


class Issue(Base):
    """A Sentry issue (a "group"): the unit events are listed by."""

    __tablename__ = "issues"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    project_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("projects.id"), index=True)
    short_id: Mapped[str | None] = mapped_column(Text)
    title: Mapped[str | None] = mapped_column(Text)
    culprit: Mapped[str | None] = mapped_column(Text)
    level: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str | None] = mapped_column(Text)
    substatus: Mapped[str | None] = mapped_column(Text)
    issue_type: Mapped[str | None] = mapped_column(Text)
    issue_category: Mapped[str | None] = mapped_column(Text)
    priority: Mapped[str | None] = mapped_column(Text)
    logger: Mapped[str | None] = mapped_column(Text)
    first_seen: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_seen: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, index=True)
    times_seen: Mapped[int | None] = mapped_column(BigInteger)
    user_count: Mapped[int | None] = mapped_column(BigInteger)
    permalink: Mapped[str | None] = mapped_column(Text)
    metadata_json: Mapped[Any | None] = mapped_column("metadata", JSONType)
    # Set when Sentry answered for this id with another issue (it was merged into that one).
    merged_into_id: Mapped[int | None] = mapped_column(BigInteger)
    # Set when Sentry answered 404 for this issue (deleted, or pending deletion).
    gone_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    raw_json: Mapped[str | None] = mapped_column(Text)
    archived_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=_now)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=_now)


class Release(Base):
    """A release object, fetched once per version (from event detail or the releases API)."""

    __tablename__ = "releases"

    version: Mapped[str] = mapped_column(Text, primary_key=True)
    short_version: Mapped[str | None] = mapped_column(Text)
    ref: Mapped[str | None] = mapped_column(Text)
    url: Mapped[str | None] = mapped_column(Text)
    date_created: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    date_released: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    first_event: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_event: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    new_groups: Mapped[int | None] = mapped_column(BigInteger)
    commit_count: Mapped[int | None] = mapped_column(BigInteger)
    deploy_count: Mapped[int | None] = mapped_column(BigInteger)
    authors: Mapped[Any | None] = mapped_column(JSONType)
    last_deploy: Mapped[Any | None] = mapped_column(JSONType)
    raw_json: Mapped[str | None] = mapped_column(Text)
    archived_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=_now)


# --------------------------------------------------------------------------- events


class Event(Base):
    """One archived event. ``raw_json`` holds the payload exactly as the API sent it."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    project_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("projects.id"))
    event_id: Mapped[str] = mapped_column(String(32))
    issue_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("issues.id"))
    # The payload's ``id`` when it is not the hex event id (legacy numeric ids).
    legacy_id: Mapped[str | None] = mapped_column(Text)
    title: Mapped[str | None] = mapped_column(Text)
    message: Mapped[str | None] = mapped_column(Text)
    platform: Mapped[str | None] = mapped_column(Text)
    type: Mapped[str | None] = mapped_column(Text)
    level: Mapped[str | None] = mapped_column(Text)
    logger: Mapped[str | None] = mapped_column(Text)
    culprit: Mapped[str | None] = mapped_column(Text)
    location: Mapped[str | None] = mapped_column(Text)
    transaction_name: Mapped[str | None] = mapped_column(Text)
    environment: Mapped[str | None] = mapped_column(Text)
    release: Mapped[str | None] = mapped_column(Text)
    dist: Mapped[str | None] = mapped_column(Text)
    date_created: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    date_received: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    sdk_name: Mapped[str | None] = mapped_column(Text)
    sdk_version: Mapped[str | None] = mapped_column(Text)
    user_id: Mapped[str | None] = mapped_column(Text)
    user_email: Mapped[str | None] = mapped_column(Text)
    user_username: Mapped[str | None] = mapped_column(Text)
    user_ip_address: Mapped[str | None] = mapped_column(Text)
    user_name: Mapped[str | None] = mapped_column(Text)
    user_geo: Mapped[Any | None] = mapped_column(JSONType)
    user_data: Mapped[Any | None] = mapped_column(JSONType)
    size: Mapped[int | None] = mapped_column(BigInteger)
    fingerprints: Mapped[Any | None] = mapped_column(JSONType)
    contexts: Mapped[Any | None] = mapped_column(JSONType)
    metadata_json: Mapped[Any | None] = mapped_column("metadata", JSONType)
    # Extra data sent by the SDK (``context`` in the API payload).
    extra: Mapped[Any | None] = mapped_column(JSONType)
    # True when the payload came from a detail endpoint (release object, userReport, ...).
    has_detail: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    # True when the payload carried ``entries`` (a full event, not the slim list form).
    is_full: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    problem_count: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    # Set when values were replaced at archive time: {"method": ..., "paths": [...]}.
    scrubbed: Mapped[Any | None] = mapped_column(JSONType)
    raw_json: Mapped[str] = mapped_column(Text)
    # SHA-256 of raw_json: re-archiving an unchanged event writes nothing.
    raw_sha256: Mapped[str | None] = mapped_column(String(64))
    archived_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=_now)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=_now)
    # Facts the query views read, derived at write time from the columns and child rows above
    # (``normalize.event_facts``; migration 0004 backfilled older events): reading them is
    # what lets whole-archive views answer from narrow indexes instead of the wide rows.
    # The UTC calendar day of date_created (text YYYY-MM-DD on SQLite, a date on PostgreSQL).
    day: Mapped[dt.date | None] = mapped_column(Date)
    # id:..., else email:..., else username:..., else ip:... (Sentry's sentry:user tag).
    user_key: Mapped[str | None] = mapped_column(Text)
    # The raised exception (exceptions.position and type of the is_last row).
    exception_position: Mapped[int | None] = mapped_column(Integer)
    exception_type: Mapped[str | None] = mapped_column(Text)
    # The top in-app frame of the raised exception's stack (frames.position and its values).
    crash_position: Mapped[int | None] = mapped_column(Integer)
    crash_function: Mapped[str | None] = mapped_column(Text)
    crash_module: Mapped[str | None] = mapped_column(Text)
    crash_filename: Mapped[str | None] = mapped_column(Text)
    crash_lineno: Mapped[int | None] = mapped_column(BigInteger)

    __table_args__ = (
        UniqueConstraint("project_id", "event_id"),
        Index(None, "project_id", "date_created"),
        Index(None, "date_created"),
        # Covering indexes of the query views (migration 0004 says which view reads which):
        # each view reads one of them, never the wide rows. Group columns first (SQLite
        # matches GROUP BY terms in any order), then user_key for count(DISTINCT user_key).
        Index("ix_events_day_users", "day", "project_id", "user_key", "issue_id", "date_created"),
        # These two carry three text columns of up to 1,000 characters: more than a
        # PostgreSQL index entry can hold (2,704 bytes). PostgreSQL answers their views by
        # scanning events (raw_json is out of line there, TOASTed), so they are SQLite's only.
        Index(
            "ix_events_day_exceptions",
            "day",
            "project_id",
            "exception_type",
            "issue_id",
            "exception_position",
            "crash_position",
            "crash_filename",
            "crash_lineno",
            "crash_function",
        ).ddl_if(dialect="sqlite"),
        Index(
            "ix_events_crash_frames",
            "project_id",
            "crash_function",
            "crash_module",
            "crash_filename",
            "issue_id",
            "date_created",
            "crash_position",
        ).ddl_if(dialect="sqlite"),
        # These also serve lookups by release, by environment and by issue.
        Index(
            "ix_events_release_users",
            "release",
            "project_id",
            "user_key",
            "issue_id",
            "date_created",
        ),
        Index(
            "ix_events_environment_users",
            "environment",
            "project_id",
            "user_key",
            "issue_id",
            "date_created",
        ),
        Index("ix_events_issue_users", "issue_id", "user_key", "date_created"),
    )


class EventTag(Base):
    """Tags in payload order. Duplicate keys are allowed, as Sentry allows them."""

    __tablename__ = "event_tags"

    event_pk: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("events.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    key: Mapped[str] = mapped_column(Text)
    value: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index(None, "key", "value"),)


class ExceptionRow(Base):
    """Exceptions of an event. Position 0 is the first cause; the highest is the one raised."""

    __tablename__ = "exceptions"

    event_pk: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("events.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    type: Mapped[str | None] = mapped_column(Text, index=True)
    value: Mapped[str | None] = mapped_column(Text)
    module: Mapped[str | None] = mapped_column(Text)
    mechanism_type: Mapped[str | None] = mapped_column(Text)
    handled: Mapped[bool | None] = mapped_column(Boolean)
    synthetic: Mapped[bool | None] = mapped_column(Boolean)
    mechanism: Mapped[Any | None] = mapped_column(JSONType)
    thread_id: Mapped[str | None] = mapped_column(Text)
    # True for the last exception in the chain (the one finally raised).
    is_last: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))


class Thread(Base):
    """Threads of an event (``threads`` entry)."""

    __tablename__ = "threads"

    event_pk: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("events.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    thread_id: Mapped[str | None] = mapped_column(Text)
    name: Mapped[str | None] = mapped_column(Text)
    current: Mapped[bool | None] = mapped_column(Boolean)
    crashed: Mapped[bool | None] = mapped_column(Boolean)
    state: Mapped[str | None] = mapped_column(Text)


class Frame(Base):
    """Stack frames, oldest first (the crash site is the highest position).

    ``stack_kind`` says which stack a frame belongs to: ``exception`` (``stack_index`` is the
    exception's position), ``thread`` (``stack_index`` is the thread's position, ``thread_id``
    its id) or ``stacktrace`` (a top-level stacktrace entry; ``stack_index`` is the entry's
    position). ``is_raw`` marks frames of the unsymbolicated ``rawStacktrace``.
    """

    __tablename__ = "frames"

    event_pk: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("events.id", ondelete="CASCADE"), primary_key=True
    )
    stack_kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    stack_index: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    is_raw: Mapped[bool] = mapped_column(Boolean, primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    thread_id: Mapped[str | None] = mapped_column(Text)
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
    vars: Mapped[Any | None] = mapped_column(JSONType)

    __table_args__ = (Index(None, "in_app", "function"),)


class Breadcrumb(Base):
    __tablename__ = "breadcrumbs"

    event_pk: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("events.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    timestamp: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    type: Mapped[str | None] = mapped_column(Text)
    category: Mapped[str | None] = mapped_column(Text)
    level: Mapped[str | None] = mapped_column(Text)
    message: Mapped[str | None] = mapped_column(Text)
    data: Mapped[Any | None] = mapped_column(JSONType)
    breadcrumb_event_id: Mapped[str | None] = mapped_column(Text)


class RequestRow(Base):
    """The HTTP request an event happened in (``request`` entry), one per event."""

    __tablename__ = "requests"

    event_pk: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("events.id", ondelete="CASCADE"), primary_key=True
    )
    method: Mapped[str | None] = mapped_column(Text)
    url: Mapped[str | None] = mapped_column(Text)
    # The query as one string (pairs are URL-encoded); ``query`` keeps the original shape.
    query_string: Mapped[str | None] = mapped_column(Text)
    query: Mapped[Any | None] = mapped_column(JSONType)
    fragment: Mapped[str | None] = mapped_column(Text)
    data: Mapped[Any | None] = mapped_column(JSONType)
    headers: Mapped[Any | None] = mapped_column(JSONType)
    cookies: Mapped[Any | None] = mapped_column(JSONType)
    env: Mapped[Any | None] = mapped_column(JSONType)
    inferred_content_type: Mapped[str | None] = mapped_column(Text)


class ContextRow(Base):
    """One row per entry of the event's ``contexts`` (browser, os, device, runtime, trace...)."""

    __tablename__ = "contexts"

    event_pk: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("events.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(Text, primary_key=True)
    type: Mapped[str | None] = mapped_column(Text)
    name: Mapped[str | None] = mapped_column(Text)
    version: Mapped[str | None] = mapped_column(Text)
    data: Mapped[Any | None] = mapped_column(JSONType)

    __table_args__ = (Index(None, "key", "name"),)


class EventError(Base):
    """Processing errors Sentry recorded for the event (payload ``errors``)."""

    __tablename__ = "event_errors"

    event_pk: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("events.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    type: Mapped[str | None] = mapped_column(Text)
    message: Mapped[str | None] = mapped_column(Text)
    data: Mapped[Any | None] = mapped_column(JSONType)


class EventEntry(Base):
    """Every entry of the payload in order, by type.

    Entries that have tables of their own (exception, threads, stacktrace, breadcrumbs,
    request) are listed with ``data`` NULL; every other type (message, template, csp, hpkp,
    expectct, expectstaple, debugmeta, spans, and types unknown today) keeps its data here.
    """

    __tablename__ = "event_entries"

    event_pk: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("events.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    type: Mapped[str | None] = mapped_column(Text, index=True)
    data: Mapped[Any | None] = mapped_column(JSONType)


class EventProblem(Base):
    """What normalization could not do cleanly. The event and its raw JSON are stored anyway."""

    __tablename__ = "event_problems"

    event_pk: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("events.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    path: Mapped[str] = mapped_column(Text)
    problem: Mapped[str] = mapped_column(Text, index=True)
    detail: Mapped[str | None] = mapped_column(Text)


# --------------------------------------------------------------------------- sync bookkeeping


class ProjectSync(Base):
    """Per-project progress of issue discovery (a bookmark that only moves forward)."""

    __tablename__ = "sync_projects"

    project_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    # Issues seen before this instant have been discovered and their walks scheduled.
    issues_synced_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # The discovery in progress: its pinned window end and the next cursor.
    discovery_end: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    discovery_cursor: Mapped[str | None] = mapped_column(Text)
    backfill_complete: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=text("false")
    )
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=_now)


class IssueSync(Base):
    """Per-issue progress of the event walk, committed with each page's rows.

    ``synced_until``: every event of this issue dated before it has been archived. A walk in
    progress has a pinned window ``[walk_start, walk_end)`` and the cursor of the next page.
    """

    __tablename__ = "sync_issues"

    issue_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("issues.id", ondelete="CASCADE"), primary_key=True
    )
    project_id: Mapped[int] = mapped_column(BigInteger, index=True)
    status: Mapped[str] = mapped_column(Text, default="pending")
    synced_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    walk_start: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    walk_end: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    walk_cursor: Mapped[str | None] = mapped_column(Text)
    walk_events: Mapped[int] = mapped_column(BigInteger, default=0, server_default=text("0"))
    last_error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=_now)


class Run(Base):
    """One command run (sync, archive-event, purge...), for audits."""

    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    command: Mapped[str] = mapped_column(Text)
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=_now)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # running | success | partial | failed | interrupted
    outcome: Mapped[str] = mapped_column(Text, default="running")
    host: Mapped[str | None] = mapped_column(Text)
    pid: Mapped[int | None] = mapped_column(Integer)
    server_url: Mapped[str | None] = mapped_column(Text)
    organization_slug: Mapped[str | None] = mapped_column(Text)
    projects: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    issues: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    events_new: Mapped[int] = mapped_column(BigInteger, default=0, server_default=text("0"))
    events_updated: Mapped[int] = mapped_column(BigInteger, default=0, server_default=text("0"))
    requests: Mapped[int] = mapped_column(BigInteger, default=0, server_default=text("0"))
    retries: Mapped[int] = mapped_column(BigInteger, default=0, server_default=text("0"))
    errors: Mapped[Any | None] = mapped_column(JSONType)
    error_message: Mapped[str | None] = mapped_column(Text)
    options: Mapped[Any | None] = mapped_column(JSONType)

    __table_args__ = (Index(None, "command", "started_at"),)


class RunLock(Base):
    """Who holds the archive's run lock (one row). PostgreSQL also holds an advisory lock."""

    __tablename__ = "run_lock"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    host: Mapped[str] = mapped_column(Text)
    pid: Mapped[int] = mapped_column(Integer)
    command: Mapped[str | None] = mapped_column(Text)
    acquired_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    heartbeat_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class Purge(Base):
    """Audit of retention purges. Purges never delete from this table."""

    __tablename__ = "purges"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=_now)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    cutoff: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    projects: Mapped[Any | None] = mapped_column(JSONType)
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False)
    events_deleted: Mapped[int] = mapped_column(BigInteger, default=0, server_default=text("0"))
    command: Mapped[str | None] = mapped_column(Text)
    host: Mapped[str | None] = mapped_column(Text)
    pid: Mapped[int | None] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(Text, default="running")


EVENT_CHILD_TABLES: tuple[Table, ...] = tuple(
    cast(Table, model.__table__)
    for model in (
        EventTag,
        ExceptionRow,
        Thread,
        Frame,
        Breadcrumb,
        RequestRow,
        ContextRow,
        EventError,
        EventEntry,
        EventProblem,
    )
)
