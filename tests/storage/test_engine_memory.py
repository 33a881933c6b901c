"""What a SQLite archive's engine keeps open between uses (the sync process's memory).

Each SQLite connection holds its own page cache (``SQLITE_CACHE_KIB``) and its own prepared
statements (the writer's multi-row INSERTs are large), and they fill up on whichever
connection the writer is handed. A pool that keeps several idle connections hands the writer
each of them in turn (the run lock's heartbeat takes one while the writer holds another), so
a long sync ended up paying for all of them.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from archiver.storage import db


def test_a_sqlite_engine_keeps_one_idle_connection(tmp_path: Path) -> None:
    engine = db.make_engine(f"sqlite:///{tmp_path / 'a.db'}")
    try:
        held = [engine.connect() for _ in range(3)]  # at once: each thread gets its own
        for conn in held:
            assert conn.execute(text("SELECT 1")).scalar_one() == 1
        for conn in held:
            conn.close()
        assert engine.pool.checkedin() == 1  # type: ignore[attr-defined]
        with engine.connect() as conn:  # and it is used again
            assert conn.execute(text("SELECT 2")).scalar_one() == 2
        assert engine.pool.checkedin() == 1  # type: ignore[attr-defined]
    finally:
        engine.dispose()
