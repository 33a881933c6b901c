"""A SQLite archive's file: checked before SQLite opens it, and opened read-only when it must.

SQLite reports a damaged or foreign file, or a read-only one, only when a query reaches it,
often deep in a sync, and in words that do not say which file or directory is at fault. These
checks say it first, in one line (exit 7).
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote

from archiver.errors import DatabaseError


def check_sqlite_file(path: Path) -> None:
    """Refuse a file that is not a SQLite database, or one cut short, before SQLite reads it.

    SQLite itself says "file is not a database" or "database disk image is malformed" only
    when a query reaches the damaged part, which can be deep in a sync or an export. The
    header (the first 100 bytes) says how many pages the database has: a shorter file lost
    its end (a copy interrupted, a disk that filled up).
    """
    size = path.stat().st_size
    if size == 0:
        return  # a new archive (created empty, 0600, before SQLite writes its header)
    with path.open("rb") as f:
        header = f.read(100)
    if len(header) < 100 or not header.startswith(b"SQLite format 3\x00"):
        raise DatabaseError(f"{path} is not a database (not a SQLite file): refusing to use it")
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65_536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    # A WAL still holding pages makes a short file no proof of loss: a checkpoint cut off by a
    # full disk writes page 1 (with the new page count) before the pages that extend the
    # file, and SQLite completes it from the WAL on the next open.
    wal = Path(f"{path}-wal")
    if wal.exists() and wal.stat().st_size > 0:
        return
    # the page count is valid only when written by the same change as the change counter
    if header[24:28] == header[92:96] and size < pages * page_size:
        raise DatabaseError(
            f"the SQLite archive {path} is truncated ({size} bytes of the {pages * page_size} "
            "its header promises): restore it from a backup"
        )


def check_writable(path: Path) -> None:
    """Say which is read-only, the archive's file or its directory, before SQLite fails.

    SQLite in WAL mode writes ``-wal`` and ``-shm`` files beside the archive, so the directory
    must be writable too unless both already exist.
    """
    if path.exists():
        if not os.access(path, os.W_OK):
            raise DatabaseError(f"the archive {path} is read-only (the file is not writable)")
        companions = (Path(f"{path}-wal"), Path(f"{path}-shm"))
        if all(p.exists() for p in companions) or os.access(path.parent, os.W_OK):
            return
        raise DatabaseError(
            f"the archive {path} is in a read-only directory ({path.parent}): SQLite must "
            f"create {path.name}-wal and {path.name}-shm beside it"
        )
    if not os.access(path.parent, os.W_OK):
        raise DatabaseError(
            f"cannot create the archive {path}: the directory {path.parent} is read-only"
        )


def read_only_uri(path: Path) -> str | None:
    """A SQLite URI that reads the archive without writing anything, if it must; else None.

    None when the file and its directory are writable: then the archive opens as usual (a
    reader then shares the WAL with a running sync). A read-only file opens with ``mode=ro``
    when SQLite can still create or use its ``-shm``; in a read-only directory without a
    ``-wal`` (an archive closed cleanly: its file holds everything) ``immutable=1`` tells
    SQLite that nothing else writes it, so it needs no ``-shm`` and takes no locks.
    """
    if os.access(path, os.W_OK) and os.access(path.parent, os.W_OK):
        return None
    wal = Path(f"{path}-wal")
    quoted = quote(str(path))
    if os.access(path.parent, os.W_OK) or (wal.exists() and wal.stat().st_size > 0):
        return f"file:{quoted}?mode=ro"
    return f"file:{quoted}?mode=ro&immutable=1"
