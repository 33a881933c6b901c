"""Benchmark the sync engine against the simulator (run by hand; numbers go to the README).

    python bench/bench_sync.py --pg postgresql://postgres@127.0.0.1:5432/bench --json out.json
    python bench/bench_sync.py --events 20000 --skip-latency
    python bench/bench_sync.py --events 20000 --skip-latency --repeat 3 \
        --pg postgresql://postgres@127.0.0.1:5432/bench   # SQLite and PostgreSQL, alternating

Each archiver run is a separate process (the real CLI), and the simulator runs in its own
process too, so peak memory (max RSS from wait4) is the archiver's alone. For each backfill
(10k and 100k events by default; with ``--pg`` each again on PostgreSQL, its database emptied
first, SQLite and PostgreSQL alternating ``--repeat`` times) it reports, in one markdown table
per database and size (a column per run) and with ``--json`` in a file:

* events/s against the zero-latency simulator, and the raw-JSON floor in the same run: a
  baseline that fetches exactly the same pages one after another and stores only raw JSON
  (``bench/baseline_fetch.py``, against a fresh simulator of its own), and their ratio;
* CPU per event of the sync process, of its page workers (all its descendants), of the
  PostgreSQL server's processes for the archive's database (local server only), and of the
  baseline script and the simulator;
* peak RSS of the sync process and of its largest worker;
* the archive's bytes on disk per event (SQLite: the file after a WAL checkpoint; PostgreSQL:
  ``pg_total_relation_size`` of its tables, indexes and TOAST included) against the raw JSON's
  bytes per event as served (counted by the baseline), and the largest tables;
* requests made against the minimum the walk allows (one per 100 events of each issue, at
  least one per issue, plus the discovery pages); time and requests of a no-change run;
* the machine's load average before and after (figures from a loaded machine are indicative);
* with 100 ms added latency and Sentry-like rate limits, the share of the rate budget used
  (and the baseline script's share under the same conditions), and the latency/concurrency run
  of ``bench/bench_concurrency.py`` (see ``concurrency_run``); ``--skip-latency`` skips both.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from _measure import (
    ROOT,
    TOKEN,
    Measured,
    PgBackends,
    empty_pg,
    pg_size,
    raw_json_fetched,
    run_measured,
    simulator,
    sqlite_size,
)
from _report import Backfill, backfill_tables, dict_table, meta, write_json
from sqlalchemy import create_engine, text

ISSUE_EVENTS_LIMIT_PER_S = 40  # the simulator's "sentry" preset for the issue events family


def _db_url(db: Path | str) -> str:
    """A database URL: a path is a SQLite file."""
    return db if isinstance(db, str) else f"sqlite:///{db}"


def _rows(db: Path | str, sql: str) -> list[tuple[int, ...]]:
    """The rows of a query on an archive (SQLite file or PostgreSQL URL)."""
    engine = create_engine(_db_url(db))
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql))]
    finally:
        engine.dispose()


def sync(url: str, db_path: Path | str, *extra: str, server: PgBackends | None = None) -> Measured:
    """One run of the real CLI, in a process of its own."""
    env = {
        "SENTRY_URL": url,
        "SENTRY_AUTH_TOKEN": TOKEN,
        "SENTRY_ORG": "acme",
        "SENTRY_ARCHIVER_DB": _db_url(db_path),
        "PYTHONPATH": str(ROOT),
    }
    args = [sys.executable, "-m", "archiver", "sync", "--quiet", *extra]
    return run_measured(args, env, server)


def baseline(url: str, db_path: Path) -> Measured:
    """The hand-written script (bench/baseline_fetch.py) into a new SQLite file."""
    db_path.unlink(missing_ok=True)
    script = str(ROOT / "bench" / "baseline_fetch.py")
    m = run_measured(
        [sys.executable, script, url, TOKEN, "acme", str(db_path)], {"PYTHONPATH": str(ROOT)}
    )
    if m.code != 0:
        raise SystemExit("baseline failed")
    return m


def last_run(db_path: Path | str) -> tuple[int, int, int]:
    """(requests, events_new, retries) of the latest run."""
    (row,) = _rows(
        db_path, "SELECT requests, events_new, retries FROM runs ORDER BY id DESC LIMIT 1"
    )
    return int(row[0]), int(row[1]), int(row[2])


def minimum_requests(db_path: Path | str) -> int:
    per_issue = [
        n
        for (n,) in _rows(
            db_path,
            "SELECT count(e.id) FROM issues i LEFT JOIN events e ON e.issue_id = i.id "
            "GROUP BY i.id",
        )
    ]
    per_project = [n for (n,) in _rows(db_path, "SELECT count(*) FROM issues GROUP BY project_id")]
    projects = _rows(db_path, "SELECT count(*) FROM projects")[0][0]
    walk = sum(max(1, math.ceil(n / 100)) for n in per_issue)
    discovery = max(1, math.ceil(projects / 100)) + sum(
        max(1, math.ceil(n / 100)) for n in per_project
    )
    return walk + discovery


def count_events(db_path: Path | str, table: str = "events") -> int:
    return int(_rows(db_path, f"SELECT count(*) FROM {table}")[0][0])


def backfill(
    events: int, workdir: Path, concurrency: int, extra: list[str], pg: str | None = None
) -> Backfill:
    """One backfill into a new archive (SQLite, or the emptied PostgreSQL database ``pg``),
    its size, a no-change run, and the baseline script against a simulator of its own."""
    load_before = os.getloadavg()[0]
    db_path: Path | str = workdir / f"archive-{events}.db"
    server = None
    if pg is not None:
        empty_pg(pg)
        db_path = pg
        server = PgBackends(pg)
    else:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    with simulator(events) as sim:
        sim_cpu = sim.cpu()
        m = sync(sim.url, db_path, "--concurrency", str(concurrency), *extra, server=server)
        if m.code != 0:
            raise SystemExit(f"sync failed with exit code {m.code}")
        sim_cpu = sim.cpu() - sim_cpu
        requests, _new, _ = last_run(db_path)
        minimum = minimum_requests(db_path)
        archived = count_events(db_path)
        releases = count_events(db_path, "releases")
        size, tables = pg_size(db_path) if isinstance(db_path, str) else sqlite_size(db_path)
        again = sync(sim.url, db_path)
        again_requests, again_new, _ = last_run(db_path)
    # The baseline gets a simulator of its own, as cold as the sync's: the simulator keeps
    # the last 64 MB of events it rendered, so a second client of the same one is served
    # partly from that cache and would be measured against less work on the server's side.
    base_path = workdir / f"baseline-{events}.db"
    with simulator(events) as sim:
        b = baseline(sim.url, base_path)
    raw_events, raw_bytes = raw_json_fetched(base_path)
    return Backfill(
        database="sqlite" if pg is None else "postgresql",
        requested=events,
        load_before=load_before,
        load_after=os.getloadavg()[0],
        events=archived,
        seconds=m.seconds,
        requests=requests,
        release_requests=releases,
        minimum_requests=minimum,
        cpu_main_s=m.cpu_main,
        cpu_workers_s=m.cpu_children,
        processes=m.children,
        cpu_server_s=m.cpu_server,
        cpu_simulator_s=sim_cpu,
        rss_main_mb=m.rss_mb,
        rss_worker_mb=m.worker_rss_mb,
        archive_bytes=size,
        archive_tables=tables,
        baseline_seconds=b.seconds,
        baseline_events=count_events(base_path, "raw"),
        baseline_cpu_s=b.cpu_main,
        baseline_rss_mb=b.rss_mb,
        raw_json_events=raw_events,
        raw_json_bytes=raw_bytes,
        nochange_seconds=again.seconds,
        nochange_requests=again_requests,
        nochange_new=again_new,
    )


def latency_run(events: int, workdir: Path, concurrency: int, extra: list[str]) -> dict[str, Any]:
    """A sync with 100 ms added to every response and Sentry-like rate limits, and the
    baseline script under the same conditions: the share of the rate budget each uses."""
    db_path = workdir / "latency.db"
    with simulator(events, latency_ms=100, rate_limits="sentry") as sim:
        m = sync(sim.url, db_path, "--concurrency", str(concurrency), *extra)
        if m.code != 0:
            raise SystemExit(f"latency sync failed with exit code {m.code}")
        requests, new, retries = last_run(db_path)
        # The hand-written script under the same conditions: it makes exactly the walk's
        # minimum of requests (no release objects), one at a time.
        b = baseline(sim.url, workdir / "latency-baseline.db")
        b_rate = minimum_requests(db_path) / b.seconds
    rate = requests / m.seconds
    return {
        "concurrency": concurrency,
        "events": new,
        "seconds": m.seconds,
        "requests": requests,
        "req_per_s": rate,
        "budget_share_pct": rate / ISSUE_EVENTS_LIMIT_PER_S * 100,
        "retries": retries,
        "rss_mb": m.rss_mb,
        "baseline_req_per_s": b_rate,
        "baseline_share_pct": b_rate / ISSUE_EVENTS_LIMIT_PER_S * 100,
    }


# --- Latency and concurrency (issue 17): bench/bench_concurrency.py's run ----------------
# A sync with 500 ms per response and the server's concurrency limit enforced
# (X-Sentry-Rate-Limit-ConcurrentLimit: 5): the share of what that limit allows, and
# concurrency 429s; printed as a table and written to ``--json`` under "concurrency".
# ``--skip-latency`` skips it, with the 100 ms latency run above.
def concurrency_run(args: argparse.Namespace, workdir: Path) -> dict[str, Any] | None:
    """Figures of bench/bench_concurrency.py's run: 500 ms per answer, ConcurrentLimit 5."""
    from bench_concurrency import run_concurrency_bench

    figures: dict[str, Any] = run_concurrency_bench(args.concurrency_events, workdir=workdir)
    return figures


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--events", type=int, nargs="*", default=[10_000, 100_000], help="simulator sizes"
    )
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--latency-events", type=int, default=20_000)
    parser.add_argument("--latency-concurrency", type=int, default=8)
    parser.add_argument(
        "--concurrency-events", type=int, default=5_000, help="events of the 500 ms run"
    )
    parser.add_argument(
        "--skip-latency", action="store_true", help="no latency and concurrency runs"
    )
    parser.add_argument("--workers", type=int, help="the sync's --workers (default: its own)")
    parser.add_argument(
        "--pg", help="also run each backfill on this PostgreSQL database (emptied before each)"
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="backfills of each size (and database), alternating"
    )
    parser.add_argument("--json", type=Path, help="also write every figure to this JSON file")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    extra = [] if args.workers is None else ["--workers", str(args.workers)]
    info = meta()
    results: list[Backfill] = []
    latency: dict[str, Any] | None = None
    concurrency: dict[str, Any] | None = None

    def save() -> None:
        if args.json is not None:
            write_json(args.json, info, results, latency, concurrency)

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        databases: list[str | None] = [None] if args.pg is None else [None, args.pg]
        runs = [(n, pg) for n in args.events for _ in range(args.repeat) for pg in databases]
        for i, (n, pg) in enumerate(runs, 1):
            r = backfill(n, workdir, args.concurrency, extra, pg)
            results.append(r)
            save()
            d = r.derived()
            print(
                f"[{i}/{len(runs)}] {r.database} {r.events:,} events: "
                f"{d['events_per_s']:,.0f} events/s, ratio {d['ratio_to_baseline']:.2f}, "
                f"size {d['archive_to_raw_json']:.2f}x raw JSON, load {r.load_after:.1f}",
                file=sys.stderr,
                flush=True,
            )
        if not args.skip_latency:
            latency = latency_run(args.latency_events, workdir, args.latency_concurrency, extra)
            save()
            concurrency = concurrency_run(args, workdir)
            save()
    print(backfill_tables(results))
    if latency is not None:
        title = (
            "100 ms latency, Sentry-like limits "
            f"({ISSUE_EVENTS_LIMIT_PER_S}/s issue events), {args.latency_events:,} events"
        )
        print("\n" + dict_table(title, latency))
    if concurrency is not None:
        print("\n" + dict_table("Latency and concurrency (bench_concurrency.py)", concurrency))


if __name__ == "__main__":
    main()
