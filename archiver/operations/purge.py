"""``sentry-archiver purge``: retention, with an audit trail that purges never touch.

Events whose ``date_created`` is before the cutoff (now minus ``--older-than``) are deleted
with all their child rows, ``batch_size`` events per transaction, so other readers and the
sync writer get the database between batches. Then the stacks no event points at any more are
deleted with their frames (stacks are shared between events: ``archiver.storage.stacks``).
Issues, projects, releases, sync checkpoints, ``runs`` and ``purges`` are never deleted;
events without a ``date_created`` are kept.

Every real purge writes one ``purges`` row when it starts (outcome ``running``), advances its
``events_deleted`` in the same transaction as each batch (so the count is exact even if the
process dies), and ends it as ``success``, ``failed`` or ``interrupted``. A dry run only reads:
it prints what would go and records nothing.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import socket
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Table,
    delete,
    false,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.engine import make_url

from archiver.config import format_duration
from archiver.errors import ConfigError
from archiver.output import plural
from archiver.storage import db
from archiver.storage.models import Purge
from archiver.storage.stacks import (
    EVENT_STACKS,
    STACK_FRAMES,
    STACKS,
    collect_garbage,
    unused_stacks,
)
from archiver.storage.store import CHILD_TABLES, EVENTS, PROJECTS, Store, utcnow

PURGES: Table = Purge.__table__  # type: ignore[assignment]
DEFAULT_BATCH = 1000


@dataclass
class PurgeResult:
    """What a purge did (or, for a dry run, would do)."""

    cutoff: dt.datetime
    project_ids: list[int] | None
    dry_run: bool
    events: int = 0
    by_project: dict[int, int] = field(default_factory=dict)
    children: dict[str, int] = field(default_factory=dict)
    batches: int = 0
    purge_id: int | None = None
    vacuumed: bool = False


def compute_cutoff(
    older_than: dt.timedelta, minimum: dt.timedelta | None, *, now: dt.datetime | None = None
) -> dt.datetime:
    """now - older_than; refuses cutoffs that would delete events younger than the policy."""
    if older_than <= dt.timedelta(0):
        raise ConfigError("--older-than must be a positive duration such as 400d")
    if minimum is not None and older_than < minimum:
        raise ConfigError(
            f"refusing to purge: --older-than {format_duration(older_than)} would delete events "
            f"younger than the configured minimum retention of {format_duration(minimum)} "
            "([retention] minimum); use --older-than "
            f"{format_duration(minimum)} or more"
        )
    return (now or utcnow()) - older_than


def resolve_projects(conn: Connection, names: Sequence[str]) -> list[int] | None:
    """Archived project ids for slugs or ids; None for "every project"."""
    if not names:
        return None
    rows = conn.execute(select(PROJECTS.c.id, PROJECTS.c.slug)).all()
    by_key: dict[str, int] = {}
    for pid, slug in rows:
        by_key[str(pid)] = int(pid)
        if slug:
            by_key[str(slug)] = int(pid)
    missing = [n for n in names if n not in by_key]
    if missing:
        known = ", ".join(sorted(str(s) for _, s in rows if s)) or "none"
        noun = "project" if len(missing) == 1 else "projects"
        raise ConfigError(f"{noun} not in the archive: {', '.join(missing)} (known: {known})")
    return sorted({by_key[n] for n in names})


def _due(cutoff: dt.datetime, project_ids: list[int] | None) -> ColumnElement[bool]:
    cond = EVENTS.c.date_created < cutoff
    if project_ids is not None:
        cond = cond & EVENTS.c.project_id.in_(project_ids)
    return cond


def count_due(
    conn: Connection, cutoff: dt.datetime, project_ids: list[int] | None, result: PurgeResult
) -> None:
    """Fill the counts a purge with this cutoff would delete (the dry run)."""
    due = _due(cutoff, project_ids)
    rows = conn.execute(
        select(EVENTS.c.project_id, func.count()).where(due).group_by(EVENTS.c.project_id)
    ).all()
    result.by_project = {int(p): int(n) for p, n in rows}
    result.events = sum(result.by_project.values())
    ids = select(EVENTS.c.id).where(due).scalar_subquery()
    for name, table in CHILD_TABLES.items():
        n = conn.execute(select(func.count()).select_from(table).where(table.c.event_pk.in_(ids)))
        result.children[name] = int(n.scalar_one())
    # The stacks the purge's garbage collection will delete: those no kept event points at.
    kept = (
        select(EVENT_STACKS.c.stack_key)
        .join(EVENTS, EVENTS.c.id == EVENT_STACKS.c.event_pk)
        .where(~func.coalesce(due, false()))
    )
    freed = unused_stacks(conn.dialect.name, kept)
    for name, table in (("stacks", STACKS), ("stack_frames", STACK_FRAMES)):
        n = conn.execute(
            select(func.count()).select_from(table).where(table.c.stack_key.in_(freed))
        )
        result.children[name] = int(n.scalar_one())


def purge(
    engine: Engine,
    older_than: dt.timedelta,
    *,
    retention_minimum: dt.timedelta | None = None,
    projects: Sequence[str] = (),
    dry_run: bool = False,
    batch_size: int = DEFAULT_BATCH,
    vacuum: bool = False,
    command: str = "purge",
    now: dt.datetime | None = None,
    lock: AbstractContextManager[object] | None = None,
    on_batch: Callable[[PurgeResult], None] | None = None,
) -> PurgeResult:
    """Delete (or count, with ``dry_run``) the events older than ``now - older_than``.

    ``lock``, when given, is entered around the deleting part (not around a dry run): the
    archive's run lock, so a purge and a sync never write at the same time.
    """
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, not {batch_size}")
    cutoff = compute_cutoff(older_than, retention_minimum, now=now)
    store = Store(engine)
    with engine.connect() as conn:
        project_ids = resolve_projects(conn, projects)
    result = PurgeResult(cutoff=cutoff, project_ids=project_ids, dry_run=dry_run)
    if dry_run:
        with engine.connect() as conn:
            count_due(conn, cutoff, project_ids, result)
        return result
    with lock if lock is not None else contextlib.nullcontext():
        result.purge_id = _start(store, result, command)
        outcome = "failed"
        try:
            _delete_batches(store, result, batch_size, on_batch)
            with store.transaction() as conn:
                stacks, frames = collect_garbage(conn)
            result.children["stacks"] = stacks
            result.children["stack_frames"] = frames
            outcome = "success"
        except KeyboardInterrupt:
            outcome = "interrupted"
            raise
        finally:
            with store.transaction() as conn:
                conn.execute(
                    update(PURGES)
                    .where(PURGES.c.id == result.purge_id)
                    .values(outcome=outcome, finished_at=utcnow(), events_deleted=result.events)
                )
    if vacuum:
        reclaim_space(engine)
        result.vacuumed = True
    return result


def _start(store: Store, result: PurgeResult, command: str) -> int:
    with store.transaction() as conn:
        inserted = conn.execute(
            insert(PURGES).values(
                started_at=utcnow(),
                cutoff=result.cutoff,
                projects=result.project_ids,
                dry_run=False,
                events_deleted=0,
                command=command,
                host=socket.gethostname(),
                pid=os.getpid(),
                outcome="running",
            )
        )
        pk = inserted.inserted_primary_key
        assert pk is not None
        return int(pk[0])


def _delete_batches(
    store: Store,
    result: PurgeResult,
    batch_size: int,
    on_batch: Callable[[PurgeResult], None] | None,
) -> None:
    due = _due(result.cutoff, result.project_ids)
    while True:
        with store.transaction() as conn:
            batch = conn.execute(
                select(EVENTS.c.id, EVENTS.c.project_id)
                .where(due)
                .order_by(EVENTS.c.id)
                .limit(batch_size)
            ).all()
            if not batch:
                return
            ids = [int(pk) for pk, _ in batch]
            # Children explicitly: PostgreSQL has no foreign key to cascade (migration 0008),
            # and the counts are exact (SQLite's cascade would also need foreign_keys on).
            for name, table in CHILD_TABLES.items():
                gone = conn.execute(delete(table).where(table.c.event_pk.in_(ids))).rowcount
                result.children[name] = result.children.get(name, 0) + max(gone, 0)
            conn.execute(delete(EVENTS).where(EVENTS.c.id.in_(ids)))
            for _, pid in batch:
                result.by_project[int(pid)] = result.by_project.get(int(pid), 0) + 1
            result.events += len(ids)
            result.batches += 1
            conn.execute(
                update(PURGES)
                .where(PURGES.c.id == result.purge_id)
                .values(events_deleted=result.events)
            )
        if on_batch is not None:
            on_batch(result)


def reclaim_space(engine: Engine) -> None:
    """SQLite: VACUUM and truncate the WAL (the file shrinks). PostgreSQL: VACUUM ANALYZE the
    event tables (the space becomes reusable; the files shrink only with VACUUM FULL)."""
    raw = engine.raw_connection()
    try:
        driver: Any = raw.driver_connection
        if engine.dialect.name == "sqlite":
            driver.execute("VACUUM")
            driver.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        else:
            driver.autocommit = True
            for table in (EVENTS, *CHILD_TABLES.values(), STACKS, STACK_FRAMES):
                driver.execute(f'VACUUM ANALYZE "{table.name}"')
    finally:
        raw.close()


def database_size(url: str) -> int | None:
    """Bytes of a SQLite database file and its WAL (None for other databases)."""
    parsed = make_url(db.normalize_url(url))
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return None
    path = Path(parsed.database)
    return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())


def project_slugs(engine: Engine) -> dict[int, str]:
    """Archived project id -> slug, to name projects in a purge's report."""
    with engine.connect() as conn:
        return {
            int(i): str(s) for i, s in conn.execute(select(PROJECTS.c.id, PROJECTS.c.slug)) if s
        }


def describe(result: PurgeResult, slugs: dict[int, str]) -> str:
    """One line: what a purge deleted (or, dry, would delete), per project."""
    per = ", ".join(f"{slugs.get(p, p)}: {n}" for p, n in sorted(result.by_project.items()))
    children = sum(result.children.values())
    verb = "would delete" if result.dry_run else "deleted"
    text = f"{verb} {plural(result.events, 'event')}"
    if per:
        text += f" ({per})"
    return text + f" and {plural(children, 'child row')} dated before {result.cutoff.isoformat()}"
