"""Configuration: options over environment over file over defaults; secrets stay hidden."""

from __future__ import annotations

import datetime as dt

import pytest

from archiver.config import Settings, default_workers, load_settings, parse_duration, split_list
from archiver.errors import ConfigError


def write(tmp_path, text: str) -> str:
    path = tmp_path / "c.toml"
    path.write_text(text)
    return str(path)


def test_precedence_options_over_env_over_file(tmp_path):
    cfg = write(
        tmp_path,
        '[sentry]\norg = "from-file"\nurl = "https://file.example/"\n[archive]\nconcurrency = 3\n',
    )
    env = {"SENTRY_ORG": "from-env", "SENTRY_AUTH_TOKEN": "tok-env"}
    s = load_settings({"org": "from-option"}, config_file=cfg, environ=env)
    assert s.org == "from-option"
    assert s.token == "tok-env"
    assert s.url == "https://file.example/"
    assert s.concurrency == 3
    s = load_settings({}, config_file=cfg, environ=env)
    assert s.org == "from-env"


def test_sentry_cli_environment_names(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    env = {
        "SENTRY_URL": "https://self-hosted.example/",
        "SENTRY_AUTH_TOKEN": "sntrys_abc",
        "SENTRY_ORG": "acme",
        "SENTRY_PROJECT": "backend frontend,mobile",
        "SENTRY_ARCHIVER_DB": "sqlite:///x.db",
    }
    s = load_settings({}, environ=env)
    assert s.url == "https://self-hosted.example/"
    assert s.projects == ("backend", "frontend", "mobile")
    assert s.db == "sqlite:///x.db"
    s.require_remote()


def test_token_is_redacted_everywhere():
    s = Settings(token="sntrys_supersecret", org="acme", scrub_key="k3y-secret")
    assert "supersecret" not in repr(s)
    assert "supersecret" not in str(s.redacted())
    assert "k3y-secret" not in str(s.redacted())
    assert s.redacted()["token"] == "***"


def test_database_password_is_redacted_but_the_url_kept():
    s = Settings(db="postgresql://archiver:pg-s3cret@db.internal:5432/sentry")
    assert s.redacted()["db"] == "postgresql://archiver:***@db.internal:5432/sentry"
    assert Settings(db="sqlite:///a.db").redacted()["db"] == "sqlite:///a.db"


def test_unknown_keys_and_bad_values_are_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown key 'orgg'"):
        load_settings({}, config_file=write(tmp_path, '[sentry]\norgg = "x"\n'), environ={})
    with pytest.raises(ConfigError, match="unknown section"):
        load_settings({}, config_file=write(tmp_path, "[nope]\nx = 1\n"), environ={})
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings({}, config_file=write(tmp_path, "[sentry\n"), environ={})
    with pytest.raises(ConfigError, match="not found"):
        load_settings({}, config_file=str(tmp_path / "missing.toml"), environ={})
    with pytest.raises(ConfigError, match="detail"):
        load_settings({"detail": "sometimes"}, environ={})
    with pytest.raises(ConfigError, match="http"):
        load_settings({"url": "sentry.io"}, environ={})


def test_missing_remote_settings_named():
    with pytest.raises(ConfigError, match=r"SENTRY_AUTH_TOKEN.*SENTRY_ORG"):
        Settings().require_remote()


def test_durations_and_lists():
    assert parse_duration("15m") == dt.timedelta(minutes=15)
    assert parse_duration("400d") == dt.timedelta(days=400)
    assert parse_duration("90") == dt.timedelta(seconds=90)
    with pytest.raises(ConfigError):
        parse_duration("soon")
    assert split_list(["a,b", "c"]) == ("a", "b", "c")


def test_earliest_is_utc(tmp_path):
    s = load_settings({"earliest": "2024-03-01"}, environ={})
    assert s.earliest == dt.datetime(2024, 3, 1, tzinfo=dt.timezone.utc)


@pytest.mark.parametrize(("cores", "workers"), [(None, 2), (1, 1), (2, 2), (3, 3), (8, 4)])
def test_default_workers_one_per_core(monkeypatch, cores, workers):
    """The page workers are the sync's largest CPU consumer; the writer and fetch threads
    need about half a core, so on two cores one worker left the second core partly idle."""
    monkeypatch.setattr("os.cpu_count", lambda: cores)
    assert default_workers() == workers
