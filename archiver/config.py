"""Effective configuration: command-line options over environment over a TOML file over defaults.

Names follow sentry-cli's conventions (``SENTRY_AUTH_TOKEN``, ``SENTRY_ORG``, ``SENTRY_PROJECT``,
``SENTRY_URL``) so a machine already set up for sentry-cli needs nothing new. The token is kept
out of ``repr`` and every printed form of the settings.

A top-level module, not part of :mod:`archiver.cli`: the sync engine, the operations and the
commands all take :class:`Settings`, and the lower layers must not import the CLI.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from archiver.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

DEFAULT_URL = "https://sentry.io/"
DEFAULT_DB = "sqlite:///sentry-archive.db"
DEFAULT_CONFIG_FILE = "sentry-archiver.toml"
REDACTED = "***"  # as SQLAlchemy hides a password in a database URL

# TOML file layout: section -> key -> Settings field.
FILE_KEYS: dict[str, dict[str, str]] = {
    "sentry": {
        "url": "url",
        "token": "token",
        "org": "org",
        "projects": "projects",
    },
    "archive": {
        "db": "db",
        "query": "query",
        "environments": "environments",
        "earliest": "earliest",
        "detail": "detail",
        "releases": "releases",
        "concurrency": "concurrency",
        "workers": "workers",
        "overlap": "overlap",
        "timeout": "timeout",
        "max_retries": "max_retries",
        "rescan": "rescan",
    },
    "schedule": {"cron": "schedule_cron", "every": "schedule_every"},
    "retention": {"minimum": "retention_minimum"},
    "privacy": {"scrub": "scrub", "scrub_key": "scrub_key"},
}

ENV_VARS: dict[str, str] = {
    "url": "SENTRY_URL",
    "token": "SENTRY_AUTH_TOKEN",
    "org": "SENTRY_ORG",
    "projects": "SENTRY_PROJECT",
    "db": "SENTRY_ARCHIVER_DB",
    "scrub_key": "SENTRY_ARCHIVER_SCRUB_KEY",
}


def default_workers() -> int:
    """One worker process per core, at least one, at most four.

    The workers are the sync's largest CPU consumer; the writer and the fetch threads share
    what is left of a core (the README's issue 17 figures), so keeping a whole core for
    them left it partly idle.
    """
    return max(1, min(4, os.cpu_count() or 2))


@dataclass(frozen=True)
class Settings:
    """Everything a run needs. Build with :func:`load_settings`."""

    url: str = DEFAULT_URL
    token: str | None = field(default=None, repr=False)
    org: str | None = None
    projects: tuple[str, ...] = ()
    db: str = DEFAULT_DB
    query: str = ""
    environments: tuple[str, ...] = ()
    earliest: dt.datetime | None = None
    detail: str = "auto"  # auto | always
    releases: bool = True
    # The most requests in flight (walk threads); the server's ConcurrentLimit can lower it.
    concurrency: int = 8
    # Processes that parse and normalize pages beside the writer (0: all in one process).
    workers: int = field(default_factory=default_workers)
    overlap: dt.timedelta = dt.timedelta(minutes=15)
    timeout: float = 30.0
    max_retries: int = 6
    rescan: bool = False
    schedule_cron: str | None = None
    schedule_every: dt.timedelta | None = None
    retention_minimum: dt.timedelta | None = None
    scrub: tuple[str, ...] = ()
    scrub_key: str | None = field(default=None, repr=False)
    config_file: str | None = None

    def require_remote(self) -> None:
        """Fail early, naming the missing setting and how to give it."""
        missing = []
        if not self.token:
            missing.append("the auth token (--auth-token or SENTRY_AUTH_TOKEN)")
        if not self.org:
            missing.append("the organization (--org or SENTRY_ORG)")
        if missing:
            raise ConfigError("missing " + " and ".join(missing))

    def redacted(self) -> dict[str, Any]:
        """A printable form: secrets replaced, durations and dates as text."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in ("token", "scrub_key") and value:
                value = REDACTED
            elif f.name == "db" and value:
                value = _hide_db_password(str(value))
            elif f.name == "url" and value:
                value = hide_url_password(str(value))
            elif isinstance(value, dt.timedelta):
                value = format_duration(value)
            elif isinstance(value, dt.datetime):
                value = value.isoformat()
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str | int | float | dt.timedelta) -> dt.timedelta:
    """``90s``, ``15m``, ``6h``, ``400d``, ``2w`` (a bare number is seconds, never negative)."""
    if isinstance(text, dt.timedelta):
        return text
    if isinstance(text, bool):
        raise ConfigError(f"not a duration: {text!r} (use e.g. 90s, 15m, 6h, 400d, 2w)")
    if isinstance(text, (int, float)):
        if not math.isfinite(text) or text < 0:
            raise ConfigError(f"not a duration: {text!r} (use e.g. 90s, 15m, 6h, 400d, 2w)")
        return dt.timedelta(seconds=float(text))
    m = _DURATION.match(text)
    if not m:
        if text.strip().isdigit():
            return dt.timedelta(seconds=int(text))
        raise ConfigError(f"not a duration: {text!r} (use e.g. 90s, 15m, 6h, 400d, 2w)")
    return dt.timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2)])


