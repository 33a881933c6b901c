"""Keyset walk vs offset walk of one big issue, against the simulator with offset cost on.

    python bench/bench_walk.py                        # 100,000 events, 1 us per skipped row
    python bench/bench_walk.py --events 20000 --row-delay 0.00001

One issue gets ``--events`` events spread over ``--spread`` seconds (so many seconds hold
several events: ties, shuffled per request as Sentry's ClickHouse does). The simulator makes
every event-list page pay ``--row-delay`` seconds per row it skips to reach its offset
(Snuba reads and drops them), so an offset walk of N events costs about N²/200 row reads.

Two walks of the same issue, side by side:

* **keyset**: ``sentry-archiver sync`` (the real CLI, in a subprocess, into a throwaway SQLite
  file): the archiver's own walk. Its discovery and the org's few other small issues are
  counted apart; the figures are the big issue's event-list requests.
* **offset**: plain ``cursor=0:N:0`` pages of 100 full events over the pinned window, as the
  archiver used to walk (and as a naive client does), parsed but not stored.

Reported per walk: seconds, requests, events seen (distinct), largest offset asked, and the
simulated server time spent skipping rows. The keyset walk also stores every event, so its
time includes the archive writes that the offset walk does not do.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from archiver.simulator import SimulatedOrg, SimulatorConfig, SimulatorServer

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "bench-token"


def iso(epoch: int) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")


def build_org(events: int, spread: int) -> tuple[SimulatedOrg, int]:
    """A small org plus one issue of ``events`` events ending 10 s before now; (org, issue id)."""
    org = SimulatedOrg(seed=3, events=60, include_fixtures=False)
    big = max(org.live_issues(), key=lambda i: i.times_seen)
    org.add_events(big.id, events, at=int(org.now()) - 10, spread_seconds=spread)
    return org, big.id


def issue_pages(server: SimulatorServer, issue_id: int) -> list[int]:
    """Offsets of the event-list requests made for one issue, in order."""
    marker = f"/issues/{issue_id}/events/"
    return [
        e.offset or 0
        for e in server.log.entries()
        if e.family == "issue_events" and marker in e.path
    ]


def skipped_seconds(offsets: list[int], row_delay: float) -> float:
    return sum(offsets) * row_delay


def keyset_walk(server: SimulatorServer, org: SimulatedOrg) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "SENTRY_URL": server.url,
            "SENTRY_AUTH_TOKEN": TOKEN,
            "SENTRY_ORG": org.slug,
            "SENTRY_ARCHIVER_DB": f"sqlite:///{tmp}/bench.db",
            "PYTHONPATH": str(ROOT),
        }
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "archiver", "sync", "--quiet", "--concurrency", "1"],
            env=env,
            capture_output=True,
            text=True,
        )
        seconds = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(f"sync failed ({done.returncode}):\n{done.stderr}")
    return seconds


def offset_walk(server: SimulatorServer, org: SimulatedOrg, issue_id: int) -> tuple[float, int]:
    """(seconds, distinct events seen) of a plain offset walk over a pinned window."""
    now = int(org.now())
    window = {"start": iso(org.retention_cutoff()), "end": iso(now + 1)}
    url = f"api/0/organizations/{org.slug}/issues/{issue_id}/events/"
    seen: set[str] = set()
    offset = 0
    headers = {"Authorization": f"Bearer {TOKEN}"}
    started = time.perf_counter()
    with httpx.Client(base_url=server.url, headers=headers, timeout=600) as client:
        while True:
            params = {"full": "true", "per_page": "100", "cursor": f"0:{offset}:0", **window}
            response = client.get(url, params=params)
            response.raise_for_status()
            seen.update(event["eventID"] for event in response.json())
            if 'rel="next"; results="false"' in response.headers["link"]:
                break
            offset += 100
    return time.perf_counter() - started, len(seen)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--spread", type=int, default=200_000, help="seconds the events span")
    parser.add_argument(
        "--row-delay", type=float, default=1e-6, help="seconds per skipped row (offset cost)"
    )
    args = parser.parse_args()

    org, issue_id = build_org(args.events, args.spread)
    issue = org.resolve_issue(issue_id)
    assert issue is not None
    truth = org.count(issue.segments, -(2**40), 2**40)  # the issue's visible events
    config = SimulatorConfig(offset_row_delay=args.row_delay, log_size=1_000_000)
    rows = []
    with SimulatorServer(org, token=TOKEN, config=config) as server:
        seconds = keyset_walk(server, org)
        offsets = issue_pages(server, issue_id)
        total = len(server.log.entries())
        rows.append(("keyset (sync CLI)", seconds, len(offsets), truth, max(offsets), offsets))
        server.log.reset()
        seconds, seen = offset_walk(server, org, issue_id)
        offsets = issue_pages(server, issue_id)
        rows.append(("offset 0:N:0", seconds, len(offsets), seen, max(offsets), offsets))

    print(
        f"one issue of {truth:,} events over {args.spread:,} s; "
        f"offset cost {args.row_delay * 1e6:g} us per skipped row"
    )
    print(
        f"{'walk':<20}{'seconds':>10}{'requests':>10}{'events':>10}{'max offset':>12}{'skip s':>10}"
    )
    for name, secs, requests, events, deepest, offs in rows:
        print(
            f"{name:<20}{secs:>10.1f}{requests:>10,}{events:>10,}{deepest:>12,}"
            f"{skipped_seconds(offs, args.row_delay):>10.1f}"
        )
    print(f"(the sync made {total:,} requests in all, discovery and the org's other issues too)")


if __name__ == "__main__":
    main()
