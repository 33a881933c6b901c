"""Shared fixtures: migrated archives on SQLite and PostgreSQL.

PostgreSQL tests use the server named by ``SENTRY_ARCHIVER_TEST_PG_URL`` (default: the local
``postgresql://postgres@127.0.0.1:5432/test``). Each test gets a database of its own, created
and dropped here, so parallel runs never see each other's rows. On a laptop without PostgreSQL
those tests are skipped and the summary says so; in CI (``CI`` set) they fail instead.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from archiver.storage import db

DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


def _pg_admin_url() -> str:
    return db.normalize_url(os.environ.get("SENTRY_ARCHIVER_TEST_PG_URL", DEFAULT_PG_URL))


def _pg_available() -> str | None:
    """None when PostgreSQL answers, else the reason it does not."""
    try:
        engine = create_engine(_pg_admin_url())
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        engine.dispose()
        return None
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}".splitlines()[0]


_PG_REASON: list[str | None] = []


def require_postgres() -> None:
    if not _PG_REASON:
        _PG_REASON.append(_pg_available())
    reason = _PG_REASON[0]
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"PostgreSQL is required in CI but not reachable: {reason}")
    pytest.skip(f"PostgreSQL not available on this machine ({reason})")


def new_pg_database() -> tuple[str, Engine]:
    """Create an empty database; returns its URL and an admin engine to drop it later."""
    admin = create_engine(_pg_admin_url(), isolation_level="AUTOCOMMIT")
    name = f"sa_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(_pg_admin_url()).set(database=name).render_as_string(hide_password=False)
    return url, admin


def drop_pg_database(url: str, admin: Engine) -> None:
    name = make_url(url).database
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


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
    reason = _pg_available()
    where = make_url(_pg_admin_url()).render_as_string(hide_password=True)
    return f"postgresql: {where} " + (
        "available" if reason is None else f"NOT available ({reason})"
    )


def gate_issue_events(srv: Any, until: threading.Event) -> None:
    """Hold every event-list request of a SimulatorServer until ``until`` is set (at most 60 s).

    Lets a process test decide when a sync may finish, instead of hoping a sleep is long enough.
    """
    dispatch = srv.dispatch

    def gated(method: str, target: str, headers: dict[str, str], base_url: str) -> Any:
        if "/issues/" in target and "/events/" in target:
            until.wait(60)
        return dispatch(method, target, headers, base_url)

    srv.dispatch = gated


def simulator_page(token: str = "page-token") -> bytes:
    """A real page of full events from the simulator (the biggest issue's first page)."""
    import httpx

    from archiver.simulator import SimulatedOrg, SimulatorServer

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
