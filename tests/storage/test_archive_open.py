"""Opening an archive safely: never another application's database, never a new file by a
command that only reads, a read-only archive still readable, new archives private (0600)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import text

from archiver.cli import cli
from archiver.errors import ExitCode
from archiver.simulator import SimulatedOrg, SimulatorServer
from archiver.storage import db

TOKEN = "open-test-token"
READ_COMMANDS = [
    ["db", "current"],
    ["db", "check"],
    ["status"],
    ["export", "--format", "jsonl"],
    ["datasette-metadata"],
]


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def assert_clean_error(result: Result, code: ExitCode, *words: str) -> None:
    """The command failed with ``code`` and one clear line, not a traceback."""
    assert result.exit_code == code, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    for word in words:
        assert word in result.output, result.output


def sync(db_url: str, events: int = 60) -> Result:
    org = SimulatedOrg(seed=5, events=events)
    with SimulatorServer(org, token=TOKEN) as srv:
        return invoke(
            "sync", "--url", srv.url, "--auth-token", TOKEN, "--org", org.slug,
            "--db", db_url, "--quiet",
        )  # fmt: skip


def table_names(url: str) -> set[str]:
    engine = db.make_engine(url)
    try:
        with engine.connect() as conn:
            from sqlalchemy import inspect

            return set(inspect(conn).get_table_names())
    finally:
        engine.dispose()


# --------------------------------------------------------------------------- item: foreign


@pytest.fixture
def foreign_db_url(empty_db_url: str) -> str:
    """A database another application uses: a table of its own, no ``alembic_version``."""
    engine = db.make_engine(empty_db_url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)"))
        conn.execute(text("INSERT INTO customers (id, name) VALUES (1, 'Ada')"))
    engine.dispose()
    return empty_db_url


def test_another_applications_database_is_refused_unless_adopted(foreign_db_url):
    r = invoke("db", "upgrade", "--db", foreign_db_url)
    assert_clean_error(r, ExitCode.DATABASE, "customers", "--adopt")
    assert table_names(foreign_db_url) == {"customers"}  # nothing of ours was added
    r = sync(foreign_db_url)
    assert_clean_error(r, ExitCode.DATABASE, "customers")
    assert table_names(foreign_db_url) == {"customers"}

    r = invoke("db", "upgrade", "--adopt", "--db", foreign_db_url)
    assert r.exit_code == 0, r.output
    assert {"customers", "events", "alembic_version"} <= table_names(foreign_db_url)
    r = sync(foreign_db_url)
    assert r.exit_code == 0, r.output


def test_a_file_that_is_not_sqlite_is_a_clean_error(tmp_path):
    junk = tmp_path / "notes.db"
    junk.write_text("these are my notes, not a database\n" * 200)
    before = junk.read_bytes()
    url = f"sqlite:///{junk}"
    for args in (["db", "upgrade"], *READ_COMMANDS):
        assert_clean_error(invoke(*args, "--db", url), ExitCode.DATABASE, "not a database")
    assert_clean_error(sync(url), ExitCode.DATABASE, "not a database")
    assert junk.read_bytes() == before


def test_a_truncated_archive_is_a_clean_error(tmp_path):
    whole = tmp_path / "whole.db"
    assert sync(f"sqlite:///{whole}", events=200).exit_code == 0
    size = whole.stat().st_size
    assert not Path(f"{whole}-wal").exists()  # checkpointed on close: the file is the archive
    cut = tmp_path / "cut.db"
    cut.write_bytes(whole.read_bytes()[: size // 3])
    url = f"sqlite:///{cut}"
    for args in (["status"], ["export", "--format", "jsonl"]):
        r = invoke(*args, "--db", url)
        assert_clean_error(r, ExitCode.DATABASE, str(cut))
        assert "truncated" in r.output
    assert_clean_error(sync(url), ExitCode.DATABASE, "truncated")


def test_an_archive_newer_than_the_code_says_so(db_url):
    engine = db.make_engine(db_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    for args in (["db", "upgrade"], ["status"], ["export", "--format", "jsonl"]):
        r = invoke(*args, "--db", db_url)
        assert_clean_error(r, ExitCode.DATABASE, "9999", "newer")
        assert "run: sentry-archiver db upgrade" not in r.output
    r = sync(db_url)
    assert_clean_error(r, ExitCode.DATABASE, "9999", "newer")


# --------------------------------------------------------------------------- item: read only


@pytest.mark.parametrize("args", READ_COMMANDS, ids=lambda a: "-".join(a))
def test_commands_that_read_never_create_an_archive(tmp_path, args):
    missing = tmp_path / "typo.db"
    r = invoke(*args, "--db", f"sqlite:///{missing}")
    assert_clean_error(r, ExitCode.DATABASE, "does not exist", str(missing))
    assert list(tmp_path.iterdir()) == []


def _chattr(flag: str, *paths: Path) -> bool:
    try:
        done = subprocess.run(["chattr", flag, *map(str, paths)], capture_output=True, check=False)
    except FileNotFoundError:
        return False
    return done.returncode == 0


@pytest.fixture
def immutable() -> Iterator[list[Path]]:
    """Paths to make immutable (``chattr +i``: read-only even for root, as the tests run here)."""
    paths: list[Path] = []
    yield paths
    if paths:
        _chattr("-i", *paths)


def make_read_only(immutable: list[Path], *paths: Path) -> None:
    if not _chattr("+i", *paths):
        pytest.skip("chattr +i is not available here (needs CAP_LINUX_IMMUTABLE)")
    immutable.extend(paths)


@pytest.mark.parametrize("what", ["file", "file-and-directory"])
def test_a_read_only_archive_can_be_read_and_writers_say_which(tmp_path, immutable, what):
    folder = tmp_path / "ro"
    folder.mkdir()
    archive = folder / "archive.db"
    url = f"sqlite:///{archive}"
    assert sync(url).exit_code == 0
    engine = db.make_engine(url)
    with engine.connect() as conn:
        archived = conn.execute(text("SELECT count(*) FROM events")).scalar_one()
    engine.dispose()  # the last connection checkpoints and removes the -wal and -shm
    assert archived > 0
    assert sorted(p.name for p in folder.iterdir()) == ["archive.db"]
    make_read_only(immutable, *([archive] if what == "file" else [archive, folder]))

    r = invoke("status", "--json", "--db", url)
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["totals"]["events"] == archived
    out = tmp_path / "out.jsonl"
    r = invoke("export", "--format", "jsonl", "-o", str(out), "--db", url)
    assert r.exit_code == 0, r.output
    assert len(out.read_text().splitlines()) == archived
    r = invoke("db", "current", "--db", url)
    assert r.exit_code == 0, r.output
    assert "up to date" in r.output

    r = invoke("db", "upgrade", "--db", url)
    assert_clean_error(r, ExitCode.DATABASE, "read-only", str(archive))
    r = sync(url)
    assert_clean_error(r, ExitCode.DATABASE, "read-only", str(archive))


def test_a_new_archive_in_a_read_only_directory_names_the_directory(tmp_path, immutable):
    folder = tmp_path / "ro"
    folder.mkdir()
    make_read_only(immutable, folder)
    r = invoke("db", "upgrade", "--db", f"sqlite:///{folder}/new.db")
    assert_clean_error(r, ExitCode.DATABASE, "read-only", str(folder))


# --------------------------------------------------------------------------- item: 0600


def test_new_archives_are_readable_by_their_owner_only(tmp_path):
    old_umask = os.umask(0o022)
    try:
        url = f"sqlite:///{tmp_path}/new.db"
        r = invoke("db", "upgrade", "--db", url)
        assert r.exit_code == 0, r.output
        engine = db.make_engine(url)
        try:
            with engine.begin() as conn:  # the -wal and -shm exist while a connection is open
                conn.execute(text("CREATE TABLE scratch (x INTEGER)"))
            with engine.connect() as conn:
                conn.execute(text("SELECT count(*) FROM projects"))
                modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in sorted(tmp_path.iterdir())}
        finally:
            engine.dispose()
        assert modes == {"new.db": 0o600, "new.db-shm": 0o600, "new.db-wal": 0o600}
        synced = tmp_path / "synced.db"
        assert sync(f"sqlite:///{synced}").exit_code == 0
        assert stat.S_IMODE(synced.stat().st_mode) == 0o600
    finally:
        os.umask(old_umask)


def test_an_existing_archive_keeps_its_mode(tmp_path):
    """The owner decides for a file that exists (a group may share it on purpose)."""
    url = f"sqlite:///{tmp_path}/shared.db"
    assert invoke("db", "upgrade", "--db", url).exit_code == 0
    os.chmod(tmp_path / "shared.db", 0o640)
    assert sync(url).exit_code == 0
    assert stat.S_IMODE((tmp_path / "shared.db").stat().st_mode) == 0o640
