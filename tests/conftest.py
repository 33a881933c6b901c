"""Shared fixtures: migrated archives on SQLite and PostgreSQL.

PostgreSQL tests use the server named by ``SENTRY_ARCHIVER_TEST_PG_URL`` (default: the local
``postgresql://postgres@127.0.0.1:5432/test``). Each test gets a database of its own, created
and dropped here, so parallel runs never see each other's rows. On a laptop without PostgreSQL
those tests are skipped and the summary says so; in CI (``CI`` set) they fail instead.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from archiver.storage import db
from tests.helpers import pg_admin_url, pg_available, pg_database


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_db_url(request: pytest.FixtureRequest, tmp_path: object) -> Iterator[str]:
    """An empty database URL on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/archive.db"
        return
    with pg_database() as url:
        yield url


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite archive built by the migrations, once per run; ``db_url`` copies the file."""
    path = tmp_path_factory.mktemp("template") / "archive.db"
    engine = db.make_engine(f"sqlite:///{path}")
    db.upgrade(engine)
    engine.dispose()
    # Copying the one file is a whole archive only when nothing is left in a journal.
    assert [p.name for p in path.parent.iterdir()] == [path.name]
    return path


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    """A PostgreSQL database built by the migrations, once per run; ``db_url`` clones it."""
    with pg_database() as url:
        engine = db.make_engine(url)
        db.upgrade(engine)
        engine.dispose()  # CREATE DATABASE ... TEMPLATE needs the template without sessions
        name = make_url(url).database
        assert name is not None
        yield name


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database URL whose schema is built by the migrations (never create_all).

    The migrations run once per backend and run (the templates above); each test gets a copy
    of its own, which is what running them again would build, at a fraction of the cost.
    Tests of the migrations themselves start from ``empty_db_url``.
    """
    if request.param == "sqlite":
        path = tmp_path / "archive.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    with pg_database(template=request.getfixturevalue("pg_template")) as url:
        yield url


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = db.make_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def pg_engine(pg_template: str) -> Iterator[Engine]:
    """An engine on a PostgreSQL archive of its own, for tests of PostgreSQL alone."""
    with pg_database(template=pg_template) as url:
        eng = db.make_engine(url)
        yield eng
        eng.dispose()


def pytest_report_header(config: pytest.Config) -> str:
    reason = pg_available()
    where = make_url(pg_admin_url()).render_as_string(hide_password=True)
    return f"postgresql: {where} " + (
        "available" if reason is None else f"NOT available ({reason})"
    )


@pytest.fixture(scope="session")
def page_body() -> bytes:
    """A real page of full events from the simulator (the biggest issue's first page).

    Session-scoped: building the org and serving the page costs about a second, and the bytes
    are never changed by a test.
    """
    import httpx

    from archiver.simulator import SimulatedOrg, SimulatorServer

    token = "page-token"
    org = SimulatedOrg(seed=3, events=400)
    issue = max(org.live_issues(), key=lambda i: i.times_seen)
    with SimulatorServer(org, token=token) as srv:
        response = httpx.get(
            f"{srv.url}/api/0/organizations/{org.slug}/issues/{issue.id}/events/",
            params={"full": "true"},
            headers={"Authorization": f"Bearer {token}"},
        )
    response.raise_for_status()
    assert len(response.json()) > 10
    return response.content
