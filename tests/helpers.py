"""Plain helper functions shared by conftest.py and several test modules.

Fixtures live in ``conftest.py``; what lives here is called with arguments of the caller's own
at a moment the caller chooses: a PostgreSQL database made for a module-scoped fixture, a gate
put on a server the test built, a sync's settings or process with the module's own token. A
fixture would only hand these functions over. The one exception, :func:`simulated`, builds a
module's ``org`` and ``server`` fixtures from the seed and token that module chose. Import them
as ``from tests.helpers import ...`` (pytest runs with ``pythonpath = ["."]``); nothing imports
conftest, whose module pytest loads under its own name.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import random
import re
import signal
import struct
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import make_url

from archiver.config import Settings
from archiver.simulator import SimulatedOrg, SimulatorConfig, SimulatorServer
from archiver.simulator.server import Outcome
from archiver.storage import db
from archiver.storage.encode import EVENT_COLUMNS, EncodedEvent
from archiver.storage.models import EVENTS
from archiver.storage.rawjson import PLAIN

DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
ROOT = Path(__file__).resolve().parents[1]


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


@contextlib.contextmanager
def pg_database(template: str | None = None) -> Iterator[str]:
    """A PostgreSQL database of its own (empty, or a copy of ``template``) for the ``with``
    block, dropped after it; skips the test (fails in CI) where PostgreSQL does not answer."""
    require_postgres()
    url, admin = new_pg_database(template)
    try:
        yield url
    finally:
        drop_pg_database(url, admin)


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


def simulated(
    token: str, *, seed: int, events: int, config: SimulatorConfig | None = None
) -> tuple[Any, Any]:
    """A module's ``org`` and ``server`` fixtures: ``org, server = simulated(TOKEN, ...)``.

    Each test gets a fresh org of ``seed`` and ``events`` (tests advance and change it) and the
    simulator serving it to ``token`` (and to the extra tokens ``config`` names). Modules keep
    their own seeds and tokens; only the two fixtures' bodies are shared.
    """

    @pytest.fixture
    def org() -> SimulatedOrg:
        return SimulatedOrg(seed=seed, events=events)

    @pytest.fixture
    def server(org: SimulatedOrg) -> Iterator[SimulatorServer]:
        with SimulatorServer(org, token=token, config=config) as srv:
            yield srv

    return org, server


def sync_settings(
    url: str, token: str, org: SimulatedOrg, db_url: str, **overrides: Any
) -> Settings:
    """Settings for a sync of ``org`` served at ``url`` into ``db_url``; ``overrides`` set any
    other field (concurrency, workers, overlap, ...)."""
    return Settings(url=url, token=token, org=org.slug, db=db_url, **overrides)


def source_args(url: str, token: str, org: SimulatedOrg, db_url: str) -> list[str]:
    """The command-line options naming the server, token, org and archive of a CLI run."""
    return ["--url", url, "--auth-token", token, "--org", org.slug, "--db", db_url]


def archiver_process(
    url: str,
    token: str,
    org: SimulatedOrg,
    db_url: str,
    *args: str,
    tmpdir: Path | None = None,
    stdout: int = subprocess.PIPE,
    stderr: int = subprocess.PIPE,
) -> subprocess.Popen[str]:
    """``python -m archiver ARGS`` in a process of its own, told where to sync by the environment
    (as cron or systemd would), with no config file of the developer's in the way.

    ``tmpdir`` is where the run spools its pages (``archiver.sync.spool``).
    """
    env = {
        **os.environ,
        "SENTRY_URL": url,
        "SENTRY_AUTH_TOKEN": token,
        "SENTRY_ORG": org.slug,
        "SENTRY_ARCHIVER_DB": db_url,
        "PYTHONPATH": str(ROOT),
    }
    env.pop("SENTRY_ARCHIVER_CONFIG", None)
    if tmpdir is not None:
        env["TMPDIR"] = str(tmpdir)
    return subprocess.Popen(
        [sys.executable, "-m", "archiver", *args],
        env=env,
        stdout=stdout,
        stderr=stderr,
        text=True,
    )


class StderrWatcher:
    """Collects a process's stderr lines as they come, so a test can wait for one."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()

    def wait_for(self, needle: str, seconds: float = 60.0) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: needle in self.text, timeout=seconds)

    @property
    def text(self) -> str:
        return "".join(self.lines)

    def finish(self, timeout: float) -> str:
        self.proc.wait(timeout=timeout)
        self._thread.join(timeout=10)
        return self.text


