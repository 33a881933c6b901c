"""How fast does the simulator serve full events to one client thread?

Walks every issue's event list of a simulated org with ``full=true`` (pinned start/end, cursor
from the Link header, until ``results="false"``) using one single-threaded httpx client, the
way the archiver does, and prints events/s and requests/s. The target is >= 3,000 full events
per second on a 2-core machine.

    /work/venv/bin/python bench/bench_simulator.py --events 20000
    python bench/bench_simulator.py --events 20000 --subprocess   # the server in its own process
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from archiver.simulator import SimulatedOrg, SimulatorConfig, SimulatorServer

NEXT = re.compile(r'rel="next"; results="(true|false)"; cursor="([^"]+)"')


def walk(
    base_url: str, token: str, org_slug: str, now: float, retention_days: int
) -> tuple[int, int, int, float]:
    """(events, requests, bytes, seconds the client spent parsing JSON) for a full walk."""
    start = dt.datetime.fromtimestamp(
        int(now) - retention_days * 86_400, tz=dt.timezone.utc
    ).isoformat()
    end = dt.datetime.fromtimestamp(int(now) + 1, tz=dt.timezone.utc).isoformat()
    events = requests = size = 0
    parsing = 0.0
    with httpx.Client(
        base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=60
    ) as client:
        issues: list[str] = []
        cursor = ""
        while True:
            r = client.get(
                f"api/0/organizations/{org_slug}/issues/",
                params={"query": "", "start": start, "end": end, "limit": 100, "cursor": cursor},
            )
            requests += 1
            r.raise_for_status()
            issues += [i["id"] for i in r.json()]
            match = NEXT.search(r.headers["link"])
            assert match
            if match.group(1) == "false":
                break
            cursor = match.group(2)
        for issue_id in issues:
            cursor = ""
            while True:
                r = client.get(
                    f"api/0/issues/{issue_id}/events/",
                    params={"full": "true", "start": start, "end": end, "cursor": cursor},
                )
                requests += 1
                r.raise_for_status()
                size += len(r.content)
                t = time.perf_counter()
                events += len(r.json())
                parsing += time.perf_counter() - t
                match = NEXT.search(r.headers["link"])
                assert match
                if match.group(1) == "false":
                    break
                cursor = match.group(2)
    return events, requests, size, parsing


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument(
        "--subprocess", action="store_true", help="run the server in its own process"
    )
    parser.add_argument("--repeat", type=int, default=1, help="walk again (warm caches)")
    args = parser.parse_args()

    org = SimulatedOrg(seed=args.seed, events=args.events)
    expected = org.truth_count()
    proc = None
    server = None
    if args.subprocess:
        port = 18_000 + os.getpid() % 1000
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "archiver.simulator",
                "--port",
                str(port),
                "--seed",
                str(args.seed),
                "--events",
                str(args.events),
                "--latency-ms",
                str(args.latency_ms),
            ],
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parents[1],
        )
        assert proc.stdout is not None
        proc.stdout.readline()
        base_url = f"http://127.0.0.1:{port}/"
    else:
        server = SimulatorServer(org, config=SimulatorConfig(latency_ms=args.latency_ms)).start()
        base_url = server.url
    try:
        for n in range(args.repeat):
            t0 = time.perf_counter()
            events, requests, size, parsing = walk(
                base_url, "sim-token", org.slug, org.now(), org.retention_days
            )
            elapsed = time.perf_counter() - t0
            print(
                f"walk {n + 1}: {events} events ({expected} expected) in {requests} requests, "
                f"{size / 1e6:.1f} MB, {elapsed:.2f} s: {events / elapsed:,.0f} events/s, "
                f"{requests / elapsed:,.1f} requests/s; the client's own JSON parsing took "
                f"{parsing:.2f} s, without it {events / (elapsed - parsing):,.0f} events/s "
                f"(the simulator's serving rate)"
            )
    finally:
        if server is not None:
            server.stop()
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
