"""Benchmark the sync engine against the simulator (run by hand; numbers go to the README).

    python bench/bench_sync.py   # 10k and 100k backfills, baseline, no-change, latency
    python bench/bench_sync.py --events 20000 --skip-latency
    python bench/bench_sync.py --events 20000 --skip-latency --repeat 3 \
        --pg postgresql://postgres@127.0.0.1:5432/bench   # SQLite and PostgreSQL, alternating

Each archiver run is a separate process (the real CLI), and the simulator runs in its own
process too, so peak memory (max RSS from wait4) is the archiver's alone. Reported:

* events/s of a backfill against the zero-latency simulator, and of a baseline that fetches
  exactly the same pages sequentially and stores only raw JSON (``bench/baseline_fetch.py``);
* requests made against the minimum the walk allows (one per 100 events of each issue, at
  least one per issue, plus the discovery pages);
* peak memory for each size; time and requests of a no-change run;
* CPU seconds of the sync process itself and of its page workers;
* with ``--pg``, every backfill again on PostgreSQL (its database emptied first), SQLite and
  PostgreSQL alternating ``--repeat`` times, each with a baseline of its own in the same run;
* with 100 ms added latency and Sentry-like rate limits, the share of the rate budget used
  (and the baseline script's share under the same conditions).
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "bench-token"
ISSUE_EVENTS_LIMIT_PER_S = 40  # the simulator's "sentry" preset for the issue events family


@contextmanager
def simulator(
    events: int, *, latency_ms: float = 0, rate_limits: str = "none", seed: int = 1
) -> Iterator[str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "archiver.simulator",
            "--port",
            "0",
            "--seed",
            str(seed),
            "--events",
            str(events),
            "--token",
            TOKEN,
            "--latency-ms",
            str(latency_ms),
            "--rate-limits",
            rate_limits,
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().split()
        if not line:
            raise RuntimeError("the simulator did not start")
        yield line[0]
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _peak_rss_mb(pid: int) -> int:
    """Peak resident memory of a live process so far (VmHWM; 0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) // 1024
    except OSError:
        pass
    return 0


def _cpu_seconds(pid: int) -> float:
    """user + system CPU seconds of a live process (Linux /proc; 0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    """Children of every thread of the process (a pool may be started by any thread)."""
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out.extend(int(c) for c in (task / "children").read_text().split())
        except OSError:
            continue
    return out


# Of the last measured run: CPU seconds of the main process and of its worker processes, and
# the largest worker's peak RSS in MB.
CPU: dict[str, float] = {}


def run_measured(args: list[str], env: dict[str, str]) -> tuple[float, int, int]:
    """(seconds, max RSS in MB, exit code) of one child process (its own peak, workers apart).

    Also records in ``CPU`` the CPU seconds of the process itself and of its descendants
    (the page workers), sampled every 0.2 s while it runs: on a shared machine CPU time says
    more than wall time about where the work goes.
    """
    started = time.perf_counter()
    proc = subprocess.Popen(
        args, cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    seen: dict[int, float] = {}
    worker_rss = 0
    while True:
        done, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if done:
            break
        todo = _children(proc.pid)
        while todo:
            child = todo.pop()
            seen[child] = max(seen.get(child, 0.0), _cpu_seconds(child))
            worker_rss = max(worker_rss, _peak_rss_mb(child))
            todo.extend(_children(child))
        time.sleep(0.2)
    seconds = time.perf_counter() - started
    CPU.clear()
    # wait4's usage is the process's own (plus the few helper processes it reaped itself);
    # the workers are children of the forkserver, sampled above.
    CPU["main"] = usage.ru_utime + usage.ru_stime
    CPU["workers"] = sum(seen.values())
    CPU["worker_rss"] = worker_rss
    code = os.waitstatus_to_exitcode(status)
    if code != 0 and proc.stderr is not None:
        sys.stderr.write(proc.stderr.read().decode(errors="replace"))
    return seconds, usage.ru_maxrss // 1024, code


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


def empty_pg(url: str) -> None:
    """Drop everything in the PostgreSQL database's public schema: each backfill starts empty."""
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    finally:
        engine.dispose()


def sync(url: str, db_path: Path | str, *extra: str) -> tuple[float, int, int]:
    env = {
        "SENTRY_URL": url,
        "SENTRY_AUTH_TOKEN": TOKEN,
        "SENTRY_ORG": "acme",
        "SENTRY_ARCHIVER_DB": _db_url(db_path),
        "PYTHONPATH": str(ROOT),
    }
    return run_measured([sys.executable, "-m", "archiver", "sync", "--quiet", *extra], env)


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
) -> dict[str, float]:
    """One backfill into a new archive (SQLite, or the emptied PostgreSQL database ``pg``)."""
    db_path: Path | str = workdir / f"archive-{events}.db"
    if pg is not None:
        empty_pg(pg)
        db_path = pg
    else:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    base_path = workdir / f"baseline-{events}.db"
    base_path.unlink(missing_ok=True)
    with simulator(events) as url:
        seconds, rss, code = sync(url, db_path, "--concurrency", str(concurrency), *extra)
        if code != 0:
            raise SystemExit(f"sync failed with exit code {code}")
        cpu = dict(CPU)
        requests, new, _ = last_run(db_path)
        minimum = minimum_requests(db_path)
        again_seconds, _again_rss, _ = sync(url, db_path)
        again_requests, again_new, _ = last_run(db_path)
    # The baseline gets a simulator of its own, as cold as the sync's: the simulator keeps
    # the last 64 MB of events it rendered, so a second client of the same one is served
    # partly from that cache and would be measured against less work on the server's side.
    with simulator(events) as url:
        b_seconds, b_rss, b_code = run_measured(
            [
                sys.executable,
                str(ROOT / "bench" / "baseline_fetch.py"),
                url,
                TOKEN,
                "acme",
                str(base_path),
            ],
            {"PYTHONPATH": str(ROOT)},
        )
        if b_code != 0:
            raise SystemExit("baseline failed")
    return {
        "events": count_events(db_path),
        "seconds": seconds,
        "rate": new / seconds,
        "cpu_main_s": cpu["main"],
        "cpu_main_ms": cpu["main"] / max(new, 1) * 1000,
        "cpu_workers_ms": cpu["workers"] / max(new, 1) * 1000,
        "worker_rss": cpu["worker_rss"],
        "rss": rss,
        "requests": requests,
        "minimum": minimum,
        "releases": count_events(db_path, "releases"),
        "baseline_seconds": b_seconds,
        "baseline_rate": count_events(base_path, "raw") / b_seconds,
        "baseline_rss": b_rss,
        "nochange_seconds": again_seconds,
        "nochange_requests": again_requests,
        "nochange_new": again_new,
    }


