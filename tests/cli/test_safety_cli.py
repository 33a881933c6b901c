"""Issue 15 in the command line, operations and config layer: a mistake on the command line
or in the config file is one clear line and exit code, and never costs a file."""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import text

from archiver.cli import cli
from archiver.config import load_settings
from archiver.errors import ConfigError, ExitCode
from archiver.storage import db
from tests.storage.test_views import load


@pytest.fixture
def archive_path(tmp_path: Path) -> Path:
    """A migrated SQLite archive holding the views tests' six events."""
    path = tmp_path / "arch.db"
    engine = db.make_engine(f"sqlite:///{path}")
    db.upgrade(engine)
    load(engine)
    engine.dispose()
    return path


ARCHIVE_FILES = {"arch.db", "arch.db-wal", "arch.db-shm"}


def export(path: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["export", "--db", f"sqlite:///{path}", *args])


def event_count(path: Path) -> int:
    engine = db.make_engine(f"sqlite:///{path}")
    with engine.connect() as conn:
        n = int(conn.execute(text("SELECT count(*) FROM events")).scalar_one())
    engine.dispose()
    return n


# --------------------------------------------------------------------------- export


def test_export_with_a_bad_option_leaves_an_existing_output_untouched(archive_path, tmp_path):
    keep = tmp_path / "keep.csv"
    keep.write_text("precious\n")
    r = export(archive_path, "--format", "csv", "--project", "nope", "-o", str(keep))
    assert r.exit_code == ExitCode.USAGE
    assert "no such project" in r.stderr
    assert keep.read_text() == "precious\n"


