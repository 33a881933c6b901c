"""The bookkeeping tables: sync progress, command runs, the run lock, project leases, purges,
and the zstd dictionaries that SQLite archives compress raw JSON with.

They say what the archiver did and where a sync stands, not what Sentry holds. They are
declared on the same :class:`~archiver.storage.base.Base` as the archive's tables, and
:mod:`archiver.storage.models` re-exports them, so its ``Base.metadata`` is the whole schema.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, LargeBinary, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from archiver.storage.base import Base, BigIntPK, JSONType, UTCDateTime, utcnow


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
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


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
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Run(Base):
    """One command run (sync, archive-event, purge...), for audits."""

    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    command: Mapped[str] = mapped_column(Text)
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
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


class ProjectLease(Base):
    """Which sync process walks which project (PostgreSQL: several syncs share one archive).

    A process claims a project whose lease is free (``expires_at`` passed: released, or its
    holder stopped renewing it) and that no run finished since this one started; it renews
    the lease while it walks, and each page's transaction checks that ``holder`` still names
    it. All times are the database server's, so the machines' clocks never matter.
    """

    __tablename__ = "project_leases"

    project_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    # "host pid run N": unique per sync process and run
    holder: Mapped[str] = mapped_column(Text)
    host: Mapped[str] = mapped_column(Text)
    pid: Mapped[int] = mapped_column(Integer)
    run_id: Mapped[int | None] = mapped_column(BigInteger)
    acquired_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    renewed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    # when a run last completed this project's discovery and walks (None: never)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class Purge(Base):
    """Audit of retention purges. Purges never delete from this table."""

    __tablename__ = "purges"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    cutoff: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    projects: Mapped[Any | None] = mapped_column(JSONType)
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False)
    events_deleted: Mapped[int] = mapped_column(BigInteger, default=0, server_default=text("0"))
    command: Mapped[str | None] = mapped_column(Text)
    host: Mapped[str | None] = mapped_column(Text)
    pid: Mapped[int | None] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(Text, default="running")


class ZstdDictionary(Base):
    """A zstd dictionary trained on the archive's own events (SQLite archives only).

    ``events.raw_dict_id`` names the one an event's ``raw_zstd`` was compressed with. Rows are
    never changed or deleted, so every stored frame stays readable
    (:mod:`archiver.storage.rawjson` says when one is trained).
    """

    __tablename__ = "zstd_dictionaries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    # How many events it was trained on.
    samples: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)
