"""Benchmark: how much of the server's concurrency allowance a sync uses (run by hand).

    python bench/bench_concurrency.py                        # 10,000 events, 500 ms, limit 5
    python bench/bench_concurrency.py --events 5000 --rates none --concurrency 8

The simulator runs in this process (so the bench sees every slot its limiter hands out) with
``--latency-ms`` added to every answer and every family's ``ConcurrentLimit`` set (on top of
Sentry-like rate limits by default, which do not bind first at these rates); the sync is the
real CLI in a process of its own. For the event-list family (the walk's requests) it reports,
over the walk (from its first request's admission to its last one's answer):

* requests/s against the allowance, ``limit / latency`` (5 / 0.5 s = 10 requests/s): the
  share the goal asks to be at least 90%;
* the mean number of slots held (time-weighted) against the limit: the same share measured on
  the slots themselves (the server's own time per answer beyond the latency counts as used);
* the peak in flight and the concurrency 429s (must be 0 when the sync is the only client);

and the whole run's time and events/s. The second run is a server without rate-limit headers
(self-hosted): the sync keeps ``--concurrency`` in flight, the peak says so.

The walk of one issue is a chain (each page's request starts where the previous page ended),
so the share also depends on the issues: with few issues the biggest one's chain outlasts the
rest ("chain bound" is the best share any schedule reaches on this org).

``run_concurrency_bench(...)`` is the same as a function (for ``bench/bench_sync.py``).
"""

from __future__ import annotations

import argparse
import math
import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from archiver.simulator import SimulatedOrg, SimulatorConfig, SimulatorServer  # noqa: E402
from archiver.simulator.ratelimit import Decision, RateLimiter  # noqa: E402

TOKEN = "bench-token"
FAMILY = "issue_events"


class SlotLog:
    """Admissions and releases of one family's slots at the server, with their times."""

    def __init__(self, limiter: RateLimiter, family: str) -> None:
        self.family = family
        self.changes: list[tuple[float, int]] = []
        self._lock = threading.Lock()
        acquire, release = limiter.acquire, limiter.release

        def counted_acquire(family: str, key: str) -> Decision:
            decision = acquire(family, key)
            if family == self.family and decision.allowed:
                self._note(+1)
            return decision

        def counted_release(family: str, key: str) -> None:
            if family == self.family:
                self._note(-1)
            release(family, key)

        limiter.acquire = counted_acquire  # type: ignore[method-assign]
        limiter.release = counted_release  # type: ignore[method-assign]

    def _note(self, change: int) -> None:
        with self._lock:
            self.changes.append((time.monotonic(), change))

    def summary(self) -> dict[str, float]:
        """Requests, the walk's seconds and the time-weighted mean of slots held."""
        with self._lock:
            changes = sorted(self.changes)
        if not changes:
            return {"requests": 0, "seconds": 0.0, "mean_in_flight": 0.0}
        held, area = 0, 0.0
        last = changes[0][0]
        for at, change in changes:
            area += held * (at - last)
            held, last = held + change, at
        seconds = changes[-1][0] - changes[0][0]
        requests = sum(1 for _, change in changes if change > 0)
        return {"requests": requests, "seconds": seconds, "mean_in_flight": area / seconds}


def chain_bound(org: SimulatedOrg, slots: int) -> float:
    """The best share of ``slots`` any schedule reaches: pages / slots against the longest
    issue's chain of pages (one request per 100 events, at least one per issue)."""
    per_issue: Counter[int] = Counter()
    cutoff = org.retention_cutoff()
    for owner, segment in org._truth_segments(False, 90):
        per_issue[owner.id] += segment.n - segment.count_before(cutoff)
    pages = [max(1, math.ceil(n / 100)) for n in per_issue.values()]
    ideal = sum(pages) / slots
    return ideal / max(ideal, max(pages))


def run_sync(url: str, db: Path, concurrency: int | None) -> tuple[float, int]:
    """Seconds and exit code of one ``sentry-archiver sync`` process."""
    env = {
        **os.environ,
        "SENTRY_URL": url,
        "SENTRY_AUTH_TOKEN": TOKEN,
        "SENTRY_ORG": "acme",
        "SENTRY_ARCHIVER_DB": f"sqlite:///{db}",
        "PYTHONPATH": str(ROOT),
    }
    args = [sys.executable, "-m", "archiver", "sync", "--quiet"]
    if concurrency is not None:
        args += ["--concurrency", str(concurrency)]
    started = time.perf_counter()
    done = subprocess.run(args, cwd=ROOT, env=env, check=False, capture_output=True, text=True)
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
    return time.perf_counter() - started, done.returncode