def archived(db_url: str) -> set[tuple[int, str]]:
    """The ``(project_id, event_id)`` of every archived event; fails if one is stored twice."""
    engine = db.make_engine(db_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT project_id, event_id FROM events")).all()
    finally:
        engine.dispose()
    keys = [(int(p), str(e)) for p, e in rows]
    assert len(keys) == len(set(keys)), "an event is stored twice"
    return set(keys)


def query_rows(db_url: str, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    """The rows ``sql`` selects from the archive at ``db_url``, read on an engine of its own."""
    engine = db.make_engine(db_url)
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(text(sql), params)]
    finally:
        engine.dispose()


def kill_at_random(
    start: Callable[[], subprocess.Popen[str]],
    rng: random.Random,
    times: int,
    pause: tuple[float, float],
) -> int:
    """Start a process ``times`` times, one after the other, and SIGKILL each after a pause
    drawn from ``pause`` (seconds) unless it ended first; returns how many were killed."""
    killed = 0
    for _ in range(times):
        proc = start()
        time.sleep(rng.uniform(*pause))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            killed += 1
        proc.wait(timeout=60)
    return killed


class ToSimulator(httpx.BaseTransport):
    """Sends what the client addresses to https://sentry.io/ to the simulator instead."""

    def __init__(self, url: str) -> None:
        self.target = httpx.URL(url)
        self.inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.url = request.url.copy_with(
            scheme=self.target.scheme, host=self.target.host, port=self.target.port
        )
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


_UNESCAPE = {"\\\\": "\\", "\\n": "\n", "\\r": "\r", "\\t": "\t"}


def copy_fields(line: bytes) -> list[str | None]:
    """The fields of one COPY text line, unescaped (the inverse of ``encode.copy_field``)."""
    out: list[str | None] = []
    for field in line.decode().split("\t"):
        if field == "\\N":
            out.append(None)
        else:
            out.append(re.sub(r"\\[\\nrt]", lambda m: _UNESCAPE[m.group()], field))
    return out


def binary_fields(data: bytes) -> list[bytes | None]:
    """The fields of one row of COPY's binary format without its field count (as the workers
    make ``events`` rows), each as its bytes (None: NULL)."""
    out: list[bytes | None] = []
    at = 0
    while at < len(data):
        (length,) = struct.unpack_from("!i", data, at)
        at += 4
        if length < 0:
            out.append(None)
            continue
        out.append(data[at : at + length])
        at += length
    assert at == len(data), "a field runs past the row's end"
    return out


_EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc)


def binary_value(type_name: str, field: bytes | None) -> Any:
    """A binary COPY field as a Python value, by the column's PostgreSQL type name
    (written from PostgreSQL's documentation, apart from the encoders it checks)."""
    if field is None:
        return None
    if type_name in ("BIGINT", "INTEGER"):
        return int.from_bytes(field, "big", signed=True)
    if type_name == "BOOLEAN":
        return {b"\x01": True, b"\x00": False}[field]
    if type_name == "TIMESTAMP WITH TIME ZONE":
        return _EPOCH + dt.timedelta(microseconds=int.from_bytes(field, "big", signed=True))
    if type_name == "DATE":
        return dt.date(2000, 1, 1) + dt.timedelta(days=int.from_bytes(field, "big", signed=True))
    if type_name == "JSONB":  # version 1, then the JSON text
        assert field[:1] == b"\x01"
        return field[1:].decode()
    if type_name == "BYTEA":
        return field
    return field.decode()  # TEXT, VARCHAR(n)


def event_row(ev: EncodedEvent) -> dict[str, Any]:
    """An encoded event's ``events`` row as a dict (converted values; when the event is in
    ``copy`` form, its binary COPY fields decoded, JSON as its text). ``raw_json`` is the text
    again when it was compressed without a dictionary (a dictionary's bytes are the
    archive's)."""
    if ev.copy is not None:
        dialect = postgresql.dialect()
        names = [EVENTS.c[c].type.compile(dialect=dialect) for c in EVENT_COLUMNS]
        fields = binary_fields(ev.copy.event)
        values = [binary_value(n, f) for n, f in zip(names, fields, strict=True)]
        return dict(zip(EVENT_COLUMNS, values, strict=True))
    row = dict(zip(EVENT_COLUMNS, ev.event, strict=True))
    if row["raw_zstd"] is not None and row["raw_dict_id"] is None:
        row["raw_json"] = PLAIN.decompress(row["raw_zstd"])
    return row


def orphans(engine: Engine) -> dict[str, int]:
    """Rows that point at an event (or, ``event_stacks``, a stack) the archive does not hold,
    per table; empty when there are none. The count ``sentry-archiver db check`` makes
    (:func:`archiver.storage.orphans.find_orphans`).

    PostgreSQL has no foreign key to catch them (migration 0008): the archiver alone writes an
    event's rows with it and deletes them with it, and these are what it would leave behind.
    """
    from archiver.storage.orphans import find_orphans

    with engine.connect() as conn:
        return find_orphans(conn)


def delete_events(conn: Connection) -> None:
    """``DELETE FROM events`` with every event's child rows, as purge deletes them: on
    PostgreSQL no ON DELETE CASCADE does it (migration 0008)."""
    from archiver.storage.models import EVENT_CHILD_TABLES

    for t in EVENT_CHILD_TABLES:
        conn.execute(text(f"DELETE FROM {t.name}"))
    conn.execute(text("DELETE FROM events"))


def alive(pid: int) -> bool:
    """Is process ``pid`` running (a zombie, exited but not yet reaped, is not)?"""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def mark_as_newer(url: str) -> None:
    """Create the archive at ``url`` and mark it as written by a newer sentry-archiver."""
    engine = db.make_engine(url)
    try:
        db.upgrade(engine)
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    finally:
        engine.dispose()
