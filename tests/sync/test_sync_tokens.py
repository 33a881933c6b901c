"""Tokens and access as sentry.io has them (Correction 7 of the API notes).

A user token (``sntryu_``) sees every project in the projects list, with ``hasAccess: false``
on those its user is not a member of, and 403 on their issues and events: those projects are
skipped with a warning, the rest is archived. A project named by ``--project`` that the token
cannot read is a usage error naming it. A 403 on one project's issues or one issue's events
fails that project or issue, not the run. An organisation auth token (``sntrys_``) cannot read
events at all: the run ends as for auth, saying which token to create instead.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from click.testing import CliRunner

from archiver.cli import cli
from archiver.config import Settings
from archiver.errors import AuthError, ExitCode
from archiver.sentry.client import SentryClient
from archiver.simulator import SimulatedOrg, SimulatorConfig, SimulatorServer
from archiver.simulator.server import Outcome
from archiver.simulator.wire import ApiResponse
from archiver.storage import db
from archiver.storage.store import Store
from archiver.sync.engine import Syncer
from archiver.sync.runner import execute_sync
from tests.helpers import ToSimulator, archived, simulated, source_args, sync_settings

pytestmark = pytest.mark.slow  # end-to-end: real syncs against the simulator

TOKEN = "sim-test-token"
MEMBER = "sntryu_" + "a1" * 32
ORG_TOKEN = "sntrys_" + "eyJpYXQiOjE3MDAwMDAwMDB9_" + "b2" * 16
FORBIDDEN = {"detail": "You do not have permission to perform this action."}


# projects backend, frontend, payments-service
org, server = simulated(
    TOKEN,
    seed=11,
    events=600,
    config=SimulatorConfig(
        user_tokens={MEMBER: frozenset({"frontend"})}, org_auth_tokens=frozenset({ORG_TOKEN})
    ),
)


def settings(
    server: SimulatorServer, org: SimulatedOrg, db_url: str, token: str = TOKEN, **kw: Any
) -> Settings:
    return sync_settings(server.url, token, org, db_url, **{"concurrency": 2, **kw})


def truth_of(org: SimulatedOrg, *slugs: str) -> set[tuple[int, str]]:
    ids = {p.id for p in org.projects if p.slug in slugs}
    return {k for k in org.truth() if k[0] in ids}


def answer(
    srv: SimulatorServer, requests: Callable[[str, dict[str, str]], bool], status: int, body: Any
) -> None:
    """Answer ``status``/``body`` to the requests (path, query) ``requests`` accepts."""
    dispatch = srv.dispatch

    def patched(method: str, target: str, headers: dict[str, str], base_url: str) -> Outcome:
        split = urlsplit(target)
        if requests(split.path, dict(parse_qsl(split.query, keep_blank_values=True))):
            return Outcome(ApiResponse.json(status, body))
        return dispatch(method, target, headers, base_url)

    srv.dispatch = patched  # type: ignore[method-assign]


class _Records(logging.Handler):
    """The records of one logger, whatever the CLI's logging setup did to propagation."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_a_member_token_archives_exactly_the_projects_it_can_read(db_url, org, server):
    records = _Records()
    logger = logging.getLogger("archiver.sync.discovery")
    level, disabled = logger.level, logger.disabled
    logger.addHandler(records)
    logger.setLevel(logging.WARNING)  # an earlier CLI test may have set "archiver" quieter
    logger.disabled = False
    try:
        outcome = execute_sync(settings(server, org, db_url, token=MEMBER))
    finally:
        logger.removeHandler(records)
        logger.setLevel(level)
        logger.disabled = disabled
    assert outcome.exit_code == ExitCode.OK, outcome.report.failures
    assert archived(db_url) == truth_of(org, "backend", "payments-service")
    assert truth_of(org, "frontend")  # something was left out
    skipped = [m for m in records.messages if "cannot read" in m]
    assert len(skipped) == 1
    assert "frontend" in skipped[0]
    assert outcome.report.projects == 2


