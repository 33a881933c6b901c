"""``sentry-archiver export``: stream archived events as JSON lines or CSV.

Events are read in batches of :data:`BATCH` by keyset pagination on ``events.id`` (each batch
is a short query ``WHERE id > last ORDER BY id LIMIT n``), so memory stays constant however
large the archive, no transaction is held open for the whole export, and a sync may run at the
same time (events archived after the export passed their id are simply not included).

* ``jsonl``: one event per line, the ``raw_json`` exactly as archived (byte for byte).
* ``csv``: one flat row per event, the columns of :data:`CSV_COLUMNS` (timestamps in ISO 8601
  UTC, NULL as an empty cell). Text that a spreadsheet would run as a formula is prefixed with
  ``'`` unless ``escape_formulas`` is off (events carry text anyone could send to Sentry).

A file output is checked before anything is read (never the archive itself or its -wal/-shm
files, never through a symbolic link), written to a temporary file beside it, readable by its
owner only, and renamed over the target only when the export succeeded: a failed or refused
export leaves the directory as it was.
"""

from __future__ import annotations

import csv
import datetime as dt
import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy import ColumnElement, Connection, Engine, Table, and_, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError

from archiver.errors import ArchiverError, DatabaseError, ExportError
from archiver.storage import db
from archiver.storage.models import Event, Issue, Project
from archiver.storage.rawtrain import raw_json_column

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


# What a spreadsheet reads as the start of a formula (OWASP's "CSV injection" list).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# Files SQLite keeps beside a database: writing over any of them corrupts the archive.
SQLITE_COMPANIONS = ("", "-wal", "-shm", "-journal")


def _csv_value(value: Any, escape_formulas: bool = True) -> Any:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")
    if escape_formulas and isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def _archive_files(db_url: str) -> set[str]:
    """The real paths of the SQLite archive behind ``db_url`` and its companions (or none)."""
    try:
        url = make_url(db.normalize_url(db_url))
    except ArgumentError:
        return set()
    database = url.database
    if url.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return set()
    if database.startswith("file:"):
        database = database[len("file:") :].split("?", 1)[0]
    names = {os.path.abspath(database), os.path.realpath(database)}
    return {name + suffix for name in names for suffix in SQLITE_COMPANIONS}


def check_output(output: str, db_url: str) -> Path:
    """``output`` as a path a new file may be renamed onto; ExportError if it may not.

    Refused: a missing directory, a directory, a symbolic link (writing through it would
    replace another file, wherever it points) and the archive's own files under any name.
    """
    path = Path(output)
    if not path.parent.is_dir():
        raise ExportError(f"--output {output}: the directory {path.parent} does not exist")
    if path.is_symlink():
        raise ExportError(
            f"--output {output} is a symbolic link (to {os.readlink(path)}); name the file itself"
        )
    if path.is_dir():
        raise ExportError(f"--output {output} is a directory; name a file")
    if os.path.realpath(path) in _archive_files(db_url):
        raise ExportError(f"--output {output} is the archive (or one of its files); name another")
    return path


@contextmanager
def atomic_output(path: Path) -> Iterator[TextIO]:
    """A text file that becomes ``path`` (mode 0600) only if the block succeeds.

    The temporary file sits beside ``path`` so the final rename stays on one filesystem and is
    atomic: a reader sees the old file or the whole new one, and a failure (an error, a full
    disk, Ctrl-C) removes the temporary file and leaves ``path`` as it was.
    """
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise ExportError(f"--output {path}: cannot write ({exc.strerror})") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:  # a full disk, a quota: say so in one line
        Path(tmp).unlink(missing_ok=True)
        raise ArchiverError(f"--output {path}: cannot write ({exc.strerror or exc})") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def export_events(
    engine: Engine,
    out: TextIO,
    fmt: str,
    flt: ExportFilter,
    batch: int = BATCH,
    *,
    escape_formulas: bool = True,
) -> int:
    """Write the selected events to ``out``; returns how many were written.

    ``engine`` is an archive at the current schema (``db.open_archive`` checks that).
    ``escape_formulas`` (CSV only) prefixes text cells starting with one of
    :data:`FORMULA_STARTS` with ``'``, so a spreadsheet shows them instead of running them.
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
        raw = raw_json_column(engine.dialect.name)
        for rows in iter_batches(engine, [EVENTS.c.id, raw], flt, batch):
            out.writelines(f"{raw}\n" for _, raw in rows)
            count += len(rows)
        return count
    writer = csv.writer(out, lineterminator="\n")
    # With "\n" as the line end the csv module leaves a bare "\r" unquoted, and readers then
    # split the row there: a row holding one is written with every cell quoted.
    quoted = csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_ALL)
    writer.writerow([name for name, _ in CSV_COLUMNS])
    for rows in iter_batches(engine, [c for _, c in CSV_COLUMNS], flt, batch):
        for row in rows:
            cells = [_csv_value(v, escape_formulas) for v in row]
            has_cr = any(isinstance(c, str) and "\r" in c for c in cells)
            (quoted if has_cr else writer).writerow(cells)
        count += len(rows)
    return count
