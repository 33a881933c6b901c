"""The archive's creation begins as the sync command starts, in a child of the fork server, and
is committed only once the sync asks for it (:func:`archiver.storage.early.begin_upgrade`).
Each case runs in a fresh interpreter: this test process has imported Alembic long ago."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from archiver.simulator import SimulatedOrg, SimulatorServer
from archiver.storage import db
from tests.helpers import ROOT, alive, archiver_process, mark_as_newer, pg_database

# What every script starts with: ``ready()`` waits until a PostgreSQL child has built the
# schema and waits for the sync's word, its transaction open; ``tables()`` lists what others see.
PRELUDE = """
import json, os, signal, sys, time
from sqlalchemy import text
from archiver.errors import ArchiverError
from archiver.storage import apart, db, early
url = sys.argv[1]
def ready():
    probe = db.make_engine(url)
    deadline = time.monotonic() + 60
    with probe.connect() as conn:
        while time.monotonic() < deadline:
            waiting = conn.execute(text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND state = 'idle in transaction' AND pid <> pg_backend_pid()")).scalar_one()
            conn.rollback()
            if waiting:
                break
            time.sleep(0.02)
    probe.dispose()
def tables():
    probe = db.make_engine(url)
    with probe.connect() as conn:
        names = conn.execute(text(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")).scalars().all()
    probe.dispose()
    return sorted(names)
def collect():
    engine = db.make_engine(url)
    try:
        apart.upgrade_apart(engine)
        return None
    except ArchiverError as exc:
        return [type(exc).__name__, str(exc), int(exc.exit_code)]
    finally:
        engine.dispose()
"""


def _run(script: str, url: str) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", PRELUDE + textwrap.dedent(script), url],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _names(value: object) -> list[str]:
    assert isinstance(value, list)
    return [str(v) for v in value]


def test_a_new_postgresql_archive_is_built_at_once_and_committed_when_the_sync_asks() -> None:
    with pg_database() as url:
        result = _run(
            """
            started = early.begin_upgrade(url)
            ready()
            before = tables()
            error = collect()
            print(json.dumps({"started": started, "before": before, "after": tables(),
                              "error": error, "alembic": "alembic" in sys.modules}))
            """,
            url,
        )
    assert result["started"] is True
    assert result["before"] == []  # built, not committed: nobody sees it yet
    assert {"alembic_version", "events"} <= set(_names(result["after"]))
    assert result["error"] is None
    assert result["alembic"] is False


def test_an_early_upgrade_the_sync_drops_writes_nothing() -> None:
    """A bad token fails before the database is touched: the child's work is rolled back."""
    with pg_database() as url:
        result = _run(
            """
            started = early.begin_upgrade(url)
            ready()
            pid = early._early.process.pid
            early.drop_early()
            print(json.dumps({"started": started, "pid": pid, "after": tables()}))
            """,
            url,
        )
        assert result["started"] is True
        assert result["after"] == []
        assert not alive(int(str(result["pid"])))


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
def test_a_killed_sync_leaves_no_early_upgrade_behind() -> None:
    with pg_database() as url:
        script = PRELUDE + textwrap.dedent(
            """
            early.begin_upgrade(url)
            ready()
            print(early._early.process.pid, flush=True)
            time.sleep(120)
            """
        )
        proc = subprocess.Popen(
            [sys.executable, "-c", script, url], stdout=subprocess.PIPE, text=True, cwd=ROOT
        )
        assert proc.stdout is not None
        child = int(proc.stdout.readline())
        assert alive(child)
        proc.kill()
        proc.wait(timeout=30)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and alive(child):
            time.sleep(0.05)
        assert not alive(child), "the early upgrade outlived the killed sync"
        engine = db.make_engine(url)
        try:
            assert db.current_revision(engine) is None  # rolled back: nothing written
        finally:
            engine.dispose()


def test_ctrl_c_of_the_terminal_leaves_the_early_upgrade_to_the_sync() -> None:
    """The terminal's Ctrl-C reaches the whole process group: the child goes on regardless."""
    with pg_database() as url:
        result = _run(
            """
            early.begin_upgrade(url)
            ready()
            pid = early._early.process.pid
            os.kill(pid, signal.SIGINT)
            os.kill(pid, signal.SIGTERM)
            error = collect()
            print(json.dumps({"error": error, "after": tables()}))
            """,
            url,
        )
    assert result["error"] is None
    assert "alembic_version" in _names(result["after"])


def test_a_new_sqlite_archive_is_not_created_before_the_sync_asks(tmp_path: Path) -> None:
    path = tmp_path / "archive.db"
    dropped = _run(
        """
        started = early.begin_upgrade(url)
        time.sleep(1)  # time enough for a child that would not wait to create the file
        early.drop_early()
        print(json.dumps({"started": started}))
        """,
        f"sqlite:///{path}",
    )
    assert dropped == {"started": True}
    assert not path.exists()
    created = _run(
        """
        started = early.begin_upgrade(url)
        error = collect()
        print(json.dumps({"started": started, "error": error, "alembic": "alembic" in sys.modules}))
        """,
        f"sqlite:///{path}",
    )
    assert created == {"started": True, "error": None, "alembic": False}
    engine = db.make_engine(f"sqlite:///{path}")
    try:
        assert db.current_revision(engine) == db.head_revision()
    finally:
        engine.dispose()


def test_a_current_sqlite_archive_starts_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'archive.db'}"
    engine = db.make_engine(url)
    try:
        db.upgrade(engine)
    finally:
        engine.dispose()
    result = _run(
        """
        started = early.begin_upgrade(url)
        error = collect()
        print(json.dumps({"started": started, "error": error, "alembic": "alembic" in sys.modules}))
        """,
        url,
    )
    assert result == {"started": False, "error": None, "alembic": False}


_LATE = """
print(json.dumps({"error": collect()}))
"""
_EARLY = """
started = early.begin_upgrade(url)
print(json.dumps({"error": collect(), "started": started}))
"""


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_refusal_reaches_the_sync_as_it_did(tmp_path: Path, backend: str) -> None:
    """An archive a newer sentry-archiver wrote: the same error, begun early or not."""
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'archive.db'}"
        mark_as_newer(url)
        late, early = _run(_LATE, url), _run(_EARLY, url)
    else:
        with pg_database() as url:
            mark_as_newer(url)
            late, early = _run(_LATE, url), _run(_EARLY, url)
    assert early == {**late, "started": True}
    assert isinstance(late["error"], list)
    name, message, code = late["error"]
    assert (name, code) == ("DatabaseError", 7)
    assert "newer than this version of sentry-archiver knows" in message


def test_an_unreachable_database_reaches_the_sync_as_it_did() -> None:
    url = "postgresql://postgres:secret-pw@127.0.0.1:1/nowhere"
    late, early = _run(_LATE, url), _run(_EARLY, url)
    assert early == {**late, "started": True}
    assert isinstance(late["error"], list)
    assert late["error"][0] == "DatabaseError"
    assert "cannot open the database" in late["error"][1]
    assert "secret-pw" not in late["error"][1]


def test_a_child_that_dies_is_replaced_by_an_upgrade_here() -> None:
    with pg_database() as url:
        result = _run(
            """
            early.begin_upgrade(url)
            ready()
            os.kill(early._early.process.pid, signal.SIGKILL)
            error = collect()
            print(json.dumps({"error": error, "after": tables(),
                              "alembic": "alembic" in sys.modules}))
            """,
            url,
        )
    assert result["error"] is None
    assert "alembic_version" in _names(result["after"])
    assert result["alembic"] is True  # upgraded in this process, as when no child can run


def test_a_bad_token_leaves_a_new_postgresql_archive_empty() -> None:
    """The sync command in a process of its own (so the early start runs): exit 4, and the
    archive's tables, built meanwhile, were never committed."""
    org = SimulatedOrg(seed=3, events=20)
    with pg_database() as url, SimulatorServer(org, token="the-right-token") as srv:
        proc = archiver_process(srv.url, "a-wrong-token", org, url, "sync", "--quiet")
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 4, err
        engine = db.make_engine(url)
        try:
            with engine.connect() as conn:
                names = conn.execute(
                    text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
                ).all()
        finally:
            engine.dispose()
    assert names == []


def test_a_bad_token_leaves_no_new_sqlite_archive(tmp_path: Path) -> None:
    org = SimulatedOrg(seed=3, events=20)
    path = tmp_path / "never.db"
    with SimulatorServer(org, token="the-right-token") as srv:
        proc = archiver_process(srv.url, "a-wrong-token", org, f"sqlite:///{path}", "sync")
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 4, err
    assert not path.exists()


def test_the_first_sync_in_a_process_of_its_own_creates_its_archive(tmp_path: Path) -> None:
    org = SimulatedOrg(seed=3, events=20)
    with pg_database() as url, SimulatorServer(org, token="the-right-token") as srv:
        for _ in range(2):  # the second finds it current
            proc = archiver_process(srv.url, "the-right-token", org, url, "sync", "--quiet")
            _, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
        engine = db.make_engine(url)
        try:
            assert db.current_revision(engine) == db.head_revision()
            with engine.connect() as conn:
                events = conn.execute(text("SELECT count(*) FROM events")).scalar_one()
        finally:
            engine.dispose()
    assert events == len(org.truth())


def test_telling_a_current_sqlite_archive_imports_no_sqlalchemy(tmp_path: Path) -> None:
    """The nightly run's check comes before the sync's imports and must not bring them on."""
    url = f"sqlite:///{tmp_path / 'archive.db'}"
    engine = db.make_engine(url)
    try:
        db.upgrade(engine)
    finally:
        engine.dispose()
    script = (
        "import sys\nfrom archiver.storage import early\n"
        "print(early.begin_upgrade(sys.argv[1]), 'sqlalchemy' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, url], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert out.stdout.split() == ["False", "False"], out.stderr
