"""Retention purges on SQLite and PostgreSQL: exactly the old events go, the audit stays."""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, inspect, text

from archiver.cli import cli
from archiver.errors import ConfigError, ExitCode
from archiver.normalize import normalize_event
from archiver.operations.purge import compute_cutoff, purge
from archiver.storage import db
from archiver.storage.store import CHILD_TABLES, Store
from tests.helpers import orphans

FIXTURES = Path(__file__).resolve().parents[2] / "archiver" / "simulator" / "fixtures"
NOW = dt.datetime(2025, 6, 1, 12, 0, tzinfo=dt.timezone.utc)
DAY = dt.timedelta(days=1)
CHILDREN = list(CHILD_TABLES)
# (project, age in days or None for an event without a date)
LAYOUT = [(11, 500), (11, 401), (11, 399), (11, 10), (12, 450), (12, 100), (11, None), (12, 400.5)]
OLD = {0, 1, 4, 7}  # the indexes older than 400 days


def payload(i: int, project: int, created: dt.datetime | None) -> dict[str, Any]:
    base = json.loads((FIXTURES / "seed_000_event_detail.json").read_text())
    ev = copy.deepcopy(base)
    ev["eventID"] = ev["id"] = f"{i + 1:032x}"
    ev["projectID"] = str(project)
    ev["groupID"] = str(project * 10)
    if created is None:
        # no date at all: dateReceived (and endTimestamp) would date it too (event_second)
        for key in ("dateCreated", "dateReceived", "endTimestamp"):
            ev.pop(key, None)
    else:
        ev["dateCreated"] = created.isoformat().replace("+00:00", "Z")
    return ev


def fill(
    engine: Engine, now: dt.datetime = NOW, layout: list[tuple[int, float | None]] = LAYOUT
) -> dict[int, str]:
    """Archive the layout's events; returns index -> event id."""
    store = Store(engine)
    events = [
        normalize_event(payload(i, p, None if age is None else now - age * DAY), has_detail=True)
        for i, (p, age) in enumerate(layout)
    ]
    with store.transaction() as conn:
        store.upsert_projects(
            conn,
            [
                {
                    "id": 11,
                    "organization_slug": "org",
                    "slug": "web",
                    "name": "Web",
                    "platform": None,
                    "date_created": None,
                    "raw_json": "{}",
                },
                {
                    "id": 12,
                    "organization_slug": "org",
                    "slug": "api",
                    "name": "API",
                    "platform": None,
                    "date_created": None,
                    "raw_json": "{}",
                },
            ],
        )
        store.write_events(conn, events)
    store.finish_run(store.start_run("sync"), "success")
    return {i: ev.event_id for i, ev in enumerate(events)}


def snapshot(engine: Engine) -> dict[str, set[str]]:
    """Every row of every table (as text) keyed by table; event rows carry their event id."""
    out: dict[str, set[str]] = {}
    with engine.connect() as conn:
        pk_to_eid: dict[int, str] = dict(
            conn.execute(text("SELECT id, event_id FROM events")).all()
        )
        for table in inspect(conn).get_table_names():
            result = conn.execute(text(f'SELECT * FROM "{table}"'))
            keys = list(result.keys())
            rows = set()
            for row in result:
                m = dict(zip(keys, row, strict=True))
                if "event_pk" in m:
                    m["event_pk"] = pk_to_eid.get(m["event_pk"], m["event_pk"])
                rows.add(json.dumps(m, sort_keys=True, default=str))
            out[table] = rows
    return out


def without(snap: dict[str, set[str]], event_ids: set[str]) -> dict[str, set[str]]:
    """The snapshot minus the rows of these events (and their children)."""
    out = {}
    for table, rows in snap.items():
        if table == "events" or table in CHILDREN:
            key = "event_id" if table == "events" else "event_pk"
            rows = {r for r in rows if json.loads(r)[key] not in event_ids}
        out[table] = rows
    return out


def purge_rows(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(text("SELECT * FROM purges ORDER BY id"))]


# --------------------------------------------------------------------------- the engine


def test_purge_removes_exactly_the_old_events_and_their_children(engine):
    ids = fill(engine)
    before = snapshot(engine)
    assert all(
        len(before[t]) > 0 for t in ["event_tags", "event_stacks", "breadcrumbs", "requests"]
    )
    result = purge(engine, 400 * DAY, now=NOW, batch_size=3, command="purge --older-than 400d")
    gone = {ids[i] for i in OLD}
    assert result.events == len(OLD)
    assert result.batches == 2
    assert result.by_project == {11: 2, 12: 2}
    after = snapshot(engine)
    expected = without(before, gone)
    # Everything else is untouched, except the purges audit row that was added.
    assert {t: r for t, r in after.items() if t != "purges"} == {
        t: r for t, r in expected.items() if t != "purges"
    }
    for table in CHILDREN:
        removed = len(before[table]) - len(after[table])
        assert removed == result.children[table]
    # PostgreSQL has no ON DELETE CASCADE (migration 0008): purge deleted them itself.
    assert orphans(engine) == {}
    assert result.children["event_stacks"] > 0
    # Every event has the same stacks: the ones kept still point at them.
    assert (result.children["stacks"], result.children["stack_frames"]) == (0, 0)
    assert after["stacks"] == before["stacks"]
    assert result.children["event_tags"] > 0
    (audit,) = purge_rows(engine)
    assert audit["id"] == result.purge_id
    assert audit["outcome"] == "success"
    assert audit["events_deleted"] == len(OLD)
    assert audit["command"] == "purge --older-than 400d"
    assert not audit["dry_run"]
    assert audit["projects"] is None
    assert audit["finished_at"] is not None
    assert audit["pid"]
    assert audit["host"]
    cutoff = audit["cutoff"]
    cutoff = cutoff if isinstance(cutoff, dt.datetime) else dt.datetime.fromisoformat(str(cutoff))
    assert cutoff.replace(tzinfo=dt.timezone.utc) == NOW - 400 * DAY