def test_a_named_project_the_token_cannot_read_is_an_error_naming_it(tmp_path, org, server):
    path = tmp_path / "never.db"
    result = CliRunner().invoke(
        cli,
        [
            "sync",
            *source_args(server.url, MEMBER, org, f"sqlite:///{path}"),
            "--project",
            "backend",
            "--project",
            "frontend",
        ],
    )
    assert result.exit_code == ExitCode.USAGE, result.output
    assert "frontend" in result.output
    assert "cannot read" in result.output
    assert "backend" not in result.output.split("cannot read")[1]
    assert not path.exists()


def test_a_403_on_one_projects_issues_fails_that_project_only(db_url, org, server):
    frontend = next(p for p in org.projects if p.slug == "frontend")
    answer(
        server,
        lambda path, q: path.endswith("/issues/") and q.get("project") == str(frontend.id),
        403,
        FORBIDDEN,
    )
    outcome = execute_sync(settings(server, org, db_url))
    assert outcome.exit_code == ExitCode.PARTIAL
    [failure] = outcome.report.failures
    assert failure["project"] == "frontend"
    assert "HTTP 403" in failure["error"]
    assert archived(db_url) == truth_of(org, "backend", "payments-service")


def test_a_403_on_one_issues_events_fails_that_issue_only(db_url, org, server):
    victim = max(org.live_issues(), key=lambda i: i.times_seen)
    answer(server, lambda path, q: f"/issues/{victim.id}/events/" in path, 403, FORBIDDEN)
    outcome = execute_sync(settings(server, org, db_url))
    assert outcome.exit_code == ExitCode.PARTIAL
    assert [f["issue_id"] for f in outcome.report.failures] == [victim.id]
    others = {k for k in org.truth() if org.locate_event(k[1]).issue.id != victim.id}
    assert archived(db_url) == others


def test_a_403_on_every_project_is_the_tokens_problem(tmp_path, org, server):
    """A token without event:read lists projects but no issues: exit as for auth (4)."""
    answer(server, lambda path, q: path.endswith("/issues/"), 403, FORBIDDEN)
    with pytest.raises(AuthError) as caught:
        execute_sync(settings(server, org, f"sqlite:///{tmp_path}/a.db"))
    assert caught.value.exit_code == ExitCode.AUTH
    assert "event:read" in str(caught.value)


def _assert_org_token_message(text_: str) -> None:
    assert "HTTP 403" in text_
    assert "organization auth token" in text_
    assert "cannot read events" in text_
    assert "internal integration" in text_
    assert "event:read" in text_
    assert ORG_TOKEN not in text_


def test_an_org_auth_token_exits_as_for_auth_saying_which_token_to_create(tmp_path, org, server):
    path = tmp_path / "never.db"
    result = CliRunner().invoke(
        cli, ["sync", *source_args(server.url, ORG_TOKEN, org, f"sqlite:///{path}")]
    )
    assert result.exit_code == ExitCode.AUTH, result.output
    _assert_org_token_message(result.output)
    assert not path.exists()


def test_an_org_auth_token_on_sentry_io_fails_at_the_region_lookup(tmp_path, org, server):
    """On sentry.io the first request is the organisation's details (its region): a 403."""
    url = f"sqlite:///{tmp_path}/never.db"
    server.log.reset()
    client = SentryClient("https://sentry.io/", ORG_TOKEN, transport=ToSimulator(server.url))
    engine = db.make_engine(url)
    try:
        with client, pytest.raises(AuthError) as caught:
            Syncer(client, Store(engine), settings(server, org, url)).run()
    finally:
        engine.dispose()
    assert caught.value.exit_code == ExitCode.AUTH
    _assert_org_token_message(str(caught.value))
    assert [e.path for e in server.log.entries()] == [f"/api/0/organizations/{org.slug}/"]
