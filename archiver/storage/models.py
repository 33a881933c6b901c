"""The relational schema: the archive's main user interface.

Table and column names are a contract: people write SQL against them for years, so they change
only through an Alembic migration and never silently. Conventions:

* Sentry's own ids (projects, issues) are kept as 64-bit integers: they exceed 2**31.
* ``events.id`` is a surrogate integer key; the natural key is ``(project_id, event_id)`` where
  ``event_id`` is the 32-character lowercase hex id. Child tables point at ``events.id`` through
  a column named ``event_pk`` (never ``event_id``, to keep the two apart): a foreign key with
  ON DELETE CASCADE on SQLite, no constraint on PostgreSQL, where it cost a query per written
  row (:func:`~archiver.storage.base.sqlite_only_fk`, migration 0008). Whatever deletes events
  deletes their child rows itself (the store for a replaced event, purge).
* Every timestamp is timezone-aware UTC (:class:`UTCDateTime`), stored as ISO text on SQLite so
  it sorts and compares correctly there too.
* JSON columns are ``json`` on SQLite and ``jsonb`` on PostgreSQL. ``raw_json`` columns are plain
  text holding the API's JSON exactly (same values, same key order), so nothing is ever lost.
  Except ``events`` on SQLite: there the raw JSON is zstd-compressed in ``raw_zstd`` (with the
  ``zstd_dictionaries`` row ``raw_dict_id``; ``raw_json`` is NULL) and SQL reads it as
  ``sentry_raw_json(raw_zstd, raw_dict_id)`` or from the view ``v_event_raw_json``. On
  PostgreSQL ``events.raw_json`` is the text (see :mod:`archiver.storage.rawjson`).
* Text cannot hold U+0000 on PostgreSQL: normalized columns carry U+2400 (SYMBOL FOR NULL) in its
  place and the event records an ``event_problems`` row; the raw JSON keeps the escaped
  ``\\u0000``, so the original is recoverable exactly. See README, "NUL characters".

The archive's tables are here; the column types and the declarative base are in
:mod:`~archiver.storage.base`, the bookkeeping tables (sync progress, runs, lock, purges) in
:mod:`~archiver.storage.bookkeeping`, the stack frames (stored once per distinct stack) in
:mod:`~archiver.storage.stacks`. This module re-exports them, so importing it gives the
whole schema (``Base.metadata``, which the migrations compare against) and every table class.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from archiver.storage.base import (
    NOT_WRITTEN,
    BigIntPK,
    JSONType,
    UTCDateTime,
    event_fk,
    event_pk_column,
    utcnow,
)
from archiver.storage.base import Base as Base
from archiver.storage.bookkeeping import IssueSync as IssueSync
from archiver.storage.bookkeeping import ProjectLease as ProjectLease
from archiver.storage.bookkeeping import ProjectSync as ProjectSync
from archiver.storage.bookkeeping import Purge as Purge
from archiver.storage.bookkeeping import Run as Run
from archiver.storage.bookkeeping import RunLock as RunLock
from archiver.storage.bookkeeping import ZstdDictionary as ZstdDictionary
from archiver.storage.stacks import EventStack as EventStack
from archiver.storage.stacks import FrameVars as FrameVars
from archiver.storage.stacks import Stack as Stack
from archiver.storage.stacks import StackFrame as StackFrame

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
    archived_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

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
    archived_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


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
    archived_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


# --------------------------------------------------------------------------- events
# Child tables have no index beyond their primary key unless a view, a cookbook recipe or the
# archiver's own queries use it: migration 0006 dropped those on tags (key, value), contexts
# (key, name), exceptions.type, event_entries.type and event_problems.problem, which none did
# (0.5 KB per simulator event on SQLite). A query that needs one can create it in its archive.


class Event(Base):
    """One archived event: the payload exactly as the API sent it, and its normalized values.

    The raw payload is ``raw_json`` (text) on PostgreSQL; on SQLite it is ``raw_zstd`` (zstd,
    with dictionary ``raw_dict_id``; NULL: none) and ``raw_json`` is NULL. Exactly one of
    ``raw_json`` and ``raw_zstd`` is set. Read it from SQL with the view ``v_event_raw_json``
    (both databases) or ``sentry_raw_json(raw_zstd, raw_dict_id)`` (SQLite).
    """

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
    raw_json: Mapped[str | None] = mapped_column(Text)
    raw_zstd: Mapped[bytes | None] = mapped_column(LargeBinary)
    # zstd_dictionaries.id (no foreign key: SQLite could not drop the column in a downgrade)
    raw_dict_id: Mapped[int | None] = mapped_column(Integer)
    # SHA-256 of the raw JSON text (UTF-8): re-archiving an unchanged event writes nothing.
    raw_sha256: Mapped[str | None] = mapped_column(String(64))
    archived_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
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
    __table_args__ = (event_fk(),)  # SQLite only: see base.sqlite_only_fk

    event_pk: Mapped[int] = event_pk_column()
    position: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    key: Mapped[str] = mapped_column(Text)
    value: Mapped[str | None] = mapped_column(Text)


class ExceptionRow(Base):
    """Exceptions of an event. Position 0 is the first cause; the highest is the one raised."""

    __tablename__ = "exceptions"
    __table_args__ = (event_fk(),)  # SQLite only: see base.sqlite_only_fk

    event_pk: Mapped[int] = event_pk_column()
    position: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    type: Mapped[str | None] = mapped_column(Text)
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
    __table_args__ = (event_fk(),)  # SQLite only: see base.sqlite_only_fk

    event_pk: Mapped[int] = event_pk_column()
    position: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    thread_id: Mapped[str | None] = mapped_column(Text)
    name: Mapped[str | None] = mapped_column(Text)
    current: Mapped[bool | None] = mapped_column(Boolean)
    crashed: Mapped[bool | None] = mapped_column(Boolean)
    state: Mapped[str | None] = mapped_column(Text)


class Breadcrumb(Base):
    __tablename__ = "breadcrumbs"
    __table_args__ = (event_fk(),)  # SQLite only: see base.sqlite_only_fk

    event_pk: Mapped[int] = event_pk_column()
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
    __table_args__ = (event_fk(),)  # SQLite only: see base.sqlite_only_fk

    event_pk: Mapped[int] = event_pk_column()
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
    __table_args__ = (event_fk(),)  # SQLite only: see base.sqlite_only_fk

    event_pk: Mapped[int] = event_pk_column()
    key: Mapped[str] = mapped_column(Text, primary_key=True)
    type: Mapped[str | None] = mapped_column(Text)
    name: Mapped[str | None] = mapped_column(Text)
    version: Mapped[str | None] = mapped_column(Text)
    data: Mapped[Any | None] = mapped_column(JSONType)


class EventError(Base):
    """Processing errors Sentry recorded for the event (payload ``errors``)."""

    __tablename__ = "event_errors"
    __table_args__ = (event_fk(),)  # SQLite only: see base.sqlite_only_fk

    event_pk: Mapped[int] = event_pk_column()
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
    __table_args__ = (event_fk(),)  # SQLite only: see base.sqlite_only_fk

    event_pk: Mapped[int] = event_pk_column()
    position: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    type: Mapped[str | None] = mapped_column(Text)
    data: Mapped[Any | None] = mapped_column(JSONType)


class EventProblem(Base):
    """What normalization could not do cleanly. The event and its raw JSON are stored anyway."""

    __tablename__ = "event_problems"
    __table_args__ = (event_fk(),)  # SQLite only: see base.sqlite_only_fk

    event_pk: Mapped[int] = event_pk_column()
    position: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    path: Mapped[str] = mapped_column(Text)
    problem: Mapped[str] = mapped_column(Text)
    detail: Mapped[str | None] = mapped_column(Text)
    # ``detail_unusable`` rows: how often later runs asked again for the event's detail and
    # Sentry's answer was still unusable (:mod:`archiver.sync.redetail` stops at its
    # ``MAX_ATTEMPTS``). Not a normalized value: the writer leaves it to its default.
    attempts: Mapped[int] = mapped_column(
        Integer, default=0, server_default=text("0"), info={NOT_WRITTEN: True}
    )


EVENT_CHILD_TABLES: tuple[Table, ...] = tuple(
    cast(Table, model.__table__)
    for model in (
        EventTag,
        ExceptionRow,
        Thread,
        EventStack,
        FrameVars,
        Breadcrumb,
        RequestRow,
        ContextRow,
        EventError,
        EventEntry,
        EventProblem,
    )
)

# The tables as Core objects, for the writer and for queries that need no ORM.
EVENTS = cast(Table, Event.__table__)
PROJECTS = cast(Table, Project.__table__)
ISSUES = cast(Table, Issue.__table__)
RELEASES = cast(Table, Release.__table__)
RUNS = cast(Table, Run.__table__)
ISSUE_SYNC = cast(Table, IssueSync.__table__)
PROJECT_SYNC = cast(Table, ProjectSync.__table__)
# The child tables by name (every one has ``event_pk``; deleted with its event, explicitly: on
# PostgreSQL no foreign key cascades).
CHILD_TABLES: dict[str, Table] = {t.name: t for t in EVENT_CHILD_TABLES}
