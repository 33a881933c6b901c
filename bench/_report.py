"""bench_sync.py's figures: one record per backfill, markdown tables for the README, JSON.

The tables are what the README's performance section shows: one per database and size, a
row per figure and a column per run, so that repeated runs of one run sit side by side.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

KB = 1024


@dataclass
class Backfill:
    """The measured figures of one backfill into a new archive and its baseline, side by side."""

    database: str  # "sqlite" or "postgresql"
    requested: int  # the simulator's --events
    load_before: float  # 1-minute load average of the machine
    load_after: float
    events: int  # archived
    seconds: float
    requests: int
    release_requests: int  # one per release version (release objects)
    minimum_requests: int  # what the walk and discovery need at least
    cpu_main_s: float  # the sync process
    cpu_workers_s: float  # its descendants: page workers (and the forkserver)
    processes: int  # descendants seen
    cpu_server_s: float | None  # the PostgreSQL server's processes for the archive's database
    cpu_simulator_s: float  # the simulator serving the sync
    rss_main_mb: int
    rss_worker_mb: int  # the largest descendant's peak
    archive_bytes: int  # on disk, indexes included (see _measure.sqlite_size / pg_size)
    baseline_seconds: float
    baseline_events: int
    baseline_cpu_s: float
    baseline_rss_mb: int
    raw_json_events: int  # events the baseline fetched
    raw_json_bytes: int  # their JSON's bytes as served
    nochange_seconds: float
    nochange_requests: int
    nochange_new: int
    archive_tables: dict[str, int] = field(default_factory=dict)  # bytes per table

    def derived(self) -> dict[str, float | None]:
        """Rates, per-event figures and ratios (also written to the JSON)."""
        n = max(self.events, 1)
        rate = self.events / self.seconds
        floor = self.baseline_events / self.baseline_seconds
        raw = self.raw_json_bytes / max(self.raw_json_events, 1)
        walk = self.requests - self.release_requests
        return {
            "events_per_s": rate,
            "baseline_events_per_s": floor,
            "ratio_to_baseline": rate / floor,
            "cpu_main_ms_per_event": self.cpu_main_s / n * 1000,
            "cpu_workers_ms_per_event": self.cpu_workers_s / n * 1000,
            "cpu_server_ms_per_event": (
                None if self.cpu_server_s is None else self.cpu_server_s / n * 1000
            ),
            "cpu_simulator_ms_per_event": self.cpu_simulator_s / n * 1000,
            "cpu_baseline_ms_per_event": self.baseline_cpu_s / max(self.baseline_events, 1) * 1000,
            "archive_bytes_per_event": self.archive_bytes / n,
            "raw_json_bytes_per_event": raw,
            "archive_to_raw_json": self.archive_bytes / n / raw if raw else None,
            "walk_requests": walk,
            "walk_over_minimum_pct": (walk - self.minimum_requests) / self.minimum_requests * 100,
        }


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _largest(r: Backfill, d: dict[str, Any]) -> str:
    top = sorted(r.archive_tables.items(), key=lambda kv: -kv[1])[:4]
    return ", ".join(f"{name} {size / max(r.events, 1) / KB:.1f}" for name, size in top)


# (label, value) of each row of a backfill's table; d is Backfill.derived()
ROWS: list[tuple[str, Callable[[Backfill, dict[str, Any]], str]]] = [
    (
        "machine load (1 min) before / after",
        lambda r, d: f"{r.load_before:.1f} / {r.load_after:.1f}",
    ),
    ("events archived", lambda r, d: f"{r.events:,}"),
    ("sync", lambda r, d: f"{r.seconds:.1f} s, {d['events_per_s']:,.0f} events/s"),
    (
        "raw-JSON floor (baseline script, same run)",
        lambda r, d: f"{r.baseline_seconds:.1f} s, {d['baseline_events_per_s']:,.0f} events/s",
    ),
    ("**ratio to the floor**", lambda r, d: f"**{d['ratio_to_baseline']:.2f}**"),
    ("CPU ms/event: sync process", lambda r, d: _ms(d["cpu_main_ms_per_event"])),
    (
        "CPU ms/event: page workers (all descendants)",
        lambda r, d: f"{_ms(d['cpu_workers_ms_per_event'])} ({r.processes} processes)",
    ),
    (
        "CPU ms/event: PostgreSQL server",
        lambda r, d: (
            "not measured (server not local)"
            if r.database == "postgresql" and r.cpu_server_s is None
            else _ms(d["cpu_server_ms_per_event"])
        ),
    ),
    (
        "CPU ms/event: baseline script / simulator",
        lambda r, d: (
            f"{_ms(d['cpu_baseline_ms_per_event'])} / {_ms(d['cpu_simulator_ms_per_event'])}"
        ),
    ),
    (
        "peak RSS: sync process / largest worker",
        lambda r, d: f"{r.rss_main_mb} MB / {r.rss_worker_mb} MB",
    ),
    ("archive on disk per event", lambda r, d: f"{d['archive_bytes_per_event'] / KB:.1f} KB"),
    ("raw JSON per event (as served)", lambda r, d: f"{d['raw_json_bytes_per_event'] / KB:.1f} KB"),
    ("**archive / raw JSON**", lambda r, d: f"**{d['archive_to_raw_json']:.2f}x**"),
    ("largest tables, KB/event (indexes incl.)", _largest),
    (
        "requests: all / release objects",
        lambda r, d: f"{r.requests:,} / {r.release_requests:,}",
    ),
    (
        "walk + discovery vs minimum",
        lambda r, d: (
            f"{int(d['walk_requests']):,} vs {r.minimum_requests:,} "
            f"({d['walk_over_minimum_pct']:+.1f}%)"
        ),
    ),
    (
        "no-change run",
        lambda r, d: (
            f"{r.nochange_seconds:.2f} s, {r.nochange_requests} requests, {r.nochange_new} new"
        ),
    ),
]

NAMES = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}


def backfill_tables(runs: list[Backfill]) -> str:
    """One markdown table per database and size, in the order first run; a column per run."""
    groups: dict[tuple[str, int], list[Backfill]] = {}
    for r in runs:
        groups.setdefault((r.database, r.requested), []).append(r)
    out = []
    for (database, requested), group in groups.items():
        derived = [r.derived() for r in group]
        heads = [f"run {i + 1}" for i in range(len(group))] if len(group) > 1 else ["value"]
        lines = [
            f"#### {NAMES.get(database, database)}, {requested:,} events",
            "",
            "| | " + " | ".join(heads) + " |",
            "|---|" + "---|" * len(heads),
        ]
        for label, value in ROWS:
            cells = [value(r, d) for r, d in zip(group, derived, strict=True)]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        out.append("\n".join(lines))
    return "\n\n".join(out)


def dict_table(title: str, figures: dict[str, Any]) -> str:
    """A two-column markdown table of a flat dict of figures (the latency and concurrency runs)."""

    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:,.2f}"
        if isinstance(v, int):
            return f"{v:,}"
        return str(v)

    lines = [f"#### {title}", "", "| | value |", "|---|---|"]
    lines += [f"| {k.replace('_', ' ')} | {cell(v)} |" for k, v in figures.items()]
    return "\n".join(lines)


def _commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError:
        return ""
    return out.stdout.strip()


def meta() -> dict[str, Any]:
    """Where and when the figures were made: the JSON's ``meta``."""
    return {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "commit": _commit(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "machine": platform.platform(),
    }


def write_json(
    path: Path,
    info: dict[str, Any],
    runs: list[Backfill],
    latency: dict[str, Any] | None,
    concurrency: dict[str, Any] | None,
) -> None:
    """All figures, machine-readably; rewritten after each run, so a long bench that fails
    late keeps what it measured."""
    doc = {
        "meta": info,
        "backfills": [{**asdict(r), **r.derived()} for r in runs],
        "latency": latency,
        "concurrency": concurrency,
    }
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    tmp.replace(path)