def test_purge_frees_the_stacks_that_only_purged_events_had(engine):
    """Stacks are shared: a purge deletes those no kept event points at, with their frames."""
    fill(engine)
    lonely = payload(100, 11, NOW - 500 * DAY)  # an old event with a stack of its own
    frames = lonely["entries"][0]["data"]["values"][0]["stacktrace"]["frames"]
    frames[-1]["function"] = "only_here"
    with Store(engine).transaction() as conn:
        Store(engine).write_events(conn, [normalize_event(lonely, has_detail=True)])

    def frames_of(function: str) -> int:
        with engine.connect() as conn:
            return int(
                conn.execute(
                    text("SELECT count(*) FROM stack_frames WHERE function = :f"), {"f": function}
                ).scalar_one()
            )

    assert frames_of("only_here") == 1
    shared = frames_of(frames[0]["function"])
    dry = purge(engine, 400 * DAY, now=NOW, dry_run=True)
    result = purge(engine, 400 * DAY, now=NOW)
    assert (result.children["stacks"], result.children["stack_frames"]) == (1, len(frames))
    assert dry.children == result.children
    assert frames_of("only_here") == 0
    assert frames_of(frames[0]["function"]) == shared - 1  # the kept events' stack stays
    # Every dated event gone: only the stacks of the one without a date stay.
    purge(engine, 1 * DAY, now=NOW + 10_000 * DAY)
    with engine.connect() as conn:
        left = conn.execute(text("SELECT stack_key, frame_count FROM stacks")).all()
        used = conn.execute(text("SELECT DISTINCT stack_key FROM event_stacks")).all()
        n_frames = conn.execute(text("SELECT count(*) FROM stack_frames")).scalar_one()
    assert sorted(bytes(k) for k, _ in left) == sorted(bytes(k) for (k,) in used)
    assert n_frames == sum(n for _, n in left)


def test_purge_of_one_project_keeps_the_others(engine):
    ids = fill(engine)
    before = snapshot(engine)
    result = purge(engine, 400 * DAY, now=NOW, projects=["api"])
    assert result.events == 2
    assert result.project_ids == [12]
    assert snapshot(engine)["events"] == without(before, {ids[4], ids[7]})["events"]
    (audit,) = purge_rows(engine)
    projects = audit["projects"]
    assert (json.loads(projects) if isinstance(projects, str) else projects) == [12]
    with pytest.raises(ConfigError, match="not in the archive: nope"):
        purge(engine, 400 * DAY, now=NOW, projects=["nope"])


def test_minimum_retention_is_enforced(engine):
    fill(engine)
    before = snapshot(engine)
    with pytest.raises(ConfigError, match="minimum retention of 365d"):
        purge(engine, 30 * DAY, retention_minimum=365 * DAY, now=NOW)
    assert snapshot(engine) == before  # refused before anything, not even an audit row
    result = purge(engine, 365 * DAY, retention_minimum=365 * DAY, now=NOW)  # the edge is allowed
    assert result.events == len(OLD) + 1  # and the 399-day-old event too
    with pytest.raises(ConfigError, match="positive"):
        compute_cutoff(dt.timedelta(0), None)


def test_dry_run_changes_nothing_and_counts_what_a_purge_deletes(engine):
    fill(engine)
    before = snapshot(engine)
    dry = purge(engine, 400 * DAY, now=NOW, dry_run=True)
    assert snapshot(engine) == before
    assert dry.purge_id is None
    assert dry.events == len(OLD)
    real = purge(engine, 400 * DAY, now=NOW)
    assert (real.events, real.by_project, real.children) == (
        dry.events,
        dry.by_project,
        dry.children,
    )


def test_purges_never_touch_the_audit_tables_and_a_failure_is_recorded(engine):
    fill(engine)
    first = purge(engine, 450 * DAY, now=NOW)
    audit_before = purge_rows(engine)
    with engine.connect() as conn:
        runs_before = conn.execute(text("SELECT * FROM runs")).all()

    def explode(_result: Any) -> None:
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        purge(engine, 400 * DAY, now=NOW, batch_size=1, on_batch=explode)
    rows = purge_rows(engine)
    assert rows[0] == audit_before[0]
    assert rows[0]["id"] == first.purge_id
    assert rows[1]["outcome"] == "failed"
    assert rows[1]["events_deleted"] == 1  # the committed batch
    with engine.connect() as conn:
        assert conn.execute(text("SELECT * FROM runs")).all() == runs_before