def test_a_failed_export_leaves_nothing_behind(archive_path, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    r = export(archive_path, "--format", "csv", "--project", "nope", "-o", str(out / "x.csv"))
    assert r.exit_code == ExitCode.USAGE
    assert list(out.iterdir()) == []


@pytest.mark.parametrize("suffix", ["", "-wal", "-shm", "-journal"])
def test_export_refuses_to_write_over_the_archive(archive_path, suffix):
    target = Path(f"{archive_path}{suffix}")
    before = target.read_bytes() if target.exists() else None
    r = export(archive_path, "--format", "jsonl", "-o", str(target))
    assert r.exit_code == ExitCode.USAGE, r.output
    assert "the archive" in r.stderr
    assert "Traceback" not in r.output
    assert (target.read_bytes() if target.exists() else None) == before
    assert event_count(archive_path) == 6


def test_export_refuses_the_archive_under_another_name(archive_path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    link = tmp_path / "alias.db"
    link.symlink_to(archive_path)
    for target in ("arch.db", "./sub/../arch.db", str(link)):
        (tmp_path / "sub").mkdir(exist_ok=True)
        r = export(archive_path, "--format", "jsonl", "-o", target)
        assert r.exit_code == ExitCode.USAGE, (target, r.output)
    assert event_count(archive_path) == 6


def test_export_does_not_follow_a_symlink_onto_another_file(archive_path, tmp_path):
    other = tmp_path / "other.txt"
    other.write_text("someone else's file\n")
    link = tmp_path / "link.csv"
    link.symlink_to(other)
    r = export(archive_path, "--format", "csv", "-o", str(link))
    assert r.exit_code == ExitCode.USAGE
    assert "symbolic link" in r.stderr
    assert other.read_text() == "someone else's file\n"
    assert link.is_symlink()


def test_export_replaces_the_output_whole_and_owner_readable_only(archive_path, tmp_path):
    target = tmp_path / "events.jsonl"
    target.write_text("old\n" * 100)
    os.chmod(target, 0o644)
    r = export(archive_path, "--format", "jsonl", "-o", str(target))
    assert r.exit_code == 0, r.output
    lines = target.read_text().splitlines()
    assert len(lines) == 6
    assert "old" not in lines
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    new = tmp_path / "new.csv"
    assert export(archive_path, "--format", "csv", "-o", str(new)).exit_code == 0
    assert stat.S_IMODE(new.stat().st_mode) == 0o600
    # no temporary file left beside the outputs
    assert {p.name for p in tmp_path.iterdir()} - ARCHIVE_FILES == {"events.jsonl", "new.csv"}


def _set_titles(path: Path, titles: list[str]) -> None:
    engine = db.make_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        ids = [r[0] for r in conn.execute(text("SELECT id FROM events ORDER BY id"))]
        for event_id, title in zip(ids, titles, strict=True):
            conn.execute(
                text("UPDATE events SET title = :t WHERE id = :i"), {"t": title, "i": event_id}
            )
    engine.dispose()


DANGEROUS = ['=HYPERLINK("http://x")', "+1+1", "-2+3", "@SUM(A1)", "\tTab", "\rCR"]


def test_csv_export_neutralises_formulas(archive_path, tmp_path):
    _set_titles(archive_path, DANGEROUS)
    target = tmp_path / "e.csv"
    assert export(archive_path, "--format", "csv", "-o", str(target)).exit_code == 0
    with target.open(newline="", encoding="utf-8") as fh:
        titles = [row["title"] for row in csv.DictReader(fh)]
    assert titles == ["'" + t for t in DANGEROUS]


def test_csv_export_keeps_cells_raw_when_asked(archive_path, tmp_path):
    _set_titles(archive_path, DANGEROUS)
    target = tmp_path / "e.csv"
    r = export(archive_path, "--format", "csv", "--no-escape-formulas", "-o", str(target))
    assert r.exit_code == 0, r.output
    with target.open(newline="", encoding="utf-8") as fh:
        titles = [row["title"] for row in csv.DictReader(fh)]
    assert titles == DANGEROUS


# --------------------------------------------------------------------------- config


def write_config(tmp_path: Path, body: str) -> str:
    path = tmp_path / "archiver.toml"
    path.write_text(body)
    return str(path)


def show(*args: str, env: dict[str, str] | None = None) -> Result:
    clean = {name: "" for name in ("SENTRY_AUTH_TOKEN", "SENTRY_URL", "SENTRY_ARCHIVER_DB")}
    return CliRunner().invoke(
        cli, ["config", "show", "--json", *args], env={**clean, **(env or {})}
    )


@pytest.mark.parametrize(("value", "seconds"), [('"30s"', 30.0), ('"2m"', 120.0), ("45", 45.0)])
def test_timeout_in_the_file_takes_units(tmp_path, value, seconds):
    cfg = write_config(tmp_path, f"[archive]\ntimeout = {value}\n")
    assert load_settings(config_file=cfg, environ={}).timeout == seconds


def test_timeout_option_takes_units(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = show("--timeout", "30s")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["archive"]["timeout"] == 30.0


@pytest.mark.parametrize("value", ["-1", "0", "0s", "nan", "soon"])
def test_a_timeout_that_is_not_positive_is_one_line_exit_2(tmp_path, monkeypatch, value):
    monkeypatch.chdir(tmp_path)
    r = show("--timeout", value)
    assert r.exit_code == ExitCode.USAGE, r.output
    assert r.stderr.startswith("error: ")
    assert "timeout" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_timeout_zero_in_the_file_is_refused_naming_the_file(tmp_path):
    cfg = write_config(tmp_path, "[archive]\ntimeout = 0\n")
    with pytest.raises(ConfigError, match=r"archiver\.toml.*\[archive\] timeout"):
        load_settings(config_file=cfg, environ={})


@pytest.mark.parametrize(
    "body",
    [
        "[archive]\nconcurrency = 4.5\n",
        '[archive]\nconcurrency = "many"\n',
        "[archive]\nmax_retries = true\n",
        "[archive]\noverlap = -5\n",
        '[archive]\nearliest = "last tuesday"\n',
    ],
)
def test_a_type_error_in_the_file_names_file_section_and_key(tmp_path, body):
    cfg = write_config(tmp_path, body)
    key = body.split("\n")[1].split(" =")[0]
    with pytest.raises(ConfigError) as caught:
        load_settings(config_file=cfg, environ={})
    assert cfg in str(caught.value)
    assert f"[archive] {key}" in str(caught.value)


def test_config_show_hides_every_password_and_the_token_alike(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = show(
        "--url",
        "https://archiver:hunter2@sentry.example.com:8443/",
        "--db",
        "postgresql://archiver:dbpassw0rd@db.internal:5432/sentry",
        env={"SENTRY_AUTH_TOKEN": "sntrys_secret"},
    )
    assert r.exit_code == 0, r.output
    for secret in ("hunter2", "dbpassw0rd", "sntrys_secret"):
        assert secret not in r.output
    data = json.loads(r.stdout)
    assert data["sentry"]["url"] == "https://archiver:***@sentry.example.com:8443/"
    assert data["archive"]["db"] == "postgresql+psycopg://archiver:***@db.internal:5432/sentry"
    assert data["sentry"]["token"] == "***"


# --------------------------------------------------------------------------- URLs


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), env={"SENTRY_ARCHIVER_DB": ""})


@pytest.mark.parametrize("command", [["status"], ["db", "upgrade"], ["db", "current"]])
def test_a_sqlite_url_with_two_slashes_says_how_to_write_it(tmp_path, monkeypatch, command):
    monkeypatch.chdir(tmp_path)
    r = run(*command, "--db", "sqlite://sentry.db")
    assert r.exit_code == ExitCode.USAGE, r.output
    assert "sqlite:///sentry.db" in r.stderr
    assert "Traceback" not in r.output
    assert len(r.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///", "sqlite:///:memory:", ":memory:"])
@pytest.mark.parametrize(
    "command",
    [
        ["db", "upgrade"],
        ["status"],
        ["export", "--format", "jsonl"],
        ["sync", "--auth-token", "sntrys_test", "--org", "o", "--url", "http://127.0.0.1:9/"],
        ["purge", "--older-than", "1y", "--yes"],
    ],
)
def test_an_in_memory_archive_is_refused_by_every_command(tmp_path, monkeypatch, url, command):
    monkeypatch.chdir(tmp_path)
    r = run(*command, "--db", url)
    assert r.exit_code == ExitCode.USAGE, r.output
    assert "in memory" in r.stderr
    assert "Traceback" not in r.output


def test_a_plain_path_is_a_sqlite_archive(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = run("db", "upgrade", "--db", "plain.db")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "plain.db").is_file()
    assert run("status", "--db", str(tmp_path / "plain.db")).exit_code == 0
    r = run("export", "--format", "jsonl", "--db", "plain.db")
    assert r.exit_code == 0
    assert r.stdout == ""


@pytest.mark.parametrize("url", ["mysql://user@db.internal/sentry", "mariadb+pymysql://u@h/d"])
def test_mysql_is_not_supported(url):
    r = run("status", "--db", url)
    assert r.exit_code == ExitCode.USAGE, r.output
    assert "MySQL" in r.stderr
    assert "not supported" in r.stderr


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("https://sentry.example.com/api/0/", "https://sentry.example.com/"),
        ("https://sentry.example.com:8443/api/0", "https://sentry.example.com:8443/"),
        ("https://sentry.example.com/sentry/api/0/", "https://sentry.example.com/sentry/"),
        ("https://de.sentry.io/", "https://de.sentry.io/"),
    ],
)
def test_a_sentry_url_ending_in_the_api_prefix_is_stripped(given, kept):
    assert load_settings({"url": given}, environ={}).url == kept


def test_the_demo_refuses_an_in_memory_archive_too(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = run("demo", "--db", "sqlite://", "--events", "20")
    assert r.exit_code == ExitCode.USAGE, r.output
    assert "in memory" in r.stderr
    assert "Archived" not in r.output


# --------------------------------------------------------------------------- status


def test_status_prints_times_in_utc_and_says_so(archive_path):
    engine = db.make_engine(f"sqlite:///{archive_path}")
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO runs (command, started_at, finished_at, outcome, projects, issues, "
                "events_new, events_updated, requests, retries) VALUES "
                "('sync', :t, :t, 'success', 1, 1, 6, 0, 3, 0)"
            ),
            {"t": dt.datetime(2024, 5, 1, 10, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))},
        )
    engine.dispose()
    r = run("status", "--db", str(archive_path))
    assert r.exit_code == 0, r.output
    assert "last run: #1 success at 2024-05-01 08:00 UTC" in r.stdout
    assert "2024-05-01 08:00 UTC" in r.stdout.split("last successful run")[1]
