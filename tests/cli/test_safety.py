"""Issue 15: mistakes that could destroy data are refused, with one clear line and exit code."""

from __future__ import annotations

import datetime as dt

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from archiver.cli import cli, purge
from archiver.errors import ConfigError, ExitCode
from archiver.storage import db
from tests.operations.test_purge import fill

DAY = dt.timedelta(days=1)


def _count(url: str) -> int:
    engine = db.make_engine(url)
    with engine.connect() as conn:
        n = int(conn.execute(text("SELECT count(*) FROM events")).scalar_one())
    engine.dispose()
    return n


# --------------------------------------------------------------------------- 1. purge


def test_retention_ages_take_days_weeks_months_years_only():
    from archiver.config import parse_retention

    assert parse_retention("90d") == 90 * DAY
    assert parse_retention("12w") == 84 * DAY
    assert parse_retention("6mo") == 180 * DAY
    assert parse_retention("1y") == 365 * DAY
    for bad in ("6m", "12h", "30s", "400", "soon"):
        with pytest.raises(ConfigError, match="90d, 12w, 6mo, 1y"):
            parse_retention(bad)
    assert parse_retention(365, bare_days=True) == 365 * DAY


@pytest.mark.parametrize("age", ["6m", "400", "48h"])
def test_purge_refuses_minutes_and_bare_numbers(db_url, age):
    engine = db.make_engine(db_url)
    fill(engine, dt.datetime.now(dt.timezone.utc), [(11, 500), (12, 10)])
    engine.dispose()
    result = CliRunner().invoke(cli, ["purge", "--older-than", age, "--db", db_url, "--yes"])
    assert result.exit_code == ExitCode.USAGE, result.output
    assert result.output == (
        f"error: not a retention age: {age!r} "
        "(use days, weeks, months or years: 90d, 12w, 6mo, 1y)\n"
    )
    assert _count(db_url) == 2


def test_config_retention_minimum_is_read_in_days(tmp_path):
    from archiver.config import load_settings

    config = tmp_path / "c.toml"
    config.write_text("[retention]\nminimum = 365\n")
    assert load_settings(config_file=str(config), environ={}).retention_minimum == 365 * DAY


def test_purge_off_a_terminal_needs_yes(db_url):
    engine = db.make_engine(db_url)
    fill(engine, dt.datetime.now(dt.timezone.utc), [(11, 500), (12, 10)])
    engine.dispose()
    refused = CliRunner().invoke(cli, ["purge", "--older-than", "400d", "--db", db_url])
    assert refused.exit_code == ExitCode.USAGE, refused.output
    assert refused.output == (
        "error: refusing to delete 1 events without confirmation: stdin is not a terminal; "
        "pass --yes (for cron and scripts) or --dry-run\n"
    )
    assert _count(db_url) == 2
    done = CliRunner().invoke(cli, ["purge", "--older-than", "400d", "--db", db_url, "--yes"])
    assert done.exit_code == 0, done.output
    assert _count(db_url) == 1


def test_purge_on_a_terminal_asks_with_the_count(db_url, monkeypatch):
    monkeypatch.setattr(purge, "_stdin_is_tty", lambda: True)
    engine = db.make_engine(db_url)
    fill(engine, dt.datetime.now(dt.timezone.utc), [(11, 500), (12, 600), (12, 10)])
    engine.dispose()
    no = CliRunner().invoke(cli, ["purge", "--older-than", "400d", "--db", db_url], input="n\n")
    assert no.exit_code == 0, no.output
    prompt, answer = no.output.splitlines()
    assert prompt.startswith("delete 2 events dated before ")
    assert prompt.endswith("? [y/N]: n")
    assert answer == "nothing deleted"
    assert _count(db_url) == 3
    yes = CliRunner().invoke(cli, ["purge", "--older-than", "400d", "--db", db_url], input="y\n")
    assert yes.exit_code == 0, yes.output
    prompt, deleted, recorded = yes.output.splitlines()
    assert prompt.endswith("? [y/N]: y")
    assert deleted.startswith("deleted 2 events (web: 1, api: 1) and 44 child rows dated before ")
    assert recorded == "recorded as purge #1 in the purges table"
    assert _count(db_url) == 1
