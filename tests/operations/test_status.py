"""``sentry-archiver status``: per-project counts, runs, errors, backfill state, lock."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from archiver.cli import cli
from archiver.errors import ExitCode
from archiver.operations.demo import build_demo_archive
from archiver.storage import db, lock


def status_json(db_url: str) -> dict[str, Any]:
    r = CliRunner().invoke(cli, ["status", "--db", db_url, "--json"])
    assert r.exit_code == 0, r.output
    return json.loads(r.output)


@pytest.mark.slow
def test_status_after_a_sync_then_errors_backfill_and_lock(db_url):
    result = build_demo_archive(db_url, events=300)
    assert result.archived == result.truth

    s = status_json(db_url)
    engine = db.make_engine(db_url)
    with engine.connect() as conn:
        per_project: dict[int, int] = dict(
            conn.execute(text("SELECT project_id, count(*) FROM events GROUP BY project_id")).all()
        )
        issues: dict[int, int] = dict(
            conn.execute(text("SELECT project_id, count(*) FROM issues GROUP BY project_id")).all()
        )
        oldest = conn.execute(text("SELECT min(date_created) FROM events")).scalar_one()
    assert s["totals"]["events"] == result.archived
    assert s["lock"] is None
    assert s["last_run"]["outcome"] == "success"
    assert s["last_success"]["events_new"] == result.archived
    assert s["last_failure"] is None
    assert {p["id"]: p["events"] for p in s["projects"]} == {
        int(k): v for k, v in per_project.items()
    }
    assert {p["id"]: p["issues"] for p in s["projects"]} == {int(k): v for k, v in issues.items()}
    for p in s["projects"]:
        assert p["backfill_in_progress"] is False
        assert p["issues_pending"] == 0
        assert p["last_success"]["id"] == s["last_success"]["id"]
        assert p["last_error"] is None
        assert p["oldest_event"] <= p["newest_event"]
    if isinstance(oldest, str):
        oldest = dt.datetime.fromisoformat(oldest).replace(tzinfo=dt.timezone.utc)
    assert min(dt.datetime.fromisoformat(p["oldest_event"]) for p in s["projects"]) == oldest

    human = CliRunner().invoke(cli, ["status", "--db", db_url])
    assert human.exit_code == 0, human.output
    for p in s["projects"]:
        assert p["slug"] in human.output
    assert "lock:     free" in human.output
    rows = human.output.splitlines()[-len(s["projects"]) :]
    assert [row.split()[0] for row in rows] == [p["slug"] for p in s["projects"]]
    assert all(row.split()[-2:] == ["done", "-"] for row in rows), rows

    # an issue whose first walk is unfinished, and one whose walk failed
    target = s["projects"][0]
    with engine.begin() as conn:
        walks = (
            conn.execute(
                text("SELECT issue_id FROM sync_issues WHERE project_id = :p ORDER BY issue_id"),
                {"p": target["id"]},
            )
            .scalars()
            .all()
        )
        conn.execute(
            text(
                "UPDATE sync_issues SET status = 'pending', synced_until = NULL WHERE issue_id = :i"
            ),
            {"i": walks[0]},
        )
        conn.execute(
            text("UPDATE sync_issues SET status = 'failed', last_error = :e WHERE issue_id = :i"),
            {"i": walks[-1], "e": "HTTP 502 from server"},
        )
    s = status_json(db_url)
    p = next(p for p in s["projects"] if p["id"] == target["id"])
    assert p["backfill_in_progress"] is True
    assert p["issues_pending"] == 2
    assert p["issues_failed"] == 1
    assert p["last_error"]["issue_id"] == walks[-1]
    assert p["last_error"]["message"] == "HTTP 502 from server"
    others = [q for q in s["projects"] if q["id"] != target["id"]]
    assert all(not q["backfill_in_progress"] and q["last_error"] is None for q in others)

    # a later run that failed
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO runs (command, started_at, finished_at, outcome, error_message, "
                "projects, issues, events_new, events_updated, requests, retries) VALUES "
                "('sync', :t, :t, 'failed', 'ApiError: the server kept failing', 0, 0, 0, 0, 3, 6)"
            ),
            {"t": dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=5)},
        )
    s = status_json(db_url)
    assert s["last_run"]["outcome"] == "failed"
    assert s["last_failure"]["error_message"] == "ApiError: the server kept failing"
    assert s["last_success"]["outcome"] == "success"
    for q in s["projects"]:
        if q["id"] != target["id"]:
            assert q["last_error"]["message"] == "ApiError: the server kept failing"
    human = CliRunner().invoke(cli, ["status", "--db", db_url])
    assert "in progress (2 issues to walk)" in human.output
    assert "the server kept failing" in human.output

    # while a sync holds the lock
    with lock.acquire(engine, "sync"):
        s = status_json(db_url)
        locked = CliRunner().invoke(cli, ["status", "--db", db_url]).output
    assert s["lock"]["command"] == "sync"
    assert f"pid {s['lock']['pid']}" in locked
    engine.dispose()


def test_status_of_an_empty_archive(db_url):
    s = status_json(db_url)
    assert s["projects"] == []
    assert s["last_run"] is None
    assert s["totals"]["events"] == 0
    r = CliRunner().invoke(cli, ["status", "--db", db_url])
    assert r.exit_code == 0
    assert r.output == (
        f"archive:  {db_url} (schema {db.head_revision()})\n"
        "lock:     free\n"
        "totals:   projects 0, events 0, issues 0\n"
        "last run: none\n"
        "last successful run: none\n"
        "\n"
        "no projects archived yet: run sentry-archiver sync\n"
    )


def test_status_never_creates_or_migrates_a_database(tmp_path, empty_db_url):
    missing = tmp_path / "nowhere.db"
    r = CliRunner().invoke(cli, ["status", "--db", f"sqlite:///{missing}"])
    assert r.exit_code == ExitCode.DATABASE
    assert r.output == (
        f"error: no archive at sqlite:///{missing} (the file does not exist); "
        "run: sentry-archiver sync (or db upgrade)\n"
    )
    assert not missing.exists()
    if empty_db_url.startswith("sqlite:///"):
        Path(empty_db_url.removeprefix("sqlite:///")).touch()  # an empty SQLite database
    r = CliRunner().invoke(cli, ["status", "--db", empty_db_url, "--json"])
    assert r.exit_code == ExitCode.DATABASE
    assert r.output == (
        f"error: the database {empty_db_url} has no archive schema yet; "
        "run: sentry-archiver db upgrade\n"
    )


def test_status_reads_the_database_from_the_config_file(tmp_path, db_url, monkeypatch):
    monkeypatch.delenv("SENTRY_ARCHIVER_DB", raising=False)
    cfg = tmp_path / "sa.toml"
    cfg.write_text(f'[archive]\ndb = "{db_url}"\n')
    r = CliRunner().invoke(cli, ["status", "--config", str(cfg), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["schema_revision"] == db.head_revision()