def latency_run(events: int, workdir: Path, concurrency: int, extra: list[str]) -> dict[str, float]:
    db_path = workdir / "latency.db"
    with simulator(events, latency_ms=100, rate_limits="sentry") as url:
        seconds, rss, code = sync(url, db_path, "--concurrency", str(concurrency), *extra)
        if code != 0:
            raise SystemExit(f"latency sync failed with exit code {code}")
        requests, new, retries = last_run(db_path)
        # The hand-written script under the same conditions: it makes exactly the walk's
        # minimum of requests (no release objects), one at a time.
        b_seconds, _b_rss, b_code = run_measured(
            [
                sys.executable,
                str(ROOT / "bench" / "baseline_fetch.py"),
                url,
                TOKEN,
                "acme",
                str(workdir / "latency-baseline.db"),
            ],
            {"PYTHONPATH": str(ROOT)},
        )
        if b_code != 0:
            raise SystemExit("latency baseline failed")
        b_rate = minimum_requests(db_path) / b_seconds
    rate = requests / seconds
    return {
        "events": new,
        "seconds": seconds,
        "requests": requests,
        "req_per_s": rate,
        "budget_share": rate / ISSUE_EVENTS_LIMIT_PER_S,
        "retries": retries,
        "rss": rss,
        "baseline_req_per_s": b_rate,
        "baseline_share": b_rate / ISSUE_EVENTS_LIMIT_PER_S,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, nargs="*", default=[10_000, 100_000])
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--latency-events", type=int, default=20_000)
    parser.add_argument("--latency-concurrency", type=int, default=8)
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--workers", type=int, help="the sync's --workers (default: its own)")
    parser.add_argument(
        "--pg", help="also run each backfill on this PostgreSQL database (emptied before each)"
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="backfills of each size (and database), alternating"
    )
    args = parser.parse_args()
    extra = [] if args.workers is None else ["--workers", str(args.workers)]
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        columns = [
            "database",
            "events",
            "sync s",
            "sync events/s",
            "baseline events/s",
            "ratio",
            "requests",
            "of which release objects",
            "walk + discovery",
            "minimum",
            "over min",
            "peak RSS MB main / largest worker",
            "no-change s",
            "no-change requests",
            "CPU ms/event main + workers",
            "sync process CPU s",
        ]
        print("| " + " | ".join(columns) + " |")
        print("|" + "---|" * len(columns))
        databases: list[str | None] = [None] if args.pg is None else [None, args.pg]
        runs = [(n, pg) for n in args.events for _ in range(args.repeat) for pg in databases]
        for n, pg in runs:
            r = backfill(n, workdir, args.concurrency, extra, pg)
            walk = r["requests"] - r["releases"]  # each release version is fetched once
            over = (walk - r["minimum"]) / r["minimum"] * 100
            print(
                f"| {'sqlite' if pg is None else 'postgresql'} | "
                f"{int(r['events']):,} | {r['seconds']:.1f} | {r['rate']:,.0f} | "
                f"{r['baseline_rate']:,.0f} | {r['rate'] / r['baseline_rate']:.2f} | "
                f"{int(r['requests']):,} | {int(r['releases']):,} | {int(walk):,} | "
                f"{int(r['minimum']):,} | {over:+.2f}% | "
                f"{int(r['rss'])} / {int(r['worker_rss'])} | "
                f"{r['nochange_seconds']:.2f} | {int(r['nochange_requests'])} | "
                f"{r['cpu_main_ms']:.2f} + {r['cpu_workers_ms']:.2f} | {r['cpu_main_s']:.1f} |",
                flush=True,
            )
        if not args.skip_latency:
            r = latency_run(args.latency_events, workdir, args.latency_concurrency, extra)
            print(
                "\n100 ms latency, sentry-like limits "
                f"({ISSUE_EVENTS_LIMIT_PER_S}/s issue events), "
                f"concurrency {args.latency_concurrency}: {int(r['events']):,} events in "
                f"{r['seconds']:.1f}s, {int(r['requests'])} requests = {r['req_per_s']:.1f} req/s, "
                f"{r['budget_share'] * 100:.0f}% of the rate budget, {int(r['retries'])} retries, "
                f"peak RSS {int(r['rss'])} MB; the baseline script: "
                f"{r['baseline_req_per_s']:.1f} req/s, {r['baseline_share'] * 100:.0f}%"
            )


if __name__ == "__main__":
    main()
