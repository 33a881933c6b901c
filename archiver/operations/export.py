"""``sentry-archiver export``: stream archived events as JSON lines or CSV.

Events are read in batches of :data:`BATCH` by keyset pagination on ``events.id`` (each batch
is a short query ``WHERE id > last ORDER BY id LIMIT n``), so memory stays constant however
large the archive, no transaction is held open for the whole export, and a sync may run at the
same time (events archived after the export passed their id are simply not included).

* ``jsonl``: one event per line, the ``raw_json`` exactly as archived (byte for byte).
* ``csv``: one flat row per event, the columns of :data:`CSV_COLUMNS` (timestamps in ISO 8601
  UTC, NULL as an empty cell).
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from sqlalchemy import ColumnElement, Connection, Engine, Table, and_, select
from sqlalchemy.exc import OperationalError

from archiver.errors import DatabaseError, ExportError
from archiver.storage import db
from archiver.storage.models import Event, Issue, Project

BATCH = 1000
FORMATS = ("jsonl", "csv")

EVENTS: Table = Event.__table__  # type: ignore[assignment]
PROJECTS: Table = Project.__table__  # type: ignore[assignment]
ISSUES: Table = Issue.__table__  # type: ignore[assignment]

# CSV header -> column (events unless said otherwise).
CSV_COLUMNS: list[tuple[str, ColumnElement[Any]]] = [
    ("id", EVENTS.c.id),
    ("project_id", EVENTS.c.project_id),
    ("project_slug", PROJECTS.c.slug),
    ("event_id", EVENTS.c.event_id),
    ("issue_id", EVENTS.c.issue_id),
    ("issue_short_id", ISSUES.c.short_id),
    ("date_created", EVENTS.c.date_created),
    ("date_received", EVENTS.c.date_received),
    ("level", EVENTS.c.level),
    ("type", EVENTS.c.type),
    ("platform", EVENTS.c.platform),
    ("title", EVENTS.c.title),
    ("message", EVENTS.c.message),
    ("culprit", EVENTS.c.culprit),
    ("transaction", EVENTS.c.transaction_name),
    ("environment", EVENTS.c.environment),
    ("release", EVENTS.c.release),
    ("dist", EVENTS.c.dist),
    ("user_id", EVENTS.c.user_id),
    ("user_email", EVENTS.c.user_email),
    ("user_username", EVENTS.c.user_username),
    ("user_ip_address", EVENTS.c.user_ip_address),
    ("user_name", EVENTS.c.user_name),
    ("sdk_name", EVENTS.c.sdk_name),
    ("sdk_version", EVENTS.c.sdk_version),
    ("problem_count", EVENTS.c.problem_count),
    ("archived_at", EVENTS.c.archived_at),
]


@dataclass
class ExportFilter:
    projects: Sequence[str] = ()  # slugs or numeric ids
    since: dt.datetime | None = None  # inclusive
    until: dt.datetime | None = None  # exclusive
    project_ids: list[int] = field(default_factory=list)


def parse_when(value: str, option: str) -> dt.datetime:
    """``2024-05-01`` or ``2024-05-01T12:00:00[Z|+02:00]``; naive values are UTC."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ExportError(
            f"{option}: {value!r} is not a date (use YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS[Z])"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return when.astimezone(dt.timezone.utc)


def resolve_projects(conn: Connection, wanted: Sequence[str]) -> list[int]:
    """Project ids for slugs or ids; an unknown one is an error (a typo must not export 0 rows)."""
    ids: set[int] = set()
    rows = conn.execute(select(PROJECTS.c.id, PROJECTS.c.slug)).all()
    by_slug = {slug: pid for pid, slug in rows if slug}
    known = {pid for pid, _ in rows}
    for item in wanted:
        for name in (p.strip() for p in item.replace(",", " ").split()):
            if name in by_slug:
                ids.add(by_slug[name])
            elif name.isdigit() and int(name) in known:
                ids.add(int(name))
            else:
                choices = ", ".join(sorted(by_slug)) or "none archived yet"
                raise ExportError(
                    f"--project {name!r}: no such project in the archive (projects: {choices})"
                )
    return sorted(ids)


def _conditions(flt: ExportFilter) -> list[ColumnElement[bool]]:
    cond: list[ColumnElement[bool]] = []
    if flt.project_ids:
        cond.append(EVENTS.c.project_id.in_(flt.project_ids))
    if flt.since is not None:
        cond.append(EVENTS.c.date_created >= flt.since)
    if flt.until is not None:
        cond.append(EVENTS.c.date_created < flt.until)
    return cond


def iter_batches(
    engine: Engine, columns: Sequence[ColumnElement[Any]], flt: ExportFilter, batch: int = BATCH
) -> Iterator[Sequence[Sequence[Any]]]:
    """Rows of ``columns`` (the first must be ``events.id``) in id order, ``batch`` at a time."""
    last: int | None = None
    base = _conditions(flt)
    while True:
        cond = list(base)
        if last is not None:
            cond.append(EVENTS.c.id > last)
        query = (
            select(*columns)
            .select_from(
                EVENTS.join(PROJECTS, PROJECTS.c.id == EVENTS.c.project_id).outerjoin(
                    ISSUES, ISSUES.c.id == EVENTS.c.issue_id
                )
            )
            .where(and_(True, *cond))
            .order_by(EVENTS.c.id)
            .limit(batch)
        )
        with engine.connect() as conn:
            rows = conn.execute(query).all()
        if not rows:
            return
        yield rows
        last = rows[-1][0]
        if len(rows) < batch:
            return


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")
    return value


def export_events(
    engine: Engine, out: TextIO, fmt: str, flt: ExportFilter, batch: int = BATCH
) -> int:
    """Write the selected events to ``out``; returns how many were written.

    ``engine`` is an archive at the current schema (``db.open_archive`` checks that).
    """
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r} (use {' or '.join(FORMATS)})")
    try:
        with engine.connect() as conn:
            if flt.projects:
                flt.project_ids = resolve_projects(conn, flt.projects)
    except OperationalError as exc:
        raise DatabaseError(f"cannot read {db.safe_url(str(engine.url))}: {exc.orig}") from None
    count = 0
    if fmt == "jsonl":
        for rows in iter_batches(engine, [EVENTS.c.id, EVENTS.c.raw_json], flt, batch):
            out.writelines(f"{raw}\n" for _, raw in rows)
            count += len(rows)
        return count
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([name for name, _ in CSV_COLUMNS])
    for rows in iter_batches(engine, [c for _, c in CSV_COLUMNS], flt, batch):
        writer.writerows([_csv_value(v) for v in row] for row in rows)
        count += len(rows)
    return count
