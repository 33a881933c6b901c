"""CPU of the page workers: :func:`normalize_spooled_page` over simulator pages, no HTTP.

    python bench/bench_normalize.py                    # 3,000 events, 5 repeats
    python bench/bench_normalize.py --events 1000 --repeats 3 --only sqlite-dict
    python bench/bench_normalize.py --profile sqlite-dict   # cProfile, top 30 by tottime

The pages are rendered once, in this process, exactly as the simulator's event list serves
them with ``full=true`` (``[`` + event bodies joined by ``,`` + ``]``): page 0 of every issue,
then page 1 of every issue, and so on, until ``--events`` events (so every template and the
seed fixtures are in it, as in a backfill). Each is written to a body file as the sync's spool
does, and the worker's own function turns it into a rows file, for each variant:

* ``sqlite-plain``: SQLite, raw JSON compressed without a dictionary (an archive's first
  events);
* ``sqlite-dict``: SQLite with a dictionary trained on the first 500 events (the rest);
* ``postgresql``: COPY rows (``events`` in COPY's binary format, the rest text).

CPU is ``time.process_time`` of this one process (deterministic work, so the minimum of the
repeats is the figure least disturbed by other load; the median is printed beside it).
``read`` is what the sync process spends reading those rows files back (``pickle.loads`` of
every event), which the writer does for each event.
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import json
import os
import pstats
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from archiver.simulator import SimulatedOrg
from archiver.simulator.payloads import EventRenderer
from archiver.storage.rawjson import TRAIN_SAMPLES, RawCodec, train
from archiver.sync.workers import PageJob, SpooledEvent, normalize_spooled_page

PER_PAGE = 100
FAR = 2**62


def render_pages(seed: int, org_events: int, events: int) -> list[tuple[int, int, bytes]]:
    """(project id, issue id, page body) of ``events`` events, round-robin over issues."""
    org = SimulatedOrg(seed=seed, events=org_events)
    renderer = EventRenderer(org)
    issues = org.live_issues()
    out: list[tuple[int, int, bytes]] = []
    total = 0
    offset = 0
    while total < events:
        progressed = False
        for issue in issues:
            refs, _ = org.page(org.issue_segments(issue), 0, FAR, offset, PER_PAGE)
            if not refs:
                continue
            refs = refs[: events - total]
            body = b"[" + b",".join(renderer.full(ref) for ref in refs) + b"]"
            out.append((issue.project.id, issue.id, body))
            total += len(refs)
            progressed = True
            if total >= events:
                break
        if not progressed:
            break
        offset += PER_PAGE
    return out


class Pages:
    """The pages as spooled body files, and the jobs of one variant."""

    def __init__(self, pages: list[tuple[int, int, bytes]], tmp: str) -> None:
        self.bodies: list[tuple[int, int, str]] = []
        for n, (project, issue, body) in enumerate(pages):
            path = os.path.join(tmp, f"{n}.body")
            Path(path).write_bytes(body)
            self.bodies.append((project, issue, path))
        self.rows = [os.path.join(tmp, f"{n}.rows") for n in range(len(pages))]

    def run(self, dialect: str, codec: RawCodec | None) -> list[list[object]]:
        outs: list[list[object]] = []
        for (project, issue, path), rows in zip(self.bodies, self.rows, strict=True):
            job = PageJob(project, issue, dialect, raw_codec=codec)
            out = normalize_spooled_page(path, rows, job)
            assert isinstance(out, list)
            outs.append(out)
        return outs

    def read(self, outs: list[list[object]]) -> str:
        """Every event read back as the writer does; a digest of what was read."""
        digest = hashlib.sha256()
        for out, rows in zip(outs, self.rows, strict=True):
            with open(rows, "rb") as f:
                for ref in out:
                    assert isinstance(ref, SpooledEvent)
                    digest.update(ref.read(f).sha256.encode())
        return digest.hexdigest()[:12]


def cpu_ms(fn: Callable[[], object]) -> tuple[float, object]:
    start = time.process_time()
    result = fn()
    return (time.process_time() - start) * 1000, result


def measure(pages: Pages, events: int, dialect: str, codec: RawCodec | None, repeats: int) -> str:
    work: list[float] = []
    reads: list[float] = []
    digest = ""
    for _ in range(repeats):
        ms, outs = cpu_ms(lambda: pages.run(dialect, codec))
        work.append(ms / events)
        ms, digest_obj = cpu_ms(lambda outs=outs: pages.read(outs))  # type: ignore[misc]
        reads.append(ms / events)
        digest = str(digest_obj)
    return (
        f"worker min {min(work):.3f} median {statistics.median(work):.3f} ms/event | "
        f"read min {min(reads):.3f} median {statistics.median(reads):.3f} ms/event | "
        f"sha {digest}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--org-events", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--only", action="append", default=[], help="variant(s) to run")
    parser.add_argument("--profile", help="cProfile one variant instead of timing")
    args = parser.parse_args()
    pages = render_pages(args.seed, args.org_events, args.events)
    bodies = [b for _, _, page in pages for b in _split(page)]
    events = len(bodies)
    raw_bytes = sum(len(body) for body in bodies)
    samples = [b.decode() for b in bodies[:TRAIN_SAMPLES]]
    dictionary = train(samples)
    assert dictionary is not None
    variants: dict[str, tuple[str, RawCodec | None]] = {
        "sqlite-plain": ("sqlite", None),
        "sqlite-dict": ("sqlite", RawCodec(1, dictionary)),
        "postgresql": ("postgresql", None),
    }
    print(
        f"{len(pages)} pages, {events} events, {raw_bytes / events / 1024:.1f} KB/event; "
        f"load {os.getloadavg()[0]:.2f}; python {sys.version.split()[0]}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        spooled = Pages(pages, tmp)
        if args.profile:
            dialect, codec = variants[args.profile]
            spooled.run(dialect, codec)  # warm
            profiler = cProfile.Profile()
            profiler.runcall(spooled.run, dialect, codec)
            pstats.Stats(profiler).sort_stats("tottime").print_stats(30)
            return
        for name, (dialect, codec) in variants.items():
            if args.only and name not in args.only:
                continue
            spooled.run(dialect, codec)  # warm: caches, compressors
            print(f"{name:13} {measure(spooled, events, dialect, codec, args.repeats)}")


def _split(page: bytes) -> list[bytes]:
    """A page's event bodies (parsed: a ``},{`` may occur inside an event too)."""
    decoder = json.JSONDecoder()
    text = page.decode()
    out: list[bytes] = []
    idx = 1
    while idx < len(text) - 1:
        _, end = decoder.raw_decode(text, idx)
        out.append(text[idx:end].encode())
        idx = end + 1
    return out


if __name__ == "__main__":
    main()
