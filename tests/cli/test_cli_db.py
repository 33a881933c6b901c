"""`sentry-archiver db upgrade | current | check`."""

from __future__ import annotations

import sqlite3

from click.testing import CliRunner

from archiver.cli import cli
from archiver.errors import ExitCode
from archiver.storage import db


def test_upgrade_current_check(empty_db_url):
    runner = CliRunner()
    r = runner.invoke(cli, ["db", "current", "--db", empty_db_url])
    head = db.head_revision()
    if empty_db_url.startswith("sqlite"):  # a command that reads never creates the file
        assert r.exit_code == ExitCode.DATABASE
        assert "does not exist" in r.output
    else:
        assert r.exit_code == 0
        assert r.output == f"current: none\nhead:    {head}\nneeds: sentry-archiver db upgrade\n"
    r = runner.invoke(cli, ["db", "check", "--db", empty_db_url])
    assert r.exit_code == ExitCode.DATABASE
    r = runner.invoke(cli, ["db", "upgrade", "--db", empty_db_url])
    assert r.exit_code == 0, r.output
    assert r.output == f"{empty_db_url}: upgraded empty -> {head}\n"
    r = runner.invoke(cli, ["db", "upgrade", "--db", empty_db_url])
    assert r.output == f"{empty_db_url}: already at revision {head}\n"
    r = runner.invoke(cli, ["db", "current", "--db", empty_db_url])
    assert r.output == f"current: {head}\nhead:    {head}\nup to date\n"
    r = runner.invoke(cli, ["db", "check", "--db", empty_db_url])
    assert r.exit_code == 0
    assert r.output == f"ok: schema at {head} matches the models\n"


def test_db_url_from_environment(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path}/env.db"
    monkeypatch.setenv("SENTRY_ARCHIVER_DB", url)
    r = CliRunner().invoke(cli, ["db", "upgrade"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "env.db").exists()


def test_unusable_database_is_a_clear_error(tmp_path):
    r = CliRunner().invoke(cli, ["db", "upgrade", "--db", f"sqlite:///{tmp_path}/missing/dir/x.db"])
    assert r.exit_code == ExitCode.DATABASE
    assert r.output == (
        f"error: cannot create the SQLite database: {tmp_path}/missing/dir does not exist\n"
    )


def test_password_is_not_printed(tmp_path):
    r = CliRunner().invoke(
        cli, ["db", "current", "--db", "postgresql://u:s3cr3tpw@127.0.0.1:1/nowhere"]
    )
    assert r.exit_code == ExitCode.DATABASE
    assert "s3cr3tpw" not in r.output


def test_new_sqlite_archives_get_large_pages_and_older_ones_keep_theirs(tmp_path):
    old = tmp_path / "old.db"
    con = sqlite3.connect(old)
    con.execute("PRAGMA page_size = 4096")
    con.execute("CREATE TABLE before_us (x)")  # an archive file written before the change
    con.close()
    for path, expected in ((tmp_path / "new.db", db.SQLITE_PAGE_SIZE), (old, 4096)):
        engine = db.make_engine(f"sqlite:///{path}")
        try:
            db.upgrade(engine, adopt=True)  # old.db has a table but no alembic_version
            with engine.connect() as conn:
                assert conn.exec_driver_sql("PRAGMA page_size").scalar_one() == expected
                assert conn.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "wal"
                # the page cache is a connection's, so every archive gets it
                assert (
                    conn.exec_driver_sql("PRAGMA cache_size").scalar_one() == -db.SQLITE_CACHE_KIB
                )
        finally:
            engine.dispose()
    assert db.SQLITE_PAGE_SIZE != 4096


def test_db_commands_read_the_database_from_the_config_file(tmp_path, monkeypatch):
    """`db upgrade|current --config FILE` use the file's `[archive] db`, as `sync` does."""
    monkeypatch.delenv("SENTRY_ARCHIVER_DB", raising=False)
    monkeypatch.delenv("SENTRY_ARCHIVER_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)  # no ./sentry-archiver.toml, no default archive here
    cfg = tmp_path / "archiver.toml"
    cfg.write_text(f'[archive]\ndb = "sqlite:///{tmp_path}/from-file.db"\n')
    runner = CliRunner()
    r = runner.invoke(cli, ["db", "upgrade", "--config", str(cfg)])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "from-file.db").exists()
    assert not (tmp_path / "sentry-archive.db").exists()
    r = runner.invoke(cli, ["db", "current", "--config", str(cfg)])
    assert r.exit_code == 0, r.output
    assert f"current: {db.head_revision()}" in r.output
    r = runner.invoke(cli, ["db", "check", "--config", str(cfg)])
    assert r.exit_code == 0, r.output
    # --db on the command line still wins over the file
    r = runner.invoke(
        cli, ["db", "current", "--config", str(cfg), "--db", f"sqlite:///{tmp_path}/other.db"]
    )
    assert r.exit_code == ExitCode.DATABASE, r.output  # other.db does not exist: not created
    assert "other.db (the file does not exist)" in r.output
