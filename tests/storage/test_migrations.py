"""The schema comes from the migrations, and the migrations match the models."""

from __future__ import annotations

from sqlalchemy import Engine, inspect, text

from archiver.storage import db
from archiver.storage.base import EVENT_PK_COMMENT
from archiver.storage.models import EVENT_CHILD_TABLES, Base


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


# The foreign keys of the per-event rows: constraints on SQLite only (migration 0008).
PER_EVENT_FKS = {(t.name, "event_pk", "events") for t in EVENT_CHILD_TABLES} | {
    ("event_stacks", "stack_key", "stacks")
}
# Those that stay on both databases: none is checked once per child row.
KEPT_FKS = {
    ("events", "project_id", "projects"),
    ("events", "issue_id", "issues"),
    ("issues", "project_id", "projects"),
    ("stack_frames", "stack_key", "stacks"),
    ("sync_issues", "issue_id", "issues"),
    ("sync_projects", "project_id", "projects"),
}


def foreign_keys(engine: Engine) -> set[tuple[str, str, str]]:
    """(table, column, referred table) of every foreign key of the database."""
    insp = inspect(engine)
    return {
        (table, column, fk["referred_table"])
        for table in insp.get_table_names()
        for fk in insp.get_foreign_keys(table)
        for column in fk["constrained_columns"]
    }


def assert_per_event_fks_on_sqlite_only(engine: Engine) -> None:
    fks = foreign_keys(engine)
    assert fks >= KEPT_FKS
    if engine.dialect.name == "sqlite":
        assert fks >= PER_EVENT_FKS
        return
    # Not one foreign key points at events on PostgreSQL: a later migration or a new child
    # table that brought one back would cost a query per written row again.
    assert {fk for fk in fks if fk[2] == "events"} == set()
    assert not PER_EVENT_FKS & fks
    insp = inspect(engine)
    for t in EVENT_CHILD_TABLES:
        (column,) = [c for c in insp.get_columns(t.name) if c["name"] == "event_pk"]
        assert column["comment"] == EVENT_PK_COMMENT, t.name


def test_per_event_rows_have_foreign_keys_on_sqlite_only(engine):
    assert_per_event_fks_on_sqlite_only(engine)


def test_downgrade_from_0008_brings_the_foreign_keys_back(engine):
    """PostgreSQL: the constraints come back with ON DELETE CASCADE; rows the archiver left
    without their event (none should be) are deleted first, as the cascade would have."""
    from tests.helpers import orphans

    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(
                text("INSERT INTO event_tags (event_pk, position, key) VALUES (-1, 0, 'x')")
            )
        assert orphans(engine) == {"event_tags": 1}
    db.downgrade(engine, "0007")
    assert foreign_keys(engine) >= PER_EVENT_FKS | KEPT_FKS
    assert orphans(engine) == {}
    with engine.connect() as conn:
        rules = conn.execute(
            text(
                "SELECT DISTINCT confdeltype FROM pg_constraint WHERE contype = 'f' "
                "AND confrelid = 'events'::regclass"
            )
            if engine.dialect.name == "postgresql"
            else text("SELECT DISTINCT on_delete FROM pragma_foreign_key_list('event_tags')")
        ).all()
    assert [r[0] for r in rules] in (["c"], ["CASCADE"])
    db.upgrade(engine)
    assert_per_event_fks_on_sqlite_only(engine)
    assert db.schema_diff(engine) == []
