"""`sentry-archiver db upgrade | current | check`."""

from __future__ import annotations

from click.testing import CliRunner

from archiver import db
from archiver.cli import cli
from archiver.errors import ExitCode


def test_upgrade_current_check(empty_db_url):
    runner = CliRunner()
    r = runner.invoke(cli, ["db", "current", "--db", empty_db_url])
    assert r.exit_code == 0 and "current: none" in r.output
    r = runner.invoke(cli, ["db", "check", "--db", empty_db_url])
    assert r.exit_code == ExitCode.DATABASE
    r = runner.invoke(cli, ["db", "upgrade", "--db", empty_db_url])
    assert r.exit_code == 0, r.output
    assert "upgraded empty ->" in r.output
    r = runner.invoke(cli, ["db", "upgrade", "--db", empty_db_url])
    assert "already at revision" in r.output
    r = runner.invoke(cli, ["db", "current", "--db", empty_db_url])
    assert f"current: {db.head_revision()}" in r.output and "up to date" in r.output
    r = runner.invoke(cli, ["db", "check", "--db", empty_db_url])
    assert r.exit_code == 0 and "matches the models" in r.output


def test_db_url_from_environment(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path}/env.db"
    monkeypatch.setenv("SENTRY_ARCHIVER_DB", url)
    r = CliRunner().invoke(cli, ["db", "upgrade"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "env.db").exists()


def test_unusable_database_is_a_clear_error(tmp_path):
    r = CliRunner().invoke(cli, ["db", "upgrade", "--db", f"sqlite:///{tmp_path}/missing/dir/x.db"])
    assert r.exit_code == ExitCode.DATABASE
    assert "does not exist" in r.output


def test_password_is_not_printed(tmp_path):
    r = CliRunner().invoke(
        cli, ["db", "current", "--db", "postgresql://u:s3cr3tpw@127.0.0.1:1/nowhere"]
    )
    assert r.exit_code == ExitCode.DATABASE
    assert "s3cr3tpw" not in r.output
