"""Time every README cookbook recipe on a 1,000,000-event SQLite archive (a bench, not a test).

    python bench/bench_cookbook.py [--db /tmp/bench-cookbook.db] [--events 1000000] [--rebuild]

How the archive is made: rows are **synthesised directly with bulk inserts** (``executemany``
in one transaction) into a database built by the migrations, not archived through the
simulator (a 1M-event sync would take hours and ~40 GB: demo events carry ~50 frames and
~24 KB of raw JSON each). The synthetic archive keeps what matters to the recipes' speed:

* 1,000,000 events over 366 days (2023-06-01 .. 2024-05-31) in 3 projects and 300 issues
  with a skewed (Zipf-like) size distribution, 40 releases per project following the calendar,
  4 environments, 50,000 users (id, email only, IP only or none);
* one raised exception per event (one in ten also has a chained cause), 10 frames per
  exception stack of which the lower 6 are in-app: ~10.3 M rows of the ``frames`` view, stored
  once per distinct stack (one per issue, and the cause's; migration 0007);
* ``raw_json`` of ~2 KB per event. A real payload is 5-50 KB, but SQLite keeps only its first
  ~0.5-4 KB in the table page (the rest in overflow pages, read only when ``raw_json`` is),
  so ~2 KB gives full scans of ``events`` about the real cost per row;
* no tags, breadcrumbs, contexts or requests (no recipe reads them);
* the facts the views read (``events.day``, ``user_key``, raised exception, crash frame:
  migration 0004) written with each event, as ``normalize.event_facts`` would write them.

The archive is reused when it exists (``--rebuild`` to make it again). Each recipe runs once
cold-ish (first run after opening) and then 3 times; the median of those is reported. No
ANALYZE is run: the archive is timed as the tool leaves it.

Results (2026-12, shared 2-CPU machine, SQLite 3.40.1; README, "How fast are the recipes?"):
every recipe answers in 0.01-0.53 s (it was 0.4-12.9 s with the 0003 views on the same
archive). The 0003 views read all 1M wide event rows (~4 KB each in this archive) and computed
the day, the user key and the raised exception's top in-app frame (joins over 10.3 M frames)
per row and per query. Migration 0004 keeps those facts on ``events`` and gives each view a
covering index (60-90 bytes per event) whose leading columns are the view's GROUP BY columns
(no sort) followed by ``user_key``: ``count(DISTINCT user_key)`` then meets each group's users
in order and costs little (the v_issue_users aggregate: 0.88 s with user_key after
date_created, 0.33 s with it first). What remains is one pass over an index per whole-archive
recipe, so those grow linearly with the archive: rollup tables maintained by the sync would be
the next step.
Upgrading the 0003 archive to 0004 (backfill and indexes) took 112 s.
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import statistics
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from archiver.storage import db  # noqa: E402
from archiver.storage.stacks import FRAME_VALUES, stack_key  # noqa: E402
from scripts import cookbook  # noqa: E402

PROJECTS = [
    (1071183, "backend", "python"),
    (1086185, "frontend", "javascript"),
    (2162763818, "payments-service", "java"),
]
START = datetime(2023, 6, 1)
DAYS = 366
ISSUES = 300
USERS = 50_000
RELEASES = 40
TYPES = [
    "TimeoutError",
    "ZeroDivisionError",
    "RecursionError",
    "KeyError",
    "ValueError",
    "TypeError",
    "AttributeError",
    "ConnectionError",
    "IntegrityError",
    "PermissionError",
    "ReferenceError",
    "SyntaxError",
    "UnhandledRejection",
    "ChunkLoadError",
    "RangeError",
    "NullPointerException",
    "IllegalStateException",
    "IOException",
    "SQLException",
    "IndexError",
]
NOW = "2024-06-01 00:00:00.000000"


def ts(d: datetime) -> str:
    return d.strftime("%Y-%m-%d %H:%M:%S.%f")


def _environment(r: float) -> str | None:
    """Most events in production, some in staging and development, a few with none."""
    if r < 0.85:
        return "production"
    if r < 0.95:
        return "staging"
    return "development" if r < 0.99 else None


def _user(u: int, r: float) -> tuple[str | None, str | None, str | None]:
    """The user as (id, email, ip): most with an id, some known by email or IP only."""
    if r < 0.85:
        return str(u), f"user{u}@example.com", None
    if r < 0.93:
        return None, f"user{u}@example.com", None
    if r < 0.98:
        return None, None, f"10.{u // 65536}.{u // 256 % 256}.{u % 256}"
    return None, None, None


def build(path: Path, events: int, seed: int = 7) -> None:
    if path.exists():
        path.unlink()
    engine = db.make_engine(f"sqlite:///{path}")
    db.upgrade(engine)
    engine.dispose()
    rnd = random.Random(seed)
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA synchronous = OFF")
    con.execute("PRAGMA cache_size = -1000000")
    con.execute("BEGIN")
    con.executemany(
        "INSERT INTO projects (id, organization_slug, slug, name, platform, archived_at, "
        "updated_at) "
        "VALUES (?, 'acme', ?, ?, ?, ?, ?)",
        [(pid, slug, slug, plat, NOW, NOW) for pid, slug, plat in PROJECTS],
    )
    issues = []
    per_project: dict[int, int] = {}
    for n in range(ISSUES):
        pid, slug, _ = PROJECTS[0 if n % 5 < 3 else (1 if n % 5 == 3 else 2)]
        per_project[pid] = per_project.get(pid, 0) + 1
        etype = TYPES[rnd.randrange(len(TYPES))]
        issues.append(
            (
                2_147_000_000 + n,
                pid,
                f"{slug.upper()}-{per_project[pid]:X}",
                etype,
                f"{etype}: synthetic issue {n}",
                n % 200,
            )
        )
    con.executemany(
        "INSERT INTO issues (id, project_id, short_id, title, level, status, archived_at, "
        "updated_at) "
        "VALUES (?, ?, ?, ?, 'error', 'unresolved', ?, ?)",
        [(iid, pid, short, title, NOW, NOW) for iid, pid, short, _, title, _ in issues],
    )
    weights = [1 / (rank + 1) ** 0.8 for rank in range(ISSUES)]
    cum = []
    total = 0.0
    for w in weights:
        total += w
        cum.append(total)
    padding = "x" * 1900

    def event_rows() -> Iterator[tuple[object, ...]]:
        for n in range(1, events + 1):
            issue = issues[min(ISSUES - 1, _bisect(cum, rnd.random() * total))]
            iid, pid, _, etype, title, fn = issue
            slug = next(s for p, s, _ in PROJECTS if p == pid)
            when = START + timedelta(seconds=rnd.randrange(DAYS * 86400))
            rel = f"{slug}@1.{(when - START).days * RELEASES // DAYS}.{n % 3}"
            env = _environment(rnd.random())
            u = rnd.randrange(USERS)
            uid, email, ip = _user(u, rnd.random())
            raw = json.dumps(
                {
                    "eventID": f"{n:032x}",
                    "groupID": str(iid),
                    "title": title,
                    "dateCreated": when.isoformat() + "Z",
                    "padding": padding,
                }
            )
            # The facts normalize.event_facts would write, from the rows made below: the raised
            # exception is the last one, its top in-app frame is the one at position 5.
            user_key = (
                f"id:{uid}"
                if uid is not None
                else f"email:{email}"
                if email is not None
                else f"ip:{ip}"
                if ip is not None
                else None
            )
            module = f"app.mod{fn % 40}"
            yield (
                n,
                pid,
                f"{n:032x}",
                iid,
                title,
                "error",
                env,
                rel,
                ts(when),
                uid,
                email,
                ip,
                raw,
                NOW,
                NOW,
                ts(when)[:10],
                user_key,
                1 if n % 10 == 0 else 0,
                etype,
                5,
                f"fn_{fn}_5",
                module,
                module.replace(".", "/") + ".py",
                100 + fn + 5,
            )

    con.executemany(
        "INSERT INTO events (id, project_id, event_id, issue_id, title, level, environment, "
        "release, date_created, user_id, user_email, user_ip_address, raw_json, has_detail, "
        "is_full, problem_count, archived_at, updated_at, day, user_key, exception_position, "
        "exception_type, crash_position, crash_function, crash_module, crash_filename, "
        "crash_lineno) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, 1, 0, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        event_rows(),
    )
    fn_of = {iid: fn for iid, _, _, _, _, fn in issues}
    type_of = {iid: t for iid, _, _, t, _, _ in issues}

    def exception_rows() -> Iterator[tuple[object, ...]]:
        for pk, iid in con.execute("SELECT id, issue_id FROM events ORDER BY id").fetchall():
            if pk % 10 == 0:
                yield (pk, 0, "OSError", "cause", 0)
                yield (pk, 1, type_of[iid], "raised", 1)
            else:
                yield (pk, 0, type_of[iid], "raised", 1)

    con.executemany(
        "INSERT INTO exceptions (event_pk, position, type, value, is_last) VALUES (?, ?, ?, ?, ?)",
        exception_rows(),
    )

    # Frames are stored once per distinct stack (migration 0007): the events of an issue
    # share theirs, as the writer would store them.
    stacks: dict[bytes, list[tuple[object, ...]]] = {}
    event_stacks = []
    for pk, index, frames in _stacks(con, fn_of):
        key = stack_key(frames)
        stacks.setdefault(key, frames)
        event_stacks.append((pk, index, key))
    con.executemany(
        "INSERT INTO stacks (stack_key, frame_count) VALUES (?, ?)",
        [(key, len(frames)) for key, frames in stacks.items()],
    )
    marks = ", ".join("?" * (2 + len(FRAME_VALUES)))
    con.executemany(
        f"INSERT INTO stack_frames (stack_key, position, {', '.join(FRAME_VALUES)}) "
        f"VALUES ({marks})",
        [(key, *frame) for key, frames in stacks.items() for frame in frames],
    )
    con.executemany(
        "INSERT INTO event_stacks (event_pk, stack_kind, stack_index, is_raw, stack_key) "
        "VALUES (?, 'exception', ?, 0, ?)",
        event_stacks,
    )
    con.execute("COMMIT")
    con.close()


def _stacks(
    con: sqlite3.Connection, fn_of: dict[int, int]
) -> Iterator[tuple[int, int, list[tuple[object, ...]]]]:
    """(event, exception position, frames): ten frames per event (six in-app), and three
    more for the cause of one in ten. A frame is its ``stack_frames`` tuple without the key."""

    def frame(
        pos: int, function: str, module: str, lineno: int, in_app: bool
    ) -> tuple[object, ...]:
        values = {
            "function": function,
            "module": module,
            "filename": module.replace(".", "/") + ".py",
            "lineno": lineno,
            "in_app": in_app,
        }
        return (pos, *(values.get(c) for c in FRAME_VALUES))

    cause = [frame(pos, f"read_{pos}", "app.io", 10 + pos, True) for pos in range(3)]
    for pk, iid in con.execute("SELECT id, issue_id FROM events ORDER BY id").fetchall():
        raised = 1 if pk % 10 == 0 else 0
        if raised:
            yield pk, 0, cause
        fn = fn_of[iid]
        frames = []
        for pos in range(10):
            in_app = pos < 6
            name = f"fn_{fn}_{pos}" if in_app else f"lib_{pos}"
            module = f"app.mod{fn % 40}" if in_app else "lib.core"
            frames.append(frame(pos, name, module, 100 + fn + pos, in_app))
        yield pk, raised, frames


def _bisect(cum: list[float], x: float) -> int:
    lo, hi = 0, len(cum)
    while lo < hi:
        mid = (lo + hi) // 2
        if cum[mid] < x:
            lo = mid + 1
        else:
            hi = mid
    return lo


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--db", default="/tmp/bench-cookbook.db")
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--rebuild", action="store_true")
    args = ap.parse_args()
    path = Path(args.db)
    if args.rebuild or not path.exists():
        t0 = time.perf_counter()
        build(path, args.events)
        print(
            f"built {path} ({args.events:,} events, {path.stat().st_size / 1e9:.2f} GB) "
            f"in {time.perf_counter() - t0:.0f}s"
        )
    recipes = cookbook.parse((ROOT / "README.md").read_text(encoding="utf-8"))
    engine = db.make_engine(f"sqlite:///{path}")
    db.upgrade(engine)  # an older bench archive gets the current indexes and views
    con = sqlite3.connect(path)
    counts = con.execute("SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM frames)")
    n_events, n_frames = counts.fetchone()
    print(f"{n_events:,} events, {n_frames:,} frames; SQLite {sqlite3.sqlite_version}")
    print("| recipe | first run (s) | median of 3 (s) | rows |\n|---|---|---|---|")
    worst = 0.0
    for recipe in recipes:
        sql = recipe.sql.rstrip().rstrip(";")
        t0 = time.perf_counter()
        rows = con.execute(sql).fetchall()
        first = time.perf_counter() - t0
        runs = []
        for _ in range(3):
            t0 = time.perf_counter()
            con.execute(sql).fetchall()
            runs.append(time.perf_counter() - t0)
        med = statistics.median(runs)
        worst = max(worst, med)
        print(f"| {recipe.title} | {first:.3f} | {med:.3f} | {len(rows)} |", flush=True)
    print(f"slowest recipe: {worst:.3f}s")
    engine.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
