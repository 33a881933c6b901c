"""Every README cookbook recipe returns, on both databases, the answer the README prints.

The demo organisation is archived once per backend (module scope); each recipe then runs as
its own test, so a broken recipe is named in the report.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from archiver.operations.demo import build_demo_archive
from archiver.storage import db
from scripts import cookbook
from tests.helpers import drop_pg_database, new_pg_database, require_postgres

README = Path(__file__).resolve().parents[2] / "README.md"
RECIPES = cookbook.parse(README.read_text(encoding="utf-8"))


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def demo_engine(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Engine]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('cookbook')}/demo.db"
        admin = None
    else:
        require_postgres()
        url, admin = new_pg_database()
    try:
        result = build_demo_archive(url)
        assert result.archived == result.truth > 0
        engine = db.make_engine(url)
        yield engine
        engine.dispose()
    finally:
        if admin is not None:
            drop_pg_database(url, admin)


def test_the_cookbook_has_recipes_for_every_view():
    assert len(RECIPES) >= 8
    used = " ".join(r.sql for r in RECIPES)
    for view in (
        "v_events",
        "v_project_daily",
        "v_issue_daily",
        "v_exception_types_daily",
        "v_crash_frames",
        "v_top_inapp_frames",
        "v_release_errors",
        "v_environment_events",
        "v_issue_users",
    ):
        assert view in used, view
    assert all(r.rows for r in RECIPES), "every recipe prints a non-empty answer"


@pytest.mark.parametrize("recipe", RECIPES, ids=[r.title for r in RECIPES])
@pytest.mark.slow
def test_recipe_answers_as_documented(demo_engine: Engine, recipe: cookbook.Recipe):
    with demo_engine.connect() as conn:
        columns, rows = cookbook.run(conn, recipe)
    assert columns == recipe.columns
    assert rows == recipe.rows


def test_parse_rejects_a_recipe_without_its_answer():
    readme = f"{cookbook.START}\n### Q\n\n```sql\nSELECT 1;\n```\n\n### Next\n{cookbook.END}\n"
    with pytest.raises(cookbook.CookbookError, match="no answer table"):
        cookbook.parse(readme)


@pytest.mark.slow
def test_update_rewrites_answers_from_the_database(demo_engine: Engine):
    readme = (
        f"intro\n{cookbook.START}\n### How many projects?\n\n```sql\n"
        "SELECT count(*) AS projects FROM projects;\n```\n\n| stale |\n|---|\n| 0 |\n\n"
        f"{cookbook.END}\nafter\n"
    )
    with demo_engine.connect() as conn:
        new = cookbook.update(readme, conn)
    assert "| projects |\n|---|\n| 3 |\n" in new
    assert new.startswith("intro\n")
    assert new.endswith("after\n")
    assert cookbook.parse(new)[0].rows == [["3"]]
