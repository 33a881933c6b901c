"""Plain helper functions shared by conftest.py and several test modules.

Fixtures live in ``conftest.py``; what lives here is called with arguments of the caller's own
at a moment the caller chooses: a PostgreSQL database made for a module-scoped fixture, a gate
put on a server the test built. A fixture would only hand these functions over. Import them as
``from tests.helpers import ...`` (pytest runs with ``pythonpath = ["."]``); nothing imports
conftest, whose module pytest loads under its own name.
"""

from __future__ import annotations

import os
import threading
import uuid

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from archiver.simulator import SimulatorServer
from archiver.simulator.server import Outcome
from archiver.storage import db

DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


def pg_admin_url() -> str:
    return db.normalize_url(os.environ.get("SENTRY_ARCHIVER_TEST_PG_URL", DEFAULT_PG_URL))


def pg_available() -> str | None:
    """None when PostgreSQL answers, else the reason it does not."""
    try:
        engine = create_engine(pg_admin_url())
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        engine.dispose()
        return None
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}".splitlines()[0]


_PG_REASON: list[str | None] = []


def require_postgres() -> None:
    if not _PG_REASON:
        _PG_REASON.append(pg_available())
    reason = _PG_REASON[0]
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"PostgreSQL is required in CI but not reachable: {reason}")
    pytest.skip(f"PostgreSQL not available on this machine ({reason})")


def new_pg_database(template: str | None = None) -> tuple[str, Engine]:
    """Create a database (empty, or a copy of ``template``); returns its URL and an admin
    engine to drop it later."""
    admin = create_engine(pg_admin_url(), isolation_level="AUTOCOMMIT")
    name = f"sa_test_{uuid.uuid4().hex[:12]}"
    copy = f' TEMPLATE "{template}"' if template else ""
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"{copy}'))
    url = make_url(pg_admin_url()).set(database=name).render_as_string(hide_password=False)
    return url, admin


def drop_pg_database(url: str, admin: Engine) -> None:
    name = make_url(url).database
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def gate_issue_events(srv: SimulatorServer, until: threading.Event) -> None:
    """Hold every event-list request of a SimulatorServer until ``until`` is set (at most 60 s).

    Lets a process test decide when a sync may finish, instead of hoping a sleep is long enough.
    """
    dispatch = srv.dispatch

    def gated(method: str, target: str, headers: dict[str, str], base_url: str) -> Outcome:
        if "/issues/" in target and "/events/" in target:
            until.wait(60)
        return dispatch(method, target, headers, base_url)

    srv.dispatch = gated  # type: ignore[method-assign]
