"""Where a backfill's wall time goes: start-up, the first page, the walk, the end, the exit.

    python bench/bench_phases.py                              # this tree, 10,000 events, 3 runs
    python bench/bench_phases.py --other /work/main --runs 4  # and another tree, alternating
    python bench/bench_phases.py --pg postgresql://postgres@127.0.0.1:5432/bench  # and PostgreSQL

Each run is the real CLI (``python -m archiver sync --quiet``, in a process of its own, its
working directory the tree it runs) into a new SQLite file (and with ``--pg``, alternately, into
that PostgreSQL database, emptied first), against one simulator. The phases
come from the archive itself: the ``runs`` row's start and end, and the first and last
``archived_at`` of its events (each page's commit), against the process's own start and end:

* **run start**: the process starts .. the run is recorded (imports, projects, migrations);
* **first commit**: .. the first page is committed (discovery, the first page's round trip);
* **walk**: first commit .. last commit;
* **finish**: last commit .. the run recorded as finished (the writer's last wait, shutdown);
* **exit**: .. the process is gone (interpreter exit).

Figures are medians; on a busy machine the walk moves a lot from run to run, the other phases
much less. Run by hand; nothing here is a test.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _measure import TOKEN, empty_pg, simulator
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parent.parent
PHASES = ("run start", "first commit", "walk", "finish", "exit", "total")


def _epoch(text: str) -> float:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.timezone.utc).timestamp()


def _times(db: Path | str) -> tuple[float, float, float, float]:
    """(first commit, last commit, run start, run end) recorded in the archive."""
    sql = (
        "SELECT (SELECT min(archived_at) FROM events), (SELECT max(archived_at) FROM events), "
        "started_at, finished_at FROM runs"
    )
    if isinstance(db, Path):
        con = sqlite3.connect(db)
        try:
            row = con.execute(sql).fetchone()
        finally:
            con.close()
        first, last, started, finished = map(_epoch, row)
        return first, last, started, finished
    engine = create_engine(db)
    try:
        with engine.connect() as conn:
            first, last, started, finished = conn.execute(text(sql)).one()
    finally:
        engine.dispose()
    stamps = [t.replace(tzinfo=t.tzinfo or dt.timezone.utc).timestamp() for t in (first, last)]
    runs = [t.replace(tzinfo=t.tzinfo or dt.timezone.utc).timestamp() for t in (started, finished)]
    return stamps[0], stamps[1], runs[0], runs[1]


def one_run(tree: Path, url: str, db: Path | str, extra: list[str]) -> tuple[float, ...]:
    """The phases of one sync of the tree ``tree`` into a new ``db`` (a SQLite file, or an
    emptied PostgreSQL database's URL), in seconds."""
    if isinstance(db, Path):
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        db_url = f"sqlite:///{db}"
    else:
        empty_pg(db)
        db_url = db
    env = {
        **os.environ,
        "SENTRY_URL": url,
        "SENTRY_AUTH_TOKEN": TOKEN,
        "SENTRY_ORG": "acme",
        "SENTRY_ARCHIVER_DB": db_url,
        "PYTHONPATH": str(tree),
    }
    env.pop("SENTRY_ARCHIVER_CONFIG", None)
    began = time.time()
    code = subprocess.call(
        [sys.executable, "-m", "archiver", "sync", "--quiet", *extra], cwd=tree, env=env
    )
    ended = time.time()
    if code != 0:
        raise SystemExit(f"the sync of {tree} exited {code}")
    first, last, started, finished = _times(db)
    return (
        started - began,
        first - started,
        last - first,
        finished - last,
        ended - finished,
        ended - began,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--other", type=Path, help="another source tree, run alternately")
    parser.add_argument("--pg", help="also a PostgreSQL database (emptied before each run)")
    parser.add_argument("sync_args", nargs="*", help="more sync options (after --)")
    args = parser.parse_args()
    trees = [ROOT, *([args.other.resolve()] if args.other else [])]
    with tempfile.TemporaryDirectory() as tmp, simulator(args.events) as sim:
        targets: list[tuple[str, Path | str]] = [("sqlite", Path(tmp) / "phases.db")]
        if args.pg:
            targets.append(("postgresql", args.pg))
        results: dict[tuple[Path, str], list[tuple[float, ...]]] = {}
        for n in range(args.runs):
            for tree in trees:
                for name, db in targets:
                    phases = one_run(tree, sim.url, db, args.sync_args)
                    results.setdefault((tree, name), []).append(phases)
                    shown = ", ".join(f"{p} {s:.2f}" for p, s in zip(PHASES, phases, strict=True))
                    load = os.getloadavg()[0]
                    print(f"{tree} {name} run {n + 1}: {shown} (load {load:.1f})", flush=True)
    print("\n| tree | database | " + " | ".join(PHASES) + " |")
    print("|---" * (len(PHASES) + 2) + "|")
    for (tree, name), runs in results.items():
        medians = [statistics.median(r[i] for r in runs) for i in range(len(PHASES))]
        print(f"| {tree} | {name} | " + " | ".join(f"{m:.2f} s" for m in medians) + " |")


if __name__ == "__main__":
    main()
