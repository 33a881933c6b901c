"""`sentry-archiver db upgrade | current | check`."""

from __future__ import annotations

import sqlite3

from click.testing import CliRunner
from sqlalchemy import text

from archiver.cli import cli
from archiver.errors import ExitCode
from archiver.storage import db
from archiver.storage.models import CHILD_TABLES
from archiver.storage.store import Store
from tests.helpers import orphans, query_rows
from tests.storage.test_store import seed_events


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
    assert r.output == f"ok: schema at {head} matches the models; no row without its event\n"


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


def _delete_without_cascade(db_url: str, sql: str) -> None:
    """``sql`` as a user's own session runs it: on PostgreSQL no foreign key cascades; on
    SQLite a connection of the ``sqlite3`` module, where foreign keys are off by default."""
    if db_url.startswith("sqlite"):
        con = sqlite3.connect(db_url.removeprefix("sqlite:///"))
        with con:
            con.execute(sql)
        con.close()
        return
    engine = db.make_engine(db_url)
    with engine.begin() as conn:
        conn.execute(text(sql))
    engine.dispose()


def test_check_counts_rows_whose_event_is_gone_and_says_how_to_delete_them(db_url):
    engine = db.make_engine(db_url)
    store = Store(engine)
    with store.transaction() as conn:
        store.write_events(conn, seed_events())
    engine.dispose()
    runner = CliRunner()
    assert runner.invoke(cli, ["db", "check", "--db", db_url]).exit_code == 0
    ((gone,),) = query_rows(db_url, "SELECT min(id) FROM events")
    _delete_without_cascade(db_url, f"DELETE FROM events WHERE id = {gone}")
    _delete_without_cascade(
        db_url,
        "DELETE FROM stacks WHERE stack_key = (SELECT stack_key FROM stacks ORDER BY 1 LIMIT 1)",
    )
    expected = {
        t: n
        for t in CHILD_TABLES
        if (n := query_rows(db_url, f"SELECT count(*) FROM {t} WHERE event_pk = {gone}")[0][0])
    }
    assert {"event_tags", "breadcrumbs", "event_stacks"} <= expected.keys()
    r = runner.invoke(cli, ["db", "check", "--db", db_url])
    assert r.exit_code == ExitCode.DATABASE
    for table, n in expected.items():
        rows = "1 row" if n == 1 else f"{n} rows"
        assert f"orphans: {table}: {rows} whose event is gone\n" in r.output
    assert "orphans: event_stacks -> stacks: " in r.output
    assert "whose stack is gone" in r.output
    engine = db.make_engine(db_url)
    try:
        assert orphans(engine).keys() == expected.keys() | {"event_stacks -> stacks"}
        statements = [line.strip() for line in r.output.splitlines() if line.startswith("  ")]
        assert len(statements) == len(expected) + 1
        with engine.begin() as conn:  # what the message says to run
            for sql in statements:
                conn.execute(text(sql.rstrip(";")))
        assert orphans(engine) == {}
    finally:
        engine.dispose()
    r = runner.invoke(cli, ["db", "check", "--db", db_url])
    assert r.exit_code == 0, r.output
    assert query_rows(db_url, "SELECT count(*) FROM events")[0][0] == len(seed_events()) - 1