_RETENTION = re.compile(r"^\s*(\d+)\s*(d|w|mo|y)\s*$")
_RETENTION_DAYS = {"d": 1, "w": 7, "mo": 30, "y": 365}
RETENTION_FORMS = "days, weeks, months or years: 90d, 12w, 6mo, 1y"


def parse_retention(text: str | int | dt.timedelta, *, bare_days: bool = False) -> dt.timedelta:
    """A retention age in days, weeks, months (30 days) or years (365 days).

    Deliberately not :func:`parse_duration`: there ``6m`` is six minutes, and a purge with
    ``--older-than 6m`` would delete nearly the whole archive. Minutes, hours, seconds and
    bare numbers are refused unless ``bare_days`` (the config file's ``[retention] minimum``,
    which is read in days).
    """
    if isinstance(text, dt.timedelta):
        return text
    if isinstance(text, int) and not isinstance(text, bool) and bare_days:
        return dt.timedelta(days=text)
    raw = str(text)
    if bare_days and raw.strip().isdigit():
        return dt.timedelta(days=int(raw))
    m = _RETENTION.match(raw)
    if not m:
        raise ConfigError(f"not a retention age: {raw!r} (use {RETENTION_FORMS})")
    return dt.timedelta(days=int(m.group(1)) * _RETENTION_DAYS[m.group(2)])


def format_duration(value: dt.timedelta) -> str:
    seconds = int(value.total_seconds())
    for unit in ("w", "d", "h", "m"):
        if seconds and seconds % _UNITS[unit] == 0:
            return f"{seconds // _UNITS[unit]}{unit}"
    return f"{seconds}s"


def parse_datetime(text: str | dt.date | dt.datetime) -> dt.datetime:
    """An ISO date or timestamp; naive values are UTC."""
    if isinstance(text, dt.datetime):
        value = text
    elif isinstance(text, dt.date):
        value = dt.datetime(text.year, text.month, text.day)
    else:
        try:
            value = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ConfigError(f"not an ISO date or timestamp: {text!r}") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return value.astimezone(dt.timezone.utc)


def split_list(value: str | Sequence[str]) -> tuple[str, ...]:
    """``SENTRY_PROJECT="a b,c"`` -> ("a", "b", "c")."""
    if isinstance(value, str):
        return tuple(p for p in re.split(r"[\s,]+", value) if p)
    out: list[str] = []
    for item in value:
        out.extend(split_list(str(item)))
    return tuple(out)


def _whole_number(name: str, value: Any) -> int:
    """An int; ``4.5`` or ``true`` is an error, not silently 4 or 1."""
    fractional = isinstance(value, float) and not value.is_integer()
    try:
        if isinstance(value, bool) or fractional:
            raise ValueError(value)
        number = int(value)
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(f"{name} must be a whole number, not {value!r}") from None
    if number < (1 if name == "concurrency" else 0):
        raise ConfigError(f"{name} is too small: {number}")
    return number


