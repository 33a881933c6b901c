"""The writer alone: CPU time per event of the sync's writer into a fresh archive.

    python bench/bench_writer.py SOURCE.db [--events 5000] [--db sqlite:///...] [--repeat 3]

Takes the raw JSON of the events of an existing archive (for example the one `sentry-archiver
demo` writes, or a bench_sync run's), normalizes and encodes them once, spools each page's
events to a rows file as the page workers do, then writes them into a new archive in pages of
100, one transaction per page, as the sync's writer does: reading the spooled events back in
batches (``sync.opened``) and ``Store.write_events`` (``--sql`` runs statements on the new
archive first, to try a schema change). Reports the writer's CPU time per event
(``time.process_time``: less sensitive to other load on the machine than wall time; the best
of ``--repeat`` runs) and wall time, and the normalizer's CPU time for comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import Engine

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _measure import empty_pg

from archiver.normalize import normalize_event
from archiver.storage import db, rawjson
from archiver.storage.encode import EncodedEvent, encode_event
from archiver.storage.store import Store
from archiver.sync import writer as sync
from archiver.sync.workers import _RowsFile


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source")
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--db", help="target database URL (default: a new SQLite file)")
    parser.add_argument(
        "--pages-per-commit",
        type=int,
        default=1,
        help="pages of 100 events per transaction (the sync commits one)",
    )
    parser.add_argument("--page-size", type=int, help="SQLite page size of the new archive")
    parser.add_argument(
        "--sql",
        action="append",
        default=[],
        help="run this statement on the new archive first (experiments)",
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs; the best is reported")
    args = parser.parse_args()
    con = sqlite3.connect(args.source)
    rawjson.register(con)  # an archive of 0006 or later keeps raw JSON compressed
    rows = con.execute(
        "SELECT project_id, issue_id, CASE WHEN raw_zstd IS NULL THEN raw_json "
        "ELSE sentry_raw_json(raw_zstd, raw_dict_id) END FROM events ORDER BY id LIMIT ?",
        (args.events,),
    ).fetchall()
    con.close()
    payloads = [(pid, iid, json.loads(raw)) for pid, iid, raw in rows]
    started = time.process_time()
    normalized = [normalize_event(p, project_id=pid, issue_id=iid) for pid, iid, p in payloads]
    normalize_cpu = time.process_time() - started
    dialect = "postgresql" if (args.db or "").startswith("postgresql") else "sqlite"
    started = time.process_time()
    events = [encode_event(ev, dialect) for ev in normalized]  # done by the workers in a sync
    encode_cpu = time.process_time() - started
    best: tuple[float, float] | None = None
    for _ in range(args.repeat):
        cpu, wall = write_all(args, events)
        best = (cpu, wall) if best is None or cpu < best[0] else best
    assert best is not None
    cpu, wall = best
    n = len(events)
    server = (
        f", PostgreSQL server {min(SERVER_CPU) / n * 1000:.3f} ms CPU/event"
        if dialect == "postgresql"
        else ""
    )
    print(
        f"{n} events: writer {cpu / n * 1000:.3f} ms CPU/event "
        f"({wall / n * 1000:.3f} ms wall){server}, "
        f"normalize {normalize_cpu / n * 1000:.3f} + encode {encode_cpu / n * 1000:.3f} ms "
        "CPU/event (both in worker processes during a sync)"
    )


def write_all(args: argparse.Namespace, events: list[EncodedEvent]) -> tuple[float, float]:
    """Spool the events a page at a time, then write them as the sync's writer does."""
    with tempfile.TemporaryDirectory() as tmp:
        url = args.db or f"sqlite:///{tmp}/writer.db"
        if args.page_size and not args.db:
            new = sqlite3.connect(f"{tmp}/writer.db")
            new.execute(f"PRAGMA page_size = {args.page_size}")
            new.execute("VACUUM")  # an empty database takes the page size now
            new.close()
        engine = db.make_engine(url)
        if engine.dialect.name == "postgresql":  # each run starts from an empty archive
            empty_pg(url)
        db.upgrade(engine)
        for statement in args.sql:
            with engine.begin() as conn:
                conn.exec_driver_sql(statement)
        pages = []
        for start in range(0, len(events), 100):
            path = f"{tmp}/{start}.rows"
            with open(path, "wb") as out:
                emit = _RowsFile(out)
                pages.append((path, [emit(ev) for ev in events[start : start + 100]]))
        store = Store(engine)
        backend = _backend_pid(engine)  # the one pooled connection the writer goes on using
        server = _cpu_seconds(backend)
        cpu, wall = time.process_time(), time.perf_counter()
        for first in range(0, len(pages), args.pages_per_commit):
            with store.transaction() as conn:
                for path, refs in pages[first : first + args.pages_per_commit]:
                    with open(path, "rb") as rows:
                        for batch in sync.opened(refs, rows):
                            store.write_events(conn, batch)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        SERVER_CPU.append(_cpu_seconds(backend) - server)
        engine.dispose()
    return cpu, wall


# CPU seconds of the PostgreSQL server process of each run (0 on SQLite or a remote server)
SERVER_CPU: list[float] = []


def _backend_pid(engine: Engine) -> int | None:
    """The server process of the engine's pooled connection (PostgreSQL only)."""
    if engine.dialect.name != "postgresql":
        return None
    with engine.connect() as conn:
        return int(conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())


def _cpu_seconds(pid: int | None) -> float:
    """user + system CPU seconds of a local process (0 when unknown or not local)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, TypeError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


if __name__ == "__main__":
    main()
