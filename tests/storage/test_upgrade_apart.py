"""A sync creating its archive runs the migrations in a child process, so Alembic never
enters its memory (:mod:`archiver.storage.apart`). Each case runs in a fresh interpreter:
this test process has imported Alembic long ago."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from archiver.storage import db
from tests.helpers import mark_as_newer, pg_database

SCRIPT = """
import json, sys
from archiver.errors import ArchiverError
from archiver.storage import db
from archiver.storage.apart import upgrade_apart
engine = db.make_engine(sys.argv[1])
try:
    upgrade_apart(engine)
    error = None
except ArchiverError as exc:
    error = [type(exc).__name__, str(exc), int(exc.exit_code)]
print(json.dumps({"alembic": "alembic" in sys.modules, "error": error}))
"""


def _upgrade_apart(url: str) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, url],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _revision(url: str) -> str | None:
    engine = db.make_engine(url)
    try:
        return db.current_revision(engine)
    finally:
        engine.dispose()


def test_a_new_sqlite_archive_is_created_without_alembic_in_the_process(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'archive.db'}"
    assert _upgrade_apart(url) == {"alembic": False, "error": None}
    assert _revision(url) == db.head_revision()
    assert _upgrade_apart(url) == {"alembic": False, "error": None}  # current: nothing to do


def test_a_new_postgresql_archive_is_created_without_alembic_in_the_process() -> None:
    with pg_database() as url:
        assert _upgrade_apart(url) == {"alembic": False, "error": None}
        assert _revision(url) == db.head_revision()


def test_the_childs_refusal_is_raised_in_the_process(tmp_path: Path) -> None:
    """An archive a newer sentry-archiver wrote: the child refuses it, and so does the sync."""
    url = f"sqlite:///{tmp_path / 'archive.db'}"
    mark_as_newer(url)
    result = _upgrade_apart(url)
    assert result["alembic"] is False
    assert isinstance(result["error"], list)
    name, message, code = result["error"]
    assert (name, code) == ("DatabaseError", 7)
    assert "newer than this version of sentry-archiver knows" in message