def _flag(name: str, value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def _detail(name: str, value: Any) -> str:
    if value not in ("auto", "always"):
        raise ConfigError(f"detail must be 'auto' or 'always', not {value!r}")
    return str(value)


def _list(name: str, value: Any) -> tuple[str, ...]:
    return split_list(value)


def _duration(name: str, value: Any) -> dt.timedelta:
    return parse_duration(value)


def _retention(name: str, value: Any) -> dt.timedelta:
    return parse_retention(value, bare_days=True)


def _datetime(name: str, value: Any) -> dt.datetime:
    return parse_datetime(value)


def _seconds(name: str, value: Any) -> float:
    """A positive number of seconds: ``30``, ``2.5`` or a duration with a unit (``30s``, ``2m``).

    Zero is refused too: an HTTP timeout of 0 fails every request with a misleading
    connection error.
    """
    number: Any = value
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            pass
    try:
        seconds = parse_duration(number).total_seconds()
    except ConfigError:
        seconds = math.nan
    if not seconds > 0:
        raise ConfigError(
            f"{name} must be a duration of more than 0 seconds (e.g. 30 or 30s), not {value!r}"
        )
    return seconds


SQLITE_FORMS = (
    "sqlite:///relative/path.db (three slashes), sqlite:////absolute/path.db (four), "
    "or the path alone"
)


def check_db_url(url: str) -> str:
    """The archive's URL, refusing what would lose or misplace an archive without a word.

    A plain path (``sentry.db``, as github-to-sqlite and Datasette take it) is a SQLite file.
    Refused: ``sqlite://file.db`` (SQLAlchemy reads the name as a host), an in-memory SQLite
    database (``sqlite://``, ``sqlite:///``: what ``sqlite:///$UNSET`` becomes; the archive
    would vanish when the command ends, after reporting success) and databases other than
    SQLite and PostgreSQL. The library's own callers (tests) may still build an engine on
    memory with :func:`archiver.storage.db.make_engine`; no command line can.
    """
    text = url.strip()
    if not text:
        raise ConfigError("the database URL is empty; " + SQLITE_FORMS)
    scheme, sep, rest = text.partition("://")
    if not sep:
        if text == ":memory:" or text.startswith("sqlite:"):
            raise ConfigError(_in_memory(url))
        return "sqlite:///" + text  # a plain path (an absolute one gets its fourth slash)
    backend = scheme.lower().split("+", 1)[0]
    if backend in ("postgres", "postgresql"):
        return text
    if backend in ("mysql", "mariadb"):
        raise ConfigError(
            f"{backend} is not supported ({_hide_db_password(text)}): the archive lives in "
            "SQLite or PostgreSQL (MySQL is not supported)"
        )
    if backend != "sqlite":
        raise ConfigError(
            f"unsupported database {scheme!r}: use SQLite ({SQLITE_FORMS}) or postgresql://"
        )
    if rest and not rest.startswith("/"):
        raise ConfigError(
            f"{text!r} names a host, not a file: write sqlite:///{rest} "
            f"(three slashes before a relative path, four before an absolute one) or {rest}"
        )
    database, _, query = rest[1:].partition("?")
    if database in ("", ":memory:") or "mode=memory" in query or database.startswith(":memory"):
        raise ConfigError(_in_memory(url))
    return text


def _in_memory(url: str) -> str:
    return (
        f"the database {url!r} is in memory: the archive would be lost when the command ends "
        f"(an unset variable in sqlite:///$VAR gives this); name a file: {SQLITE_FORMS}"
    )


_API_SUFFIX = re.compile(r"/api/0/?$")


def check_sentry_url(url: str) -> str:
    """The server's base URL: http(s), and without the ``/api/0/`` people paste from docs."""
    text = url.strip()
    if not text.startswith(("http://", "https://")):
        raise ConfigError(f"the Sentry URL must start with http:// or https://: {url!r}")
    return _API_SUFFIX.sub("/", text)


def _db_url(name: str, value: Any) -> str:
    return check_db_url(str(value))


def _sentry_url(name: str, value: Any) -> str:
    return check_sentry_url(str(value))


# Settings field -> how a value from the command line, the environment or the file becomes the
# field's type (a field not named here is text).
_COERCE: dict[str, Callable[[str, Any], Any]] = {
    "projects": _list,
    "environments": _list,
    "scrub": _list,
    "retention_minimum": _retention,
    "overlap": _duration,
    "schedule_every": _duration,
    "earliest": _datetime,
    "concurrency": _whole_number,
    "max_retries": _whole_number,
    "workers": _whole_number,
    "timeout": _seconds,
    "releases": _flag,
    "rescan": _flag,
    "detail": _detail,
    "db": _db_url,
    "url": _sentry_url,
}


def _coerce(name: str, value: Any) -> Any:
    """``value`` as the type of the Settings field ``name`` (ConfigError if it cannot be)."""
    if value is None:
        return None
    coerce = _COERCE.get(name)
    return str(value) if coerce is None else coerce(name, value)


def read_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Settings fields from a TOML file; unknown keys are an error (typos must not pass)."""
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    out: dict[str, Any] = {}
    for section, values in data.items():
        keys = FILE_KEYS.get(section)
        if keys is None or not isinstance(values, Mapping):
            raise ConfigError(
                f"{path}: unknown section [{section}] (known: {', '.join(FILE_KEYS)})"
            )
        for key, value in values.items():
            if key not in keys:
                raise ConfigError(
                    f"{path}: unknown key {key!r} in [{section}] (known: {', '.join(keys)})"
                )
            try:  # checked here, where the file, section and key can still be named
                _coerce(keys[key], value)
            except ConfigError as exc:
                raise ConfigError(f"{path}: [{section}] {key}: {exc}") from None
            out[keys[key]] = value
    return out


def load_settings(
    options: Mapping[str, Any] | None = None,
    *,
    config_file: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Merge the sources: options (non-None) > environment > file > defaults."""
    environ = os.environ if environ is None else environ
    config_file = config_file or environ.get("SENTRY_ARCHIVER_CONFIG")
    if config_file is None and Path(DEFAULT_CONFIG_FILE).is_file():
        config_file = DEFAULT_CONFIG_FILE
    merged: dict[str, Any] = {}
    if config_file:
        merged.update(read_config_file(config_file))
    for name, var in ENV_VARS.items():
        if environ.get(var):
            merged[name] = environ[var]
    for name, value in (options or {}).items():
        if value is not None and value != ():
            merged[name] = value
    known = {f.name for f in dataclasses.fields(Settings)}
    unknown = set(merged) - known
    if unknown:
        raise ConfigError(f"unknown settings: {', '.join(sorted(unknown))}")
    values = {name: _coerce(name, value) for name, value in merged.items()}
    if config_file:
        values["config_file"] = str(config_file)
    return Settings(**values)


def settings_from_options(options: Mapping[str, Any]) -> Settings:
    """Settings from a command's options: ``config_file`` names the file, the rest are fields.

    The one way every command reads its settings (so ``--db`` and ``--config`` mean the same
    everywhere). Options left unset (None or an empty tuple) fall through to the environment,
    the config file and the defaults.
    """
    fields = dict(options)
    config_file = fields.pop("config_file", None)
    return load_settings(fields, config_file=config_file)


def hide_url_password(url: str) -> str:
    """The Sentry URL with a password in it (``https://user:pw@host/``) replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:{REDACTED}@{host}"))


def _hide_db_password(url: str) -> str:
    """The database URL with its password (if any) replaced, for records and messages."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        return url
    if parsed.password is None:
        return url
    return parsed.render_as_string(hide_password=True)
