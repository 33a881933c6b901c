"""``sentry-archiver config show``: the effective configuration, never a secret."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from archiver.cli import cli
from archiver.config import load_settings

SECRET = "sntrys_do-not-print-me-0123456789"
SCRUB_KEY = "scrub-key-do-not-print"


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    for var in (
        "SENTRY_URL",
        "SENTRY_AUTH_TOKEN",
        "SENTRY_ORG",
        "SENTRY_PROJECT",
        "SENTRY_ARCHIVER_DB",
        "SENTRY_ARCHIVER_CONFIG",
        "SENTRY_ARCHIVER_SCRUB_KEY",
    ):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


def config_file(tmp_path: Path) -> str:
    path = tmp_path / "sentry-archiver.toml"
    path.write_text(
        '[sentry]\nurl = "https://sentry.example.com/"\norg = "file-org"\n'
        f'token = "{SECRET}"\nprojects = ["backend", "web"]\n'
        '[archive]\ndb = "postgresql://archiver:dbpassw0rd@db.internal/sentry"\nconcurrency = 3\n'
        '[schedule]\nevery = "6h"\n'
        '[retention]\nminimum = "400d"\n'
        f'[privacy]\nscrub = ["user.email", "request.cookies"]\nscrub_key = "{SCRUB_KEY}"\n'
    )
    return str(path)


def test_show_merges_sources_and_redacts(clean_env):
    cfg = config_file(clean_env)
    r = CliRunner().invoke(
        cli,
        ["config", "show", "--config", cfg, "--org", "option-org", "--concurrency", "8"],
        env={"SENTRY_PROJECT": "from-env"},
    )
    assert r.exit_code == 0, r.output
    out = r.output
    assert SECRET not in out
    assert SCRUB_KEY not in out
    assert "dbpassw0rd" not in out
    assert 'token = "***"' in out
    assert 'scrub_key = "***"' in out
    assert 'org = "option-org"' in out  # option over file
    assert 'projects = ["from-env"]' in out  # environment over file
    assert "concurrency = 8" in out
    assert 'url = "https://sentry.example.com/"' in out  # file over default
    assert 'every = "6h"' in out
    assert 'minimum = "400d"' in out
    assert f"# config file: {cfg}" in out


def test_show_output_is_a_config_file(clean_env):
    """What it prints loads back to the same settings (secrets aside)."""
    cfg = config_file(clean_env)
    r = CliRunner().invoke(cli, ["config", "show", "--config", cfg])
    assert r.exit_code == 0, r.output
    shown = clean_env / "shown.toml"
    shown.write_text(r.output)
    original = load_settings({}, config_file=cfg, environ={})
    again = load_settings({}, config_file=str(shown), environ={})
    skip = {"token", "scrub_key", "db", "config_file"}
    assert {k: v for k, v in again.redacted().items() if k not in skip} == {
        k: v for k, v in original.redacted().items() if k not in skip
    }


def test_show_json_and_token_from_environment(clean_env):
    r = CliRunner().invoke(
        cli,
        ["config", "show", "--json"],
        env={
            "SENTRY_AUTH_TOKEN": SECRET,
            "SENTRY_ORG": "env-org",
            "SENTRY_ARCHIVER_SCRUB_KEY": SCRUB_KEY,
        },
    )
    assert r.exit_code == 0, r.output
    assert SECRET not in r.output
    assert SCRUB_KEY not in r.output
    data = json.loads(r.output)
    assert data["sentry"]["token"] == "***"
    assert data["sentry"]["org"] == "env-org"
    assert data["privacy"]["scrub_key"] == "***"
    assert data["archive"]["db"] == "sqlite:///sentry-archive.db"
    assert data["schedule"] == {"cron": None, "every": None}
    assert data["config_file"] is None


def test_show_without_token_says_unset_and_option_token_is_hidden(clean_env):
    r = CliRunner().invoke(cli, ["config", "show"])
    assert r.exit_code == 0
    assert "# token = (not set)" in r.output
    r = CliRunner().invoke(cli, ["config", "show", "--auth-token", SECRET])
    assert r.exit_code == 0
    assert SECRET not in r.output


def test_show_reports_config_errors(clean_env):
    bad = clean_env / "bad.toml"
    bad.write_text('[sentry]\norgg = "x"\n')
    r = CliRunner().invoke(cli, ["config", "show", "--config", str(bad)])
    assert r.exit_code == 2
    assert "unknown key 'orgg'" in r.output
