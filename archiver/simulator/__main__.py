"""``python -m archiver.simulator``: run the simulator standalone on 127.0.0.1.

Prints the URL, organisation slug and token on the first line of stdout (so scripts can read
them), then serves until interrupted.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from .clock import DEFAULT_NOW, FrozenClock, SystemClock
from .config import SimulatorConfig
from .data import SimulatedOrg
from .server import SimulatorServer


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m archiver.simulator", description="A local Sentry REST API look-alike."
    )
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--org", default="acme", help="organisation slug")
    parser.add_argument("--token", default="sim-token", help="bearer token ('' disables auth)")
    parser.add_argument("--rate-limits", choices=("none", "sentry"), default="none")
    parser.add_argument(
        "--concurrent-limit",
        type=int,
        default=None,
        help="every family's X-Sentry-Rate-Limit-ConcurrentLimit (enforced with 429s)",
    )
    parser.add_argument("--latency-ms", type=float, default=0.0, help="added to every answer")
    parser.add_argument(
        "--now",
        default=None,
        help=f"frozen 'now' (ISO 8601; default {DEFAULT_NOW.isoformat()}); 'real' for real time",
    )
    parser.add_argument("--retention-days", type=int, default=100)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    clock = SystemClock() if args.now == "real" else FrozenClock(args.now or DEFAULT_NOW)
    org = SimulatedOrg(
        seed=args.seed,
        events=args.events,
        slug=args.org,
        clock=clock,
        retention_days=args.retention_days,
    )
    config = SimulatorConfig.preset(
        args.rate_limits, args.concurrent_limit, latency_ms=args.latency_ms
    )
    server = SimulatorServer(org, token=args.token or None, port=args.port, config=config).start()
    print(f"{server.url} org={org.slug} token={args.token or '-'}", flush=True)
    print(
        f"{len(org.projects)} projects, {len(org.issues)} issues, "
        f"{org.truth_count()} visible events",
        file=sys.stderr,
        flush=True,
    )
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    try:
        done.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
