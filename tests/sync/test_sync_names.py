"""A misspelled ``--org`` or ``--environment`` is a usage error that says so (issue 15).

Today's Sentry answers an unknown organisation slug with a 404 on everything under it, and an
unknown environment with a 404 on the issue search (``get_environments`` raising
``ResourceDoesNotExist``) but an empty list on an issue's events. Neither is "the server kept
failing": the sync says which name is wrong, lists the organisations the token can see, exits
2, and never marks an issue gone.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import text

from archiver.cli import cli
from archiver.config import Settings
from archiver.errors import ConfigError, ExitCode
from archiver.sentry.client import SentryClient
from archiver.simulator import SimulatedOrg, SimulatorServer
from archiver.storage import db
from archiver.storage.store import Store
from archiver.sync.engine import Syncer
from tests.helpers import ToSimulator

pytestmark = pytest.mark.slow  # end-to-end: real syncs against the simulator

TOKEN = "sim-secret-token-0123456789abcdef"


@pytest.fixture
def org() -> SimulatedOrg:
    return SimulatedOrg(seed=5, events=120)


@pytest.fixture
def server(org: SimulatedOrg) -> Iterator[SimulatorServer]:
    with SimulatorServer(org, token=TOKEN) as srv:
        yield srv


def sync(server: SimulatorServer, db_url: str, org: str, *extra: str) -> Result:
    args = ["sync", "--url", server.url, "--auth-token", TOKEN, "--org", org, "--db", db_url]
    return CliRunner().invoke(cli, [*args, *extra])


def test_a_misspelled_org_says_not_found_and_lists_the_known_ones(
    tmp_path: Path, org: SimulatedOrg, server: SimulatorServer
) -> None:
    path = tmp_path / "never.db"
    result = sync(server, f"sqlite:///{path}", "acme-typo")
    assert result.exit_code == ExitCode.USAGE, result.output
    assert "organization 'acme-typo' not found" in result.output
    assert f"organizations this token can see: {org.slug}" in result.output
    assert TOKEN not in result.output
    assert not path.exists()


def test_a_misspelled_org_on_sentry_io_fails_at_the_region_lookup(
    tmp_path: Path, org: SimulatedOrg, server: SimulatorServer
) -> None:
    url = f"sqlite:///{tmp_path}/never.db"
    server.log.reset()
    client = SentryClient("https://sentry.io/", TOKEN, transport=ToSimulator(server.url))
    engine = db.make_engine(url)
    settings = Settings(url="https://sentry.io/", token=TOKEN, org="acme-typo", db=url)
    try:
        with client, pytest.raises(ConfigError) as caught:
            Syncer(client, Store(engine), settings).run()
    finally:
        engine.dispose()
    message = str(caught.value)
    assert "organization 'acme-typo' not found" in message
    assert f"organizations this token can see: {org.slug}" in message
    assert TOKEN not in message
    paths = [e.path for e in server.log.entries()]
    assert paths == ["/api/0/organizations/acme-typo/", "/api/0/organizations/"]


def _walk_states(db_url: str) -> dict[str, int]:
    engine = db.make_engine(db_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT status, count(*) FROM sync_issues GROUP BY status"))
            return {str(s): int(n) for s, n in rows}
    finally:
        engine.dispose()


def _last_run(db_url: str) -> tuple[str, str]:
    engine = db.make_engine(db_url)
    try:
        with engine.connect() as conn:
            row = conn.execute(
                text("SELECT outcome, error_message FROM runs ORDER BY id DESC LIMIT 1")
            ).one()
    finally:
        engine.dispose()
    return str(row[0]), str(row[1])


def test_an_unknown_environment_is_named_and_marks_nothing_gone(
    db_url: str, org: SimulatedOrg, server: SimulatorServer
) -> None:
    first = sync(server, db_url, org.slug)
    assert first.exit_code == ExitCode.OK, first.output
    before = _walk_states(db_url)
    result = sync(server, db_url, org.slug, "--environment", "production", "--environment", "prod")
    assert result.exit_code == ExitCode.USAGE, result.output
    expected = f"environment 'prod' does not exist in organization {org.slug!r}"
    assert expected in result.output
    assert "'production'" not in result.output
    assert _walk_states(db_url) == before
    assert "gone" not in before
    status, message = _last_run(db_url)
    assert status == "failed"
    assert expected in message