def test_the_lock_seam_wraps_real_purges_only(engine):
    fill(engine)
    entered: list[str] = []

    @contextlib.contextmanager
    def lock() -> Iterator[None]:
        entered.append("in")
        yield
        entered.append("out")

    purge(engine, 400 * DAY, now=NOW, dry_run=True, lock=lock())
    assert entered == []
    purge(engine, 400 * DAY, now=NOW, lock=lock())
    assert entered == ["in", "out"]


# --------------------------------------------------------------------------- the command


def test_purge_command(db_url, tmp_path):
    engine = db.make_engine(db_url)
    now = dt.datetime.now(dt.timezone.utc)
    ids = fill(engine, now, [(11, 500), (12, 600), (11, 300), (12, 10)])
    engine.dispose()
    runner = CliRunner()
    dry = runner.invoke(cli, ["purge", "--older-than", "400d", "--db", db_url, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert dry.output.startswith(
        "would delete 2 events (web: 1, api: 1) and 44 child rows dated before "
    )
    assert dry.output.count("\n") == 1  # one line
    config = tmp_path / "c.toml"
    config.write_text('[retention]\nminimum = "450d"\n')
    refused = runner.invoke(
        cli, ["purge", "--older-than", "400d", "--db", db_url, "--config", str(config)]
    )
    assert refused.exit_code == ExitCode.USAGE
    assert refused.output == (
        "error: refusing to purge: --older-than 400d would delete events younger than the "
        "configured minimum retention of 450d ([retention] minimum); "
        "use --older-than 450d or more\n"
    )
    done = runner.invoke(
        cli,
        [
            "purge",
            "--older-than",
            "400d",
            "--db",
            db_url,
            "--project",
            "web",
            "--batch-size",
            "1",
            "--yes",
        ],
    )
    assert done.exit_code == 0, done.output
    deleted, recorded = done.output.splitlines()
    assert deleted.startswith("deleted 1 event (web: 1) and 22 child rows dated before ")
    assert recorded == "recorded as purge #1 in the purges table"
    engine = db.make_engine(db_url)
    with engine.connect() as conn:
        left = set(conn.execute(text("SELECT event_id FROM events")).scalars())
        command = conn.execute(text("SELECT command FROM purges")).scalar_one()
    engine.dispose()
    assert left == {ids[1], ids[2], ids[3]}
    assert command == "purge --older-than 400d --project web --batch-size 1"


def test_purge_waits_for_no_one_it_is_refused_while_a_sync_holds_the_lock(db_url):
    from archiver.storage import lock as run_lock

    engine = db.make_engine(db_url)
    now = dt.datetime.now(dt.timezone.utc)
    fill(engine, now, [(11, 500), (12, 10)])
    with run_lock.acquire(engine, "sync"):
        refused = CliRunner().invoke(
            cli, ["purge", "--older-than", "400d", "--db", db_url, "--yes"]
        )
        with engine.connect() as conn:
            count = conn.execute(text("SELECT count(*) FROM events")).scalar_one()
    engine.dispose()
    assert refused.exit_code == ExitCode.LOCKED, refused.output
    assert refused.output.startswith(f"error: another sync holds the archive {db_url} (host ")
    assert ", command sync, since " in refused.output
    assert refused.output.count("\n") == 1  # one line
    assert count == 2  # nothing deleted


def test_vacuum_shrinks_a_sqlite_archive(tmp_path):
    url = f"sqlite:///{tmp_path}/a.db"
    engine = db.make_engine(url)
    db.upgrade(engine)
    # enough events that the data, not the empty schema (one 16 KB page per table and index),
    # makes up the file
    fill(engine, dt.datetime.now(dt.timezone.utc), [(11, 500 + i) for i in range(400)])
    engine.dispose()
    result = CliRunner().invoke(
        cli, ["purge", "--older-than", "400d", "--db", url, "--vacuum", "--yes"]
    )
    assert result.exit_code == 0, result.output
    line = next(x for x in result.output.splitlines() if x.startswith("vacuumed:"))
    before, after = (int(n.replace(",", "")) for n in line.split()[1::2])
    assert after < before / 4


def test_purge_needs_an_existing_current_archive(tmp_path):
    target = tmp_path / "none.db"
    result = CliRunner().invoke(
        cli, ["purge", "--older-than", "400d", "--db", f"sqlite:///{target}"]
    )
    assert result.exit_code == ExitCode.DATABASE
    assert result.output == (
        f"error: no archive at sqlite:///{target} (the file does not exist); nothing to purge\n"
    )
    assert not target.exists()
    bad = CliRunner().invoke(cli, ["purge", "--older-than", "soon", "--db", f"sqlite:///{target}"])
    assert bad.exit_code == ExitCode.USAGE
    assert bad.output == (
        "error: not a retention age: 'soon' (use days, weeks, months or years: 90d, 12w, 6mo, 1y)\n"
    )
