"""Several sync processes on one PostgreSQL archive (project leases): wall time and CPU.

Run by hand; figures go to the report/README, never into code:

    python bench/bench_leases.py --pg postgresql://postgres@127.0.0.1:5432/bench_leases \\
        --events 20000 --processes 1 3 [--code /work/main]

Each case empties the database, starts N ``sentry-archiver sync`` processes at once against
one simulator (its own process, latency ``--latency-ms``) and reports the wall time until the
last one ends, events/s, and the CPU seconds of the sync processes and their page workers
(``os.wait4`` of each, which includes its children once they are reaped). ``--code`` runs
another checkout's archiver (``PYTHONPATH``), e.g. main's, for a side-by-side one-process run.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from _measure import ROOT, TOKEN, empty_pg, simulator
from sqlalchemy import create_engine, text


def run(sim: str, pg: str, processes: int, code: Path, concurrency: int) -> tuple[float, float]:
    env = {
        **os.environ,
        "SENTRY_URL": sim,
        "SENTRY_AUTH_TOKEN": TOKEN,
        "SENTRY_ORG": "acme",
        "SENTRY_ARCHIVER_DB": pg,
        "PYTHONPATH": str(code),
    }
    started = time.monotonic()
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "archiver",
                "sync",
                "--quiet",
                "--concurrency",
                str(concurrency),
            ],
            env=env,
            cwd="/tmp",
        )
        for _ in range(processes)
    ]
    cpu = 0.0
    for proc in procs:
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            raise SystemExit(f"sync exited {proc.returncode}")
        cpu += usage.ru_utime + usage.ru_stime
    return time.monotonic() - started, cpu


def count(pg: str) -> int:
    engine = create_engine(pg.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.connect() as conn:
        n = int(conn.execute(text("SELECT count(*) FROM events")).scalar_one())
    engine.dispose()
    return n


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pg", required=True)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--processes", type=int, nargs="*", default=[1, 3])
    parser.add_argument("--code", type=Path, default=ROOT)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    args = parser.parse_args()
    with simulator(args.events, latency_ms=args.latency_ms) as server:
        sim = server.url
        for n in args.processes:
            empty_pg(args.pg)
            wall, cpu = run(sim, args.pg, n, args.code, args.concurrency)
            events = count(args.pg)
            print(
                f"{args.code.name}: {n} process(es), {events} events: {wall:.1f} s wall, "
                f"{events / wall:.0f} events/s, sync CPU {cpu:.1f} s "
                f"(load {os.getloadavg()[0]:.1f})",
                flush=True,
            )


if __name__ == "__main__":
    main()
