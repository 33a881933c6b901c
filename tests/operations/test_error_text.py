"""What a failure reads like: a proxy's HTML page reduced to its title, counts in grammar,
each failure shown on the project it happened in, times with their zone."""

from __future__ import annotations

import json
import re

import httpx
import pytest
from click.testing import CliRunner
from sqlalchemy import text

from archiver.cli import cli
from archiver.output import plural
from archiver.sentry.body import detail_of
from archiver.simulator import SimulatedOrg, SimulatorServer
from archiver.simulator.config import FaultConfig, ScheduledFault, SimulatorConfig
from archiver.storage import db

TOKEN = "sim-error-text-token"

NGINX_502 = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n" + "<!-- a padding comment -->\r\n" * 6
)
CLOUDFLARE_503 = (
    "<!DOCTYPE html>\n<!--[if lt IE 7]> <html class='no-js'> <![endif]-->\n"
    "<html><head><meta charset='UTF-8'><title>sentry.example.com | 503: Service "
    "temporarily unavailable</title><script>var x = '<b>';</script></head><body>...</body></html>"
)


def _answer(status: int, body: str, content_type: str = "text/html") -> httpx.Response:
    return httpx.Response(status, content=body.encode(), headers={"content-type": content_type})


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (502, NGINX_502, 'HTML page "502 Bad Gateway"'),
        (503, CLOUDFLARE_503, 'HTML page "sentry.example.com | 503: Service temporarily'),
        (502, "<html><body><h1>502 Bad Gateway</h1></body></html>\n", 'HTML page "502 Bad'),
        (502, "<!doctype html><html><body>down</body></html>", "HTML page without a title"),
    ],
)
def test_an_html_error_page_is_reduced_to_its_title(status, body, expected):
    detail = detail_of(_answer(status, body))
    assert detail.startswith(expected), detail
    assert "<" not in detail
    assert "\n" not in detail


def test_sentry_error_text_is_unchanged_and_plain_text_stays_on_one_line():
    assert detail_of(_answer(403, '{"detail": "No access"}', "application/json")) == "No access"
    assert detail_of(_answer(500, "upstream\nconnect error\r\n", "text/plain")) == (
        "upstream connect error"
    )


def test_plural():
    assert plural(1, "issue") == "1 issue"
    assert plural(0, "issue") == "0 issues"
    assert plural(2, "issue") == "2 issues"
    assert plural(1_234, "event") == "1,234 events"
    assert plural(2, "entry", "entries") == "2 entries"


@pytest.fixture
def proxy_org() -> SimulatedOrg:
    return SimulatedOrg(seed=5, events=300)


def test_a_proxy_502_page_never_reaches_the_log_runs_or_status(tmp_path, proxy_org):
    """Some issues fail with a proxy's HTML 502: the run is partial (exit 3); the log,
    ``runs.errors`` and ``status`` name the page by its title, and each project shows only
    its own failures."""
    # the first and the second issue event list answer the proxy's page: one or two issues
    # fail, whatever order the concurrent walks take; the org has three projects
    first, second = (ScheduledFault("error", at, "issue_events") for at in (1, 2))
    faults = FaultConfig(error_statuses=(502,), schedule=(first, second))
    db_url = f"sqlite:///{tmp_path / 'a.db'}"
    with SimulatorServer(proxy_org, token=TOKEN, config=SimulatorConfig(faults=faults)) as srv:
        result = CliRunner().invoke(
            cli,
            [
                *("sync", "--url", srv.url, "--auth-token", TOKEN, "--org", proxy_org.slug),
                *("--db", db_url, "--max-retries", "0", "--workers", "0"),
            ],
        )
    assert result.exit_code == 3, result.output
    assert "<html" not in result.output.lower()
    assert "<body" not in result.output.lower()
    assert 'HTML page "502 Bad Gateway"' in result.output

    engine = db.make_engine(db_url)
    with engine.connect() as conn:
        errors = conn.execute(text("SELECT errors FROM runs")).scalar_one()
        failed = json.loads(errors) if isinstance(errors, str) else errors
        rows = conn.execute(text("SELECT id, project_id FROM issues")).all()
        issue_project: dict[int, int] = {int(i): int(p) for i, p in rows}
        walk_errors = list(
            conn.execute(
                text("SELECT last_error FROM sync_issues WHERE status = 'failed'")
            ).scalars()
        )
    engine.dispose()
    assert failed
    assert all("<" not in f["error"] for f in failed), failed
    assert walk_errors
    assert all("<" not in e for e in walk_errors), walk_errors

    status = CliRunner().invoke(cli, ["status", "--db", db_url, "--json"])
    assert status.exit_code == 0, status.output
    projects = json.loads(status.output)["projects"]
    failing = {issue_project[f["issue_id"]] for f in failed}
    shown = {p["id"] for p in projects if p["last_error"]}
    assert failing
    assert len(failing) < len(projects), "the test needs a project without failures"
    assert shown == failing
    human = CliRunner().invoke(cli, ["status", "--db", db_url]).output
    assert "<" not in human
    for p in projects:
        row = next(line for line in human.splitlines() if line.startswith(p["slug"] + " "))
        mine = [f for f in failed if issue_project[f["issue_id"]] == p["id"]]
        if not mine:
            assert row.rstrip().endswith("-"), row  # no error of another project's
    # times carry their zone
    assert re.search(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC", human), human
    assert "issue(s)" not in human
    assert " 1 issues" not in human
