"""``sentry-archiver demo``: archive the built-in simulator's organization, then query it.

The demo runs exactly the code a real sync runs (``archiver.sync.runner.execute_sync``), against a
simulator started in this process on a free loopback port, so what a newcomer sees is what
they will get against sentry.io.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text

from archiver.config import Settings
from archiver.simulator import SimulatedOrg, SimulatorConfig, SimulatorServer
from archiver.storage import db
from archiver.sync.runner import SyncOutcome, execute_sync

DEMO_SEED = 42
DEMO_EVENTS = 2000
DEMO_DB = "sqlite:///sentry-archive-demo.db"
DEMO_TOKEN = "demo-token"

EXAMPLE_QUERIES: list[tuple[str, str]] = [
    (
        "Events archived per project",
        "SELECT p.slug, count(*) AS events FROM events e JOIN projects p ON p.id = e.project_id "
        "GROUP BY p.slug ORDER BY events DESC, p.slug",
    ),
    (
        "The five exception types seen most",
        "SELECT x.type, count(*) AS events FROM exceptions x WHERE x.is_last "
        "GROUP BY x.type ORDER BY events DESC, x.type LIMIT 5",
    ),
    (
        "In-app functions that crash most (top in-app frame of the raised exception)",
        "SELECT f.function, count(DISTINCT f.event_pk) AS events FROM frames f "
        "JOIN exceptions x ON x.event_pk = f.event_pk AND x.position = f.stack_index "
        "WHERE f.stack_kind = 'exception' AND NOT f.is_raw AND f.in_app AND x.is_last "
        "AND f.position = (SELECT max(g.position) FROM frames g WHERE g.event_pk = f.event_pk "
        "AND g.stack_kind = 'exception' AND g.stack_index = f.stack_index AND NOT g.is_raw "
        "AND g.in_app) GROUP BY f.function ORDER BY events DESC, f.function LIMIT 5",
    ),
]


@dataclass(frozen=True)
class DemoCounts:
    """Projects, issues and events: what the simulator will serve, or what the archive holds."""

    projects: int
    issues: int
    events: int


@dataclass
class DemoResult:
    outcome: SyncOutcome
    truth: int
    archived: int
    # what the archive holds after the run (a rerun walks no issue, yet the archive has them)
    holds: DemoCounts | None = None


def plan_of(org: SimulatedOrg) -> DemoCounts:
    """What a complete archive of ``org`` holds: its truth, not the events asked for.

    ``--events`` is how many events the simulator generates; those older than Sentry's
    retention are not served, so the demo announces what it will really archive.
    """
    cutoff = org.retention_cutoff()
    projects: set[int] = set()
    issues = 0
    for issue in org.live_issues():
        if any(s.n - s.count_before(cutoff) for s in org.issue_segments(issue)):
            issues += 1
            projects.add(issue.project.id)
    return DemoCounts(len(projects), issues, org.truth_count(searchable_days=None))


@contextmanager
def running_simulator(*, seed: int, events: int) -> Iterator[tuple[SimulatedOrg, SimulatorServer]]:
    org = SimulatedOrg(seed=seed, events=events)
    # Unclipped issue search: the README's recipes show this archive (with sentry.io's 90-day
    # clip the issues whose events are all older than 90 days would not be found).
    server = SimulatorServer(org, token=DEMO_TOKEN, config=SimulatorConfig(search_max_days=None))
    server.start()
    try:
        yield org, server
    finally:
        server.stop()


def demo_settings(url: str, org_slug: str, db_url: str) -> Settings:
    return Settings(url=url, token=DEMO_TOKEN, org=org_slug, db=db_url, concurrency=4)


def build_demo_archive(
    db_url: str,
    *,
    seed: int = DEMO_SEED,
    events: int = DEMO_EVENTS,
    on_start: Callable[[DemoCounts], None] | None = None,
) -> DemoResult:
    """Archive the demo organization into ``db_url`` (used by the demo and the cookbook tests).

    ``on_start`` is told what will be archived (:func:`plan_of`) before the sync starts.
    """
    with running_simulator(seed=seed, events=events) as (org, server):
        if on_start is not None:
            on_start(plan_of(org))
        outcome = execute_sync(demo_settings(server.url, org.slug, db_url))
        truth = org.truth_count(searchable_days=None)
    engine = db.make_engine(db_url)
    try:
        with engine.connect() as conn:
            projects, issues, archived = (
                int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())
                for table in ("projects", "issues", "events")
            )
    finally:
        engine.dispose()
    return DemoResult(outcome, truth, archived, DemoCounts(projects, issues, archived))


def run_queries(db_url: str) -> list[tuple[str, str, list[str], list[tuple[Any, ...]]]]:
    engine = db.make_engine(db_url)
    out = []
    try:
        with engine.connect() as conn:
            for title, sql in EXAMPLE_QUERIES:
                result = conn.execute(text(sql))
                out.append((title, sql, list(result.keys()), [tuple(r) for r in result]))
    finally:
        engine.dispose()
    return out


def format_table(columns: list[str], rows: list[tuple[Any, ...]]) -> str:
    cells = [columns] + [["" if v is None else str(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
