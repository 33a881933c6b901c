"""`sentry-archiver export` on both databases: filters, exact raw JSON, flat CSV, batching."""

from __future__ import annotations

import csv
import io
import json

import pytest
from click.testing import CliRunner

from archiver.cli import cli
from archiver.errors import ExitCode
from archiver.operations.export import CSV_COLUMNS, ExportFilter, export_events, parse_when
from tests.storage.test_views import API, WEB, archive, load


def run(db_url: str, *args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(cli, ["export", "--db", db_url, *args])
    return r.exit_code, r.stdout, r.stderr


def test_jsonl_is_the_raw_json_exactly_in_id_order(db_url, engine):
    load(engine)
    code, out, _ = run(db_url, "--format", "jsonl")
    assert code == 0
    lines = out.splitlines()
    assert [json.loads(line) for line in lines] == archive()
    from sqlalchemy import text

    with engine.connect() as conn:
        raw = [
            r[0]
            for r in conn.execute(text("SELECT raw_json FROM v_event_raw_json ORDER BY event_pk"))
        ]
    assert lines == raw


def test_filters_by_project_slug_or_id_and_dates(db_url, engine):
    load(engine)

    def ids(*args: str) -> list[int]:
        code, out, err = run(db_url, "--format", "jsonl", *args)
        assert code == 0, err
        return [int(json.loads(line)["eventID"], 16) for line in out.splitlines()]

    assert ids("--project", "web") == [6]
    assert ids("--project", str(API)) == [1, 2, 3, 4, 5]
    assert ids("--project", "api", "--project", str(WEB)) == [1, 2, 3, 4, 5, 6]
    assert ids("--since", "2024-05-02") == [4, 5, 6]
    assert ids("--until", "2024-05-02") == [1, 2, 3]
    assert ids("--since", "2024-05-01T09:30:00Z", "--until", "2024-05-02T10:00:00+00:00") == [
        2,
        3,
        4,
    ]
    assert ids("--project", "api", "--since", "2024-05-02T09:00:00Z") == [5]
    # A time zone other than UTC is converted: 02:00+02:00 is midnight UTC.
    assert ids("--since", "2024-05-02T02:00:00+02:00", "--until", "2024-05-02T09:00:00Z") == [4]


def test_csv_is_one_flat_row_per_event(db_url, engine, tmp_path):
    load(engine)
    target = tmp_path / "events.csv"
    code, _, err = run(db_url, "--format", "csv", "--project", "api", "--output", str(target))
    assert code == 0
    assert err == f"exported 5 events to {target}\n"
    rows = list(csv.DictReader(target.open(newline="", encoding="utf-8")))
    assert list(rows[0]) == [name for name, _ in CSV_COLUMNS]
    assert len(rows) == 5
    first = rows[0]
    assert (first["project_slug"], first["event_id"], first["issue_short_id"]) == (
        "api",
        f"{1:032x}",
        "API-1",
    )
    assert (first["date_created"], first["environment"], first["release"], first["user_id"]) == (
        "2024-05-01T08:00:00Z",
        "production",
        "api@1.0",
        "u1",
    )
    assert rows[4]["environment"] == ""
    assert rows[4]["user_ip_address"] == "10.0.0.1"


def test_batches_are_keyset_paginated(engine):
    load(engine)
    out = io.StringIO()
    assert export_events(engine, out, "jsonl", ExportFilter(), batch=2) == 6
    assert len(out.getvalue().splitlines()) == 6
    out = io.StringIO()
    assert export_events(engine, out, "jsonl", ExportFilter(projects=["api"]), batch=1) == 5


def test_empty_archive_exports_a_header_only(db_url):
    code, out, _ = run(db_url, "--format", "csv")
    assert code == 0
    assert out.splitlines() == [",".join(n for n, _ in CSV_COLUMNS)]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--format", "jsonl", "--project", "nope"],
            "--project 'nope': no such project in the archive (projects: none archived yet)",
        ),
        (
            ["--format", "jsonl", "--since", "yesterday"],
            "--since: 'yesterday' is not a date (use YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS[Z])",
        ),
        (
            ["--format", "jsonl", "--since", "2024-05-02", "--until", "2024-05-01"],
            "--since must be before --until",
        ),
        (
            ["--format", "csv", "--output", "/nonexistent/dir/x.csv"],
            "--output /nonexistent/dir/x.csv: the directory /nonexistent/dir does not exist",
        ),
    ],
)
def test_bad_arguments_fail_clearly(db_url, args, message):
    code, _, err = run(db_url, *args)
    assert code == ExitCode.USAGE
    assert err == f"error: {message}\n"


def test_an_unmigrated_database_is_refused(empty_db_url):
    code, _, err = run(empty_db_url, "--format", "jsonl")
    assert code == ExitCode.DATABASE
    if empty_db_url.startswith("sqlite:///"):  # a SQLite file that was never created
        assert err == (
            f"error: no archive at {empty_db_url} (the file does not exist); "
            "run: sentry-archiver sync (or db upgrade)\n"
        )
    else:
        assert err == (
            f"error: the database {empty_db_url} has no archive schema yet; "
            "run: sentry-archiver db upgrade\n"
        )


def test_a_missing_sqlite_archive_is_an_error_and_is_not_created(tmp_path):
    missing = tmp_path / "typo.db"
    for command in (["export", "--format", "csv"], ["datasette-metadata"]):
        r = CliRunner().invoke(cli, [*command, "--db", f"sqlite:///{missing}"])
        assert r.exit_code == ExitCode.DATABASE, command
        assert r.stderr == (
            f"error: no archive at sqlite:///{missing} (the file does not exist); "
            "run: sentry-archiver sync (or db upgrade)\n"
        ), command
    assert not missing.exists()


def test_parse_when_defaults_to_utc():
    assert parse_when("2024-05-01", "--since").isoformat() == "2024-05-01T00:00:00+00:00"


def test_export_reads_the_database_from_the_config_file(db_url, engine, tmp_path, monkeypatch):
    """`export --config FILE` uses the file's `[archive] db`, as `sync` does."""
    monkeypatch.delenv("SENTRY_ARCHIVER_DB", raising=False)
    load(engine)
    cfg = tmp_path / "archiver.toml"
    cfg.write_text(f"[archive]\ndb = {json.dumps(db_url)}\n")
    r = CliRunner().invoke(cli, ["export", "--config", str(cfg), "--format", "jsonl"])
    assert r.exit_code == 0, r.output
    assert [json.loads(line) for line in r.stdout.splitlines()] == archive()
