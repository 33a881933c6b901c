"""The schema comes from the migrations, and the migrations match the models."""

from __future__ import annotations

from sqlalchemy import inspect

from archiver.storage import db
from archiver.storage.models import Base


def test_upgrade_builds_every_model_table_and_matches_models(engine):
    tables = set(inspect(engine).get_table_names())
    assert set(Base.metadata.tables) <= tables
    assert db.current_revision(engine) == db.head_revision()
    assert db.schema_diff(engine) == []


def test_head_revision_read_from_the_scripts_is_alembics_head():
    from alembic.script import ScriptDirectory

    assert db.head_revision() == ScriptDirectory.from_config(db.alembic_config()).get_current_head()


def test_upgrade_of_a_current_archive_does_not_import_alembic(tmp_path):
    """A sync upgrades the archive each time; when it is current that costs one query."""
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 'a.db'}"
    db.upgrade(db.make_engine(url))
    code = (
        "import sys; from archiver.storage import db; db.upgrade(db.make_engine(sys.argv[1])); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'alembic'))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, url], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_downgrade_to_base_then_upgrade_again(engine):
    db.downgrade(engine, "base")
    assert db.current_revision(engine) is None
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    db.upgrade(engine)
    assert db.current_revision(engine) == db.head_revision()
    assert db.schema_diff(engine) == []


def test_drift_is_detected(engine):
    """A model change without a migration shows up in the diff (and so in `db check`)."""
    from sqlalchemy import Column, Integer, Table

    extra = Table("drift_probe", Base.metadata, Column("id", Integer, primary_key=True))
    try:
        diffs = db.schema_diff(engine)
        assert any("drift_probe" in str(d) for d in diffs)
    finally:
        Base.metadata.remove(extra)
    assert db.schema_diff(engine) == []


def test_require_current_refuses_an_empty_database(empty_db_url):
    import pytest

    from archiver.errors import DatabaseError

    engine = db.make_engine(empty_db_url)
    with pytest.raises(DatabaseError, match="db upgrade"):
        db.require_current(engine)
    engine.dispose()


def test_revisions_are_frozen_they_import_nothing_of_the_archiver():
    """A revision must do the same thing forever: a later change of the archiver's code (a
    codec, a helper) must not change what an old revision does to an archive. So the code a
    revision needs is copied into it, never imported from ``archiver``."""
    import ast

    found = []
    for path in sorted((db.migrations_dir() / "versions").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            found += [f"{path.name}: {n}" for n in names if n.split(".")[0] == "archiver"]
    assert found == []
