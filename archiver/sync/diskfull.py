"""A full disk, named: the archive's, the one of SQLite's temporary files, or the spool's.

And any other database failure of a sync as the one line an operator reads
(:func:`database_error`), the full disk being the case it names.

A sync writes on up to three disks: the archive's (the database file and its -wal), the
temporary directory SQLite uses for its own scratch files (``SQLITE_TMPDIR`` or ``TMPDIR``),
and the run's spool (:mod:`archiver.sync.spool`, under ``TMPDIR``). SQLite says only
"database or disk is full" whichever of the first two filled up, so the message names the
candidates with their free space, the fuller one first, and the operator sees at once where
room is missing.

Every disk-full ends the run with :class:`~archiver.errors.DatabaseError` (exit 7), the spool's
included: a full ``TMPDIR`` reaches the run through SQLite's scratch files just as well, as the
same driver error, so one cause gets one exit code whichever way it surfaced. It is not a
partial run (exit 3, retried next time by itself): nothing gets better until space is freed.
Committed pages are kept either way (each page commits in one transaction), and the next run
resumes from them.
"""

from __future__ import annotations

import errno
import os
import shutil
import sqlite3
from pathlib import Path

from sqlalchemy.engine import URL
from sqlalchemy.exc import SQLAlchemyError

from archiver.errors import DatabaseError

FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
SQLITE_FULL = 13
PG_DISK_FULL = "53100"  # PostgreSQL's SQLSTATE disk_full


def is_disk_full(exc: BaseException) -> bool:
    """True for a full disk (or quota), as the OS, SQLite or PostgreSQL reports it."""
    if isinstance(exc, OSError):
        return exc.errno in FULL_ERRNOS
    if isinstance(exc, SQLAlchemyError):
        orig = getattr(exc, "orig", None)
        if isinstance(orig, sqlite3.Error):
            return getattr(orig, "sqlite_errorcode", None) == SQLITE_FULL or (
                "database or disk is full" in str(orig)
            )
        return getattr(orig, "sqlstate", None) == PG_DISK_FULL
    return False


def free_space(path: str | os.PathLike[str]) -> int | None:
    """Bytes free to this process on the disk holding ``path`` (None: cannot tell)."""
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return None


def human(size: int | None) -> str:
    if size is None:
        return "free space unknown"
    value = float(size)
    for unit in ("bytes", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit} free" if unit == "bytes" else f"{value:.1f} {unit} free"
        value /= 1024
    raise AssertionError("unreachable")


def sqlite_temp_dir() -> str:
    """Where SQLite puts its scratch files on Unix: SQLITE_TMPDIR, TMPDIR, then /var/tmp..."""
    for candidate in (os.environ.get("SQLITE_TMPDIR"), os.environ.get("TMPDIR")):
        if candidate and os.path.isdir(candidate):
            return candidate
    for candidate in ("/var/tmp", "/usr/tmp", "/tmp"):
        if os.path.isdir(candidate):
            return candidate
    return "."


def database_full(url: URL) -> DatabaseError:
    """The run's end when the database reported a full disk."""
    if url.get_backend_name() != "sqlite" or not url.database:
        where = f"{url.host or 'localhost'}:{url.port or 5432}/{url.database}"
        return DatabaseError(
            f"the database server's disk is full (PostgreSQL {where}): the sync stopped; "
            "pages committed so far are kept. Free space on the server and run again"
        )
    archive = Path(url.database).resolve()
    scratch = sqlite_temp_dir()
    candidates = sorted(
        [
            (free_space(archive.parent), f"the archive's disk ({archive}"),
            (free_space(scratch), f"SQLite's temporary directory (TMPDIR {scratch}"),
        ],
        key=lambda c: -1 if c[0] is None else c[0],
    )
    named = " or ".join(f"{what}, {human(free)})" for free, what in candidates)
    return DatabaseError(
        f"the disk is full: {named}. The sync stopped; pages committed so far are kept. "
        "Free space there and run again"
    )


def spool_full(spool: Path) -> DatabaseError:
    """The run's end when the spool (page files in flight) could not be written."""
    return DatabaseError(
        f"the spool's disk is full: TMPDIR {spool.parent} ({human(free_space(spool.parent))}), "
        "where the sync keeps the pages in flight. The sync stopped; pages committed so far "
        "are kept. Free space there or set TMPDIR to a directory with room, and run again"
    )


def database_error(exc: SQLAlchemyError, url: URL | None = None) -> DatabaseError:
    """A database failure as the one-line error the command line reports (exit 7).

    The driver's own message says what happened (a terminated connection, a lock timeout);
    SQLAlchemy's wrapper adds the statement and a link, which say nothing to an operator. A
    full disk is named (which disk, how much is free: :func:`database_full`).
    """
    if url is not None and is_disk_full(exc):
        return database_full(url)
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
    return DatabaseError(f"the archive's database failed during the sync: {text}")
