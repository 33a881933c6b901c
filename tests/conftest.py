"""Shared fixtures: migrated archives on SQLite and PostgreSQL.

PostgreSQL tests use the server named by ``SENTRY_ARCHIVER_TEST_PG_URL`` (default: the local
``postgresql://postgres@127.0.0.1:5432/test``). Each test gets a database of its own, created
and dropped here, so parallel runs never see each other's rows. On a laptop without PostgreSQL
those tests are skipped and the summary says so; in CI (``CI`` set) they fail instead.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from archiver.storage import db
from tests.helpers import (
    drop_pg_database,
    new_pg_database,
    pg_admin_url,
    pg_available,
    require_postgres,
)


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_db_url(request: pytest.FixtureRequest, tmp_path: object) -> Iterator[str]:
    """An empty database URL on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/archive.db"
        return
    require_postgres()
    url, admin = new_pg_database()
    try:
        yield url
    finally:
        drop_pg_database(url, admin)


@pytest.fixture
def db_url(empty_db_url: str) -> str:
    """A database URL whose schema is built by the migrations (never create_all)."""
    engine = db.make_engine(empty_db_url)
    db.upgrade(engine)
    engine.dispose()
    return empty_db_url


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = db.make_engine(db_url)
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