def archived_events(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT count(*) FROM events").fetchone()[0])


def run_concurrency_bench(
    events: int = 10_000,
    *,
    latency_ms: float = 500.0,
    concurrent_limit: int | None = 5,
    rates: str = "sentry",
    concurrency: int | None = None,
    seed: int = 1,
    workdir: Path | None = None,
    measure_capacity: bool = True,
) -> dict[str, Any]:
    """One sync against a simulator with ``latency_ms`` per answer and every family's
    ``ConcurrentLimit`` (None with ``rates="none"``: no rate-limit headers at all); the
    figures of the module docstring. ``concurrency``: the sync's ``--concurrency`` (None: its
    default)."""
    org = SimulatedOrg(seed=seed, events=events)
    config = SimulatorConfig.preset(rates, concurrent_limit, latency_ms=latency_ms)
    walk, seconds, total_requests, refused, peak, archived = _sync_run(
        org, config, concurrency, workdir
    )
    capacity = None
    if measure_capacity:  # the same sync with no latency: what its own CPU allows
        fast = SimulatorConfig.preset(rates, concurrent_limit)
        capacity = _sync_run(org, fast, concurrency, workdir)[0]
    from archiver.config import Settings  # the sync's default, when not given

    ceiling = concurrency if concurrency is not None else Settings().concurrency
    allowed_slots = min(concurrent_limit, ceiling) if concurrent_limit else ceiling
    allowance = allowed_slots / (latency_ms / 1000.0)
    rate = walk["requests"] / walk["seconds"] if walk["seconds"] else 0.0
    reachable = allowance
    if capacity is not None and capacity["seconds"]:
        reachable = min(allowance, capacity["requests"] / capacity["seconds"])
    return {
        "events": archived,
        "seconds": seconds,
        "events_per_s": archived / seconds,
        "requests": total_requests,
        "walk_requests": walk["requests"],
        "walk_seconds": walk["seconds"],
        "walk_req_per_s": rate,
        "allowed_slots": allowed_slots,
        "allowance_req_per_s": allowance,
        "share": rate / allowance,
        "reachable_req_per_s": reachable,
        "reachable_share": rate / reachable,
        "mean_in_flight": walk["mean_in_flight"],
        "slot_share": walk["mean_in_flight"] / allowed_slots,
        "peak_in_flight": peak,
        "concurrency_429s": refused.get("concurrent", 0),
        "rate_429s": refused.get("rate", 0),
        "chain_bound": chain_bound(org, allowed_slots),
    }


def _sync_run(
    org: SimulatedOrg, config: SimulatorConfig, concurrency: int | None, workdir: Path | None
) -> tuple[dict[str, float], float, int, dict[str, int], int, int]:
    """One sync of ``org`` served with ``config``: the walk's slot summary, seconds, requests,
    429s per reason, peak event lists in flight, events archived."""
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        db = Path(tmp) / "archive.db"
        with SimulatorServer(org, token=TOKEN, config=config) as srv:
            slots = SlotLog(srv.limiter, FAMILY)
            seconds, code = run_sync(srv.url, db, concurrency)
            if code != 0:
                raise SystemExit(f"the sync failed with exit code {code}")
            walk = slots.summary()
            total_requests = srv.log.total
            refused = dict(srv.limiter.refused)
            peak = srv.limiter.peak[FAMILY]
        archived = archived_events(db)
    return walk, seconds, total_requests, refused, peak, archived


def run_fetch_bench(
    requests: int = 300,
    *,
    latency_ms: float = 500.0,
    concurrent_limit: int | None = 5,
    concurrency: int = 8,
    seed: int = 1,
) -> dict[str, Any]:
    """The client alone (its concurrency gate, no parsing, no writer): ``concurrency`` threads
    fetch event-list pages until ``requests`` are done. What the sync would reach if its own
    CPU never bound it (on a loaded machine it does: see ``capacity`` in the sync's run)."""
    from archiver.sentry.client import SentryClient

    org = SimulatedOrg(seed=seed, events=2_000)
    issues = [issue.id for issue in org.live_issues()][:concurrency]
    config = SimulatorConfig.preset("sentry", concurrent_limit, latency_ms=latency_ms)
    if concurrent_limit is None:
        config = SimulatorConfig(latency_ms=latency_ms)
    with SimulatorServer(org, token=TOKEN, config=config) as srv:
        slots = SlotLog(srv.limiter, FAMILY)
        numbers = iter(range(requests))
        lock = threading.Lock()
        with SentryClient(srv.url, TOKEN, concurrency=concurrency) as client:

            def work() -> None:
                while True:
                    with lock:
                        n = next(numbers, None)
                    if n is None:
                        return
                    path = f"api/0/organizations/acme/issues/{issues[n % len(issues)]}/events/"
                    client.get(path, [("per_page", "100"), ("full", "true")], parse=len)

            threads = [threading.Thread(target=work) for _ in range(concurrency)]
            started = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            seconds = time.perf_counter() - started
        walk = slots.summary()
        refused = dict(srv.limiter.refused)
        peak = srv.limiter.peak[FAMILY]
    allowed_slots = min(concurrent_limit, concurrency) if concurrent_limit else concurrency
    allowance = allowed_slots / (latency_ms / 1000.0)
    return {
        "requests": requests,
        "seconds": seconds,
        "req_per_s": requests / seconds,
        "allowance_req_per_s": allowance,
        "share": requests / seconds / allowance,
        "slot_share": walk["mean_in_flight"] / allowed_slots,
        "peak_in_flight": peak,
        "concurrency_429s": refused.get("concurrent", 0),
    }


def describe_fetch(label: str, r: dict[str, Any]) -> str:
    return (
        f"{label}: {r['requests']} requests in {r['seconds']:.1f} s = {r['req_per_s']:.2f} "
        f"req/s of {r['allowance_req_per_s']:.1f} allowed = **{r['share'] * 100:.0f}%**; "
        f"{r['slot_share'] * 100:.0f}% of the slots held on average, peak "
        f"{r['peak_in_flight']}; concurrency 429s {r['concurrency_429s']}"
    )


def describe(label: str, r: dict[str, Any]) -> str:
    return (
        f"{label}: {r['events']:,} events in {r['seconds']:.1f} s ({r['events_per_s']:.0f}/s), "
        f"{r['requests']} requests; walk: {r['walk_requests']} event-list requests in "
        f"{r['walk_seconds']:.1f} s = {r['walk_req_per_s']:.2f} req/s of "
        f"{r['allowance_req_per_s']:.1f} allowed ({r['allowed_slots']} slots) = "
        f"**{r['share'] * 100:.0f}%**; mean in flight {r['mean_in_flight']:.2f} "
        f"({r['slot_share'] * 100:.0f}% of the slots), peak {r['peak_in_flight']}; "
        f"concurrency 429s {r['concurrency_429s']}, rate 429s {r['rate_429s']}; "
        f"chain bound {r['chain_bound'] * 100:.0f}%; the same sync with no latency (its CPU "
        f"bound): {r['reachable_req_per_s']:.2f} req/s reachable, "
        f"{r['reachable_share'] * 100:.0f}% of it"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--latency-ms", type=float, default=500.0)
    parser.add_argument("--concurrent-limit", type=int, default=5)
    parser.add_argument("--rates", choices=("none", "sentry"), default="sentry")
    parser.add_argument("--concurrency", type=int, help="the sync's (default: its own)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--skip-no-headers", action="store_true")
    parser.add_argument("--skip-sync", action="store_true", help="the client-alone runs only")
    parser.add_argument("--fetch-requests", type=int, default=300)
    args = parser.parse_args()
    print(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}", flush=True)
    ms = f"{args.latency_ms:.0f} ms"
    limits: list[int | None] = [args.concurrent_limit]
    if not args.skip_no_headers:
        limits.append(None)
    for limit in limits:
        label = f"ConcurrentLimit {limit}, {ms}" if limit else f"no rate-limit headers, {ms}"
        fetch = run_fetch_bench(
            args.fetch_requests,
            latency_ms=args.latency_ms,
            concurrent_limit=limit,
            concurrency=args.concurrency or 8,
            seed=args.seed,
        )
        print(describe_fetch(f"the client alone, {label}", fetch), flush=True)
        if args.skip_sync:
            continue
        r = run_concurrency_bench(
            args.events,
            latency_ms=args.latency_ms,
            concurrent_limit=limit,
            rates=args.rates if limit else "none",
            concurrency=args.concurrency,
            seed=args.seed,
        )
        print(describe(f"sync, {label}, {args.rates if limit else 'none'}", r), flush=True)
    print(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}", flush=True)


if __name__ == "__main__":
    main()
