"""Every cookbook recipe answers on any archive, not only on the demo's.

The recipes name no date, project or release of the demo: a window is relative to the
archive's newest events, a release is found by the query. So the same SQL run on an archive
of another organization (another simulator seed) still answers every question.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from archiver.operations.demo import DEMO_TOKEN, demo_settings
from archiver.simulator import SimulatedOrg, SimulatorServer
from archiver.simulator.clock import FrozenClock
from archiver.storage import db
from archiver.sync.runner import execute_sync
from scripts import cookbook

README = Path(__file__).resolve().parents[2] / "README.md"
RECIPES = cookbook.parse(README.read_text(encoding="utf-8"))
IDS = [r.title for r in RECIPES]


@pytest.fixture(scope="module")
def other_archive(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """Another organization: other seed, four projects, and its events in 2026, not 2024."""
    url = f"sqlite:///{tmp_path_factory.mktemp('other')}/other.db"
    clock = FrozenClock(dt.datetime(2026, 3, 10, 9, 30, tzinfo=dt.timezone.utc))
    org = SimulatedOrg(seed=7, events=1500, projects=4, clock=clock)
    with SimulatorServer(org, token=DEMO_TOKEN) as server:
        outcome = execute_sync(demo_settings(server.url, org.slug, url))
    assert outcome.exit_code == 0
    engine = db.make_engine(url)
    yield engine
    engine.dispose()


@pytest.mark.parametrize("recipe", RECIPES, ids=IDS)
def test_a_recipe_names_no_date_of_the_demo(recipe: cookbook.Recipe):
    assert not re.search(r"\d{4}-\d{2}-\d{2}", recipe.sql), recipe.sql
    assert not re.search(r"(?i)\b(may|april|june|20\d\d)\b", recipe.title), recipe.title


@pytest.mark.parametrize("recipe", RECIPES, ids=IDS)
def test_a_recipe_names_no_project_or_release_of_the_demo(
    recipe: cookbook.Recipe, other_archive: Engine
):
    with other_archive.connect() as conn:
        names = {str(s) for s in conn.execute(text("SELECT slug FROM projects")).scalars()}
    names |= {"backend", "frontend", "payments-service", "backend@"}  # the demo's
    quoted = set(re.findall(r"'([^']*)'", recipe.sql)) | set(re.findall(r"\b[\w-]+@", recipe.sql))
    assert not names & quoted, names & quoted
    assert "backend" not in recipe.title.lower()


@pytest.mark.parametrize("recipe", RECIPES, ids=IDS)
def test_a_recipe_answers_on_another_organizations_archive(
    recipe: cookbook.Recipe, other_archive: Engine
):
    with other_archive.connect() as conn:
        columns, rows = cookbook.run(conn, recipe)
    assert columns == recipe.columns
    assert rows, f"{recipe.title!r} answers nothing on another archive"
