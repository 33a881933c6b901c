"""Datasette metadata describes every table, view and column of the archive."""

from __future__ import annotations

import json

from click.testing import CliRunner
from sqlalchemy import inspect

from archiver.cli import cli
from archiver.operations.datasette import database_name
from archiver.storage import descriptions


def test_metadata_covers_every_table_view_and_column(db_url, engine, tmp_path):
    target = tmp_path / "metadata.json"
    r = CliRunner().invoke(
        cli, ["datasette-metadata", "--db", db_url, "-o", str(target), "--database-name", "archive"]
    )
    assert r.exit_code == 0, r.output
    meta = json.loads(target.read_text(encoding="utf-8"))
    tables = meta["databases"]["archive"]["tables"]
    insp = inspect(engine)
    expected = (set(insp.get_table_names()) - {"alembic_version"}) | set(insp.get_view_names())
    assert set(tables) == expected
    assert set(descriptions.VIEWS) == set(insp.get_view_names())
    for name in expected:
        assert tables[name]["description"], name
        columns = [c["name"] for c in insp.get_columns(name)]
        missing = [c for c in columns if not tables[name]["columns"].get(c)]
        assert not missing, f"{name}: no description for {missing}"
    assert tables["events"]["columns"]["event_id"].startswith("Sentry")
    assert tables["issues"]["label_column"] == "short_id"


def test_the_sqlite_file_declares_foreign_keys(engine):
    fks = {
        (fk["referred_table"], tuple(fk["constrained_columns"]))
        for fk in inspect(engine).get_foreign_keys("events")
    }
    assert {("projects", ("project_id",)), ("issues", ("issue_id",))} <= fks


def test_database_name_follows_the_file():
    assert database_name("sqlite:///some/dir/sentry-archive.db") == "sentry-archive"
    assert database_name("postgresql://u@h/archive") == "archive"


def test_unwritable_output_fails_clearly(db_url):
    r = CliRunner().invoke(cli, ["datasette-metadata", "--db", db_url, "-o", "/nonexistent/x.json"])
    assert r.exit_code == 2
    assert r.stderr == (
        "error: --output /nonexistent/x.json: the directory /nonexistent does not exist\n"
    )


def test_metadata_reads_the_database_from_the_config_file(db_url, tmp_path, monkeypatch):
    """`datasette-metadata --config FILE` uses the file's `[archive] db`, as `sync` does."""
    monkeypatch.delenv("SENTRY_ARCHIVER_DB", raising=False)
    cfg = tmp_path / "archiver.toml"
    cfg.write_text(f"[archive]\ndb = {json.dumps(db_url)}\n")
    r = CliRunner().invoke(
        cli, ["datasette-metadata", "--config", str(cfg), "--database-name", "archive"]
    )
    assert r.exit_code == 0, r.output
    assert "events" in json.loads(r.stdout)["databases"]["archive"]["tables"]
