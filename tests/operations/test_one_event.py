"""``archive-event`` against the built-in simulator on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import text

from archiver.cli import cli
from archiver.errors import ExitCode
from archiver.normalize.scrub import PREFIX
from archiver.sentry.client import SentryClient
from archiver.simulator import SimulatedOrg, SimulatorServer
from archiver.storage import db

TOKEN = "one-event-token"


@pytest.fixture(scope="module")
def sim() -> Iterator[tuple[SimulatedOrg, SimulatorServer]]:
    org = SimulatedOrg(seed=9, events=300)
    with SimulatorServer(org, token=TOKEN) as srv:
        yield org, srv


def run(sim: tuple[SimulatedOrg, SimulatorServer], db_url: str, *args: str) -> Result:
    org, srv = sim
    return CliRunner().invoke(
        cli,
        [
            "archive-event",
            *args,
            "--url",
            srv.url,
            "--auth-token",
            TOKEN,
            "--org",
            org.slug,
            "--db",
            db_url,
        ],
    )


def rows(db_url: str, sql: str) -> list[tuple[Any, ...]]:
    engine = db.make_engine(db_url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql))]
    finally:
        engine.dispose()


def test_archive_event_by_id_with_full_detail_and_idempotent(sim, empty_db_url):
    org, _ = sim
    project_id, event_id = sorted(org.truth())[17]
    first = run(sim, empty_db_url, event_id)
    assert first.exit_code == 0, first.output
    assert first.output.startswith(f"event {event_id} (project ")
    assert first.output.endswith("): new\n")
    second = run(sim, empty_db_url, event_id.upper())  # any spelling of the id
    assert second.exit_code == 0, second.output
    assert second.output == first.output.replace(": new\n", ": unchanged\n")

    (event,) = rows(
        empty_db_url,
        "SELECT project_id, event_id, issue_id, has_detail, is_full, release FROM events",
    )
    assert event[:2] == (project_id, event_id)
    assert event[3]
    assert event[4]
    issue_id, release = event[2], event[5]
    assert rows(empty_db_url, "SELECT count(*) FROM event_tags")[0][0] > 0
    (project,) = rows(empty_db_url, "SELECT id, slug, name FROM projects")
    sim_project = org.project_by_id(project_id)
    assert sim_project is not None
    assert project == (project_id, sim_project.slug, sim_project.name)
    (issue,) = rows(empty_db_url, "SELECT id, project_id, title, short_id FROM issues")
    assert issue[0] == issue_id
    assert issue[1] == project_id
    assert issue[2]
    assert issue[3]
    if release is not None:
        assert rows(empty_db_url, "SELECT version FROM releases") == [(release,)]
    runs = rows(empty_db_url, "SELECT command, outcome, events_new FROM runs ORDER BY id")
    assert runs == [("archive-event", "success", 1), ("archive-event", "success", 0)]


def test_archive_event_with_project_and_issue_latest(sim, empty_db_url):
    org, srv = sim
    project_id, event_id = sorted(org.truth())[3]
    project = org.project_by_id(project_id)
    assert project is not None
    direct = run(sim, empty_db_url, event_id, "--project", project.slug)
    assert direct.exit_code == 0, direct.output
    issue = max(org.live_issues(), key=lambda i: i.times_seen)
    with SentryClient(srv.url, TOKEN) as client:
        latest = client.get_issue_event(org.slug, issue.id, "latest")["eventID"]
    result = run(sim, empty_db_url, "--issue", str(issue.id), "--latest")
    assert result.exit_code == 0, result.output
    assert f"event {latest}" in result.output
    assert f"issue {issue.id}" in result.output
    stored = set(rows(empty_db_url, "SELECT event_id, issue_id FROM events WHERE has_detail"))
    assert (latest, issue.id) in stored
    assert len(stored) == 2 - (latest == event_id)


def test_unknown_or_bad_ids_fail_clearly_and_write_nothing(sim, tmp_path):
    target = tmp_path / "a.db"
    url = f"sqlite:///{target}"
    unknown = run(sim, url, "0" * 32)
    assert unknown.exit_code == ExitCode.USAGE
    assert unknown.output == (
        f"error: event {'0' * 32} not found in organization {sim[0].slug!r} (unknown, deleted, or "
        "past the server's retention)\n"
    )
    assert TOKEN not in unknown.output
    assert not target.exists()  # nothing is written before every request succeeded
    bad = run(sim, url, "not-an-id")
    assert bad.exit_code == ExitCode.USAGE
    assert bad.output == "error: not an event id: 'not-an-id' (32 hexadecimal characters)\n"
    no_issue = run(sim, url, "--issue", "999999999", "--latest")
    assert no_issue.exit_code == ExitCode.USAGE
    assert no_issue.output == (
        "error: issue 999999999 has no events on the server (or the issue does not exist)\n"
    )
    both = run(sim, url, "--latest")
    assert both.exit_code == ExitCode.USAGE
    assert both.output == "error: --latest needs --issue ID\n"
    assert not target.exists()


def test_archive_event_applies_the_scrub_rules(sim, tmp_path, monkeypatch):
    org, _ = sim
    url = f"sqlite:///{tmp_path}/a.db"
    config = tmp_path / "c.toml"
    config.write_text('[privacy]\nscrub = ["user.email", "user.ip_address"]\n')
    monkeypatch.setenv("SENTRY_ARCHIVER_SCRUB_KEY", "k" * 32)
    for _, event_id in sorted(org.truth())[:12]:
        result = run(sim, url, event_id, "--config", str(config))
        assert result.exit_code == 0, result.output
    emails = [e for (e,) in rows(url, "SELECT user_email FROM events") if e is not None]
    assert emails
    assert all(str(e).startswith(PREFIX) for e in emails)
    assert rows(url, "SELECT count(*) FROM events WHERE scrubbed IS NULL") == [(0,)]
    monkeypatch.delenv("SENTRY_ARCHIVER_SCRUB_KEY")
    refused = run(sim, url, sorted(org.truth())[0][1], "--config", str(config))
    assert refused.exit_code == ExitCode.USAGE
    assert refused.output == (
        "error: scrub rules are configured but no scrub key is set: set SENTRY_ARCHIVER_SCRUB_KEY "
        "(or [privacy] scrub_key in the config file) to a long random secret, and keep it: the "
        "same key keeps hashes comparable\n"
    )
