"""PII scrubbing: pure rules, and proof that scrubbed values never reach the database.

The database checks read *everything* the backend holds: on SQLite the bytes of the database
file (after a WAL checkpoint) and of any ``-wal`` / ``-shm`` file beside it; on PostgreSQL the
text form of every row of every table.
"""

from __future__ import annotations

import copy
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import inspect, text
from sqlalchemy.engine import make_url

from archiver.cli import cli
from archiver.config import Settings
from archiver.errors import ConfigError, ExitCode
from archiver.normalize.scrub import (
    PREFIX,
    Scrubber,
    hash_value,
    key_id,
    make_scrubber,
    normalize_scrubbed,
)
from archiver.simulator import SimulatedOrg, SimulatorServer
from archiver.storage import db
from archiver.storage.store import Store
from archiver.sync.runner import execute_sync

FIXTURES = Path(__file__).resolve().parents[2] / "archiver" / "simulator" / "fixtures"
KEY = "test-scrub-key-0123456789"
TOKEN = "scrub-test-token"
RULES = (
    "user.email",
    "user.ip_address",
    "user.id",
    "user.username",
    "request.cookies",
    "request.headers.Authorization",
    "request.data",
    "tags.customer",
    "contexts.device.name",
    "extra.api_key",
)


def pii_event(n: int, *, email: str, ip: str, cookie: str, bearer: str) -> dict[str, object]:
    """A full event carrying personal data in every place the rules cover."""
    return {
        "eventID": f"{n:032x}",
        "projectID": "11",
        "groupID": "22",
        "dateCreated": "2024-01-02T03:04:05Z",
        "title": "boom",
        "message": "boom",
        "user": {
            "id": f"uid-{email}",
            "email": email,
            "ip_address": ip,
            "username": f"login-{email}",
            "name": "Kept Name",
        },
        "tags": [
            {"key": "level", "value": "error"},
            {"key": "user", "value": f"email:{email}", "query": f'user.email:"{email}"'},
            {"key": "customer", "value": f"cust-{email}"},
        ],
        "contexts": {"device": {"type": "device", "name": f"phone-of-{email}", "model": "X1"}},
        "context": {"api_key": f"key-{cookie}", "harmless": 1},
        "entries": [
            {
                "type": "request",
                "data": {
                    "url": "https://api.example.com/checkout",
                    "method": "POST",
                    "headers": [
                        ["Accept", "application/json"],
                        ["authorization", f"Bearer {bearer}"],
                        ["Cookie", f"session={cookie}"],
                    ],
                    "cookies": [["session", cookie]],
                    "data": {"card_holder": f"holder-{email}"},
                },
            }
        ],
    }


SECRETS = [
    dict(
        email="alice.secret@example.org",
        ip="198.51.100.23",
        cookie="c00kie-alpha-778899",
        bearer="tok-alpha-556677",
    ),
    dict(
        email="bob.hidden@example.org",
        ip="198.51.100.87",
        cookie="c00kie-beta-112233",
        bearer="tok-beta-445566",
    ),
]


# --------------------------------------------------------------------------- whole-database text


def database_text(url: str) -> bytes:
    """Every byte (SQLite) or every row as text (PostgreSQL) the archive holds."""
    parsed = make_url(db.normalize_url(url))
    if parsed.get_backend_name() == "sqlite":
        path = Path(str(parsed.database))
        conn = sqlite3.connect(path)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.close()
        out = b""
        for suffix in ("", "-wal", "-shm", "-journal"):
            f = Path(str(path) + suffix)
            if f.exists():
                out += f.read_bytes()
        return out
    engine = db.make_engine(url)
    try:
        parts: list[str] = []
        with engine.connect() as pg:
            for table in inspect(pg).get_table_names():
                rows = pg.execute(text(f'SELECT t::text FROM "{table}" t')).scalars()
                parts.extend(rows)
    finally:
        engine.dispose()
    return "\n".join(parts).encode("utf-8")


def assert_absent(url: str, needles: Iterator[str] | list[str]) -> None:
    haystack = database_text(url)
    found = [n for n in needles if n.encode("utf-8") in haystack]
    assert not found, f"scrubbed values found in the database: {found[:5]}"


# --------------------------------------------------------------------------- pure rules


def test_hash_is_keyed_deterministic_and_groups_equal_values():
    a = hash_value(KEY, "alice@example.org")
    assert a == hash_value(KEY, "alice@example.org")
    assert a.startswith(PREFIX)
    assert len(a) == len(PREFIX) + 16
    assert a != hash_value(KEY, "bob@example.org")
    assert a != hash_value("another key", "alice@example.org")
    assert key_id(KEY) == key_id(KEY)
    assert len(key_id(KEY)) == 8
    assert KEY not in key_id(KEY)


def test_every_rule_replaces_its_value_and_records_the_path():
    payload = pii_event(1, **SECRETS[0])
    original = copy.deepcopy(payload)
    clean, record = Scrubber(RULES, KEY).scrub(payload)
    assert payload == original  # the input is never changed
    s = SECRETS[0]
    text_out = json.dumps(clean)
    for value in [s["email"], s["ip"], s["cookie"], s["bearer"], f"uid-{s['email']}"]:
        assert value not in text_out
    assert clean["user"]["name"] == "Kept Name"  # not in the rules
    assert clean["user"]["email"] == hash_value(KEY, s["email"])
    user_tag = clean["tags"][1]
    assert user_tag["value"] == "email:" + hash_value(KEY, s["email"])  # joins with user.email
    assert s["email"] not in user_tag["query"]
    request = clean["entries"][0]["data"]
    assert request["headers"][0] == ["Accept", "application/json"]
    assert request["headers"][1][0] == "authorization"  # names kept, matched case-insensitively
    assert request["headers"][1][1].startswith(PREFIX)
    assert request["headers"][2][1].startswith(PREFIX)  # Cookie header goes with request.cookies
    assert request["cookies"] == [["session", hash_value(KEY, s["cookie"])]]
    assert request["url"] == "https://api.example.com/checkout"
    assert clean["contexts"]["device"] == {
        "type": "device",
        "model": "X1",
        "name": hash_value(KEY, f"phone-of-{s['email']}"),
    }
    assert clean["context"]["harmless"] == 1
    assert record["method"] == "hmac-sha256"
    assert record["key_id"] == key_id(KEY)
    assert record["rules"] == list(RULES)
    assert {
        "user.email",
        "user.ip_address",
        "tags[1].value",
        "tags[2].value",
        "entries[0].data.cookies[0][1]",
        "entries[0].data.headers[1][1]",
        "entries[0].data.data",
        "contexts.device.name",
        "context.api_key",
    } <= set(record["paths"])
    assert KEY not in json.dumps(record)


def test_scrubbing_twice_changes_nothing_more():
    scrubber = Scrubber(RULES, KEY)
    once, _ = scrubber.scrub(pii_event(1, **SECRETS[0]))
    twice, record = scrubber.scrub(once)
    assert twice == once
    assert record["paths"] == []


def test_bare_user_rule_and_missing_values():
    payload = {
        "eventID": "a" * 32,
        "user": {"id": "7", "email": None, "name": "N"},
        "tags": [{"key": "user", "value": "id:7"}, {"key": "sentry:user", "value": "x"}],
    }
    clean, record = Scrubber(["user"], KEY).scrub(payload)
    assert clean["user"] == {
        "id": hash_value(KEY, "7"),
        "email": None,
        "name": hash_value(KEY, "N"),
    }
    assert clean["tags"][0]["value"] == "id:" + hash_value(KEY, "7")
    assert clean["tags"][1]["value"] == hash_value(KEY, "x")
    assert "user.email" not in record["paths"]  # nothing there, nothing scrubbed
    # A payload without the fields is left alone but still gets a record.
    clean, record = Scrubber(["request.cookies"], KEY).scrub({"eventID": "b" * 32})
    assert clean == {"eventID": "b" * 32}
    assert record["paths"] == []


def test_other_shapes_of_request_containers():
    payload = {
        "entries": [
            {
                "type": "request",
                "data": {
                    "headers": {"Authorization": "Basic abc", "Accept": "*/*"},
                    "cookies": "a=1; b=2",
                    "env": {"REMOTE_ADDR": "10.1.2.3"},
                },
            }
        ]
    }
    clean, _ = Scrubber(
        ["request.headers.AUTHORIZATION", "request.cookies", "request.env.remote_addr"], KEY
    ).scrub(payload)
    data = clean["entries"][0]["data"]
    assert data["headers"] == {"Authorization": hash_value(KEY, "Basic abc"), "Accept": "*/*"}
    assert data["cookies"] == hash_value(KEY, "a=1; b=2")
    assert data["env"] == {"REMOTE_ADDR": hash_value(KEY, "10.1.2.3")}


@pytest.mark.parametrize(
    "rule",
    [
        "",
        "sdk.name",
        "user.geo.city",
        "tags",
        "request",
        "request.method.x",
        "request.body",
        "contexts",
        "extra.a.b",
        "user..email",
    ],
)
def test_bad_rules_are_configuration_errors(rule):
    with pytest.raises(ConfigError) as info:
        Scrubber([rule], KEY)
    assert info.value.exit_code == ExitCode.USAGE


def test_rules_without_a_key_are_refused():
    assert make_scrubber((), None) is None
    with pytest.raises(ConfigError, match="SENTRY_ARCHIVER_SCRUB_KEY"):
        make_scrubber(("user.email",), None)
    assert KEY not in repr(Scrubber(RULES, KEY))


def test_normalized_rows_carry_only_hashes_and_the_record():
    ev = normalize_scrubbed(Scrubber(RULES, KEY), pii_event(1, **SECRETS[0]), has_detail=True)
    assert ev.event["user_email"] == hash_value(KEY, SECRETS[0]["email"])
    assert ev.event["scrubbed"]["key_id"] == key_id(KEY)
    assert SECRETS[0]["email"] not in ev.event["raw_json"]
    tag_values = [r["value"] for r in ev.children["event_tags"]]
    assert not any(SECRETS[0]["email"] in v for v in tag_values)
    assert normalize_scrubbed(None, pii_event(1, **SECRETS[0])).event["scrubbed"] is None


def test_sqlite_file_search_finds_unscrubbed_values(tmp_path):
    """The search itself works: without scrubbing, the values are found in the file."""
    url = f"sqlite:///{tmp_path}/plain.db"
    engine = db.make_engine(url)
    db.upgrade(engine)
    store = Store(engine)
    with store.transaction() as conn:
        store.write_events(conn, [normalize_scrubbed(None, pii_event(1, **SECRETS[0]))])
    engine.dispose()
    haystack = database_text(url)
    assert SECRETS[0]["cookie"].encode() in haystack
    assert SECRETS[0]["bearer"].encode() in haystack


# --------------------------------------------------------------------------- the database


def test_scrubbed_values_never_reach_the_database(engine, db_url):
    scrubber = Scrubber(RULES, KEY)
    events = [
        normalize_scrubbed(scrubber, pii_event(n, **SECRETS[n % 2]), has_detail=True)
        for n in range(1, 7)
    ]
    store = Store(engine)
    with store.transaction() as conn:
        assert store.write_events(conn, events).inserted == 6
    with store.transaction() as conn:  # idempotent: same scrubbed payloads, nothing rewritten
        assert store.write_events(conn, events).unchanged == 6
    with engine.connect() as conn:
        groups = conn.execute(
            text("SELECT user_email, count(*) FROM events GROUP BY user_email ORDER BY 1")
        ).all()
        records = conn.execute(text("SELECT scrubbed FROM events")).scalars().all()
    engine.dispose()
    assert sorted(groups) == sorted([(hash_value(KEY, s["email"]), 3) for s in SECRETS])
    for record in records:
        record = json.loads(record) if isinstance(record, str) else record
        assert record["key_id"] == key_id(KEY)
        assert "user.email" in record["paths"]
    needles = [v for s in SECRETS for v in s.values()] + [KEY]
    assert_absent(db_url, needles)


@pytest.fixture(scope="module")
def sim() -> Iterator[tuple[SimulatedOrg, SimulatorServer]]:
    org = SimulatedOrg(seed=5, events=400)
    with SimulatorServer(org, token=TOKEN) as srv:
        yield org, srv


@pytest.fixture(scope="module")
def originals(sim, tmp_path_factory) -> list[str]:
    """The emails and IPs the simulator serves, read from an unscrubbed archive."""
    org, srv = sim
    url = f"sqlite:///{tmp_path_factory.mktemp('plain')}/plain.db"
    execute_sync(Settings(url=srv.url, token=TOKEN, org=org.slug, db=url))
    engine = db.make_engine(url)
    with engine.connect() as conn:
        values = conn.execute(
            text(
                "SELECT user_email FROM events WHERE user_email IS NOT NULL UNION "
                "SELECT user_ip_address FROM events WHERE user_ip_address IS NOT NULL"
            )
        ).scalars()
        found = sorted(set(values))
    engine.dispose()
    haystack = database_text(url)
    assert len(found) > 50
    assert all(v.encode() in haystack for v in found)
    return found


@pytest.mark.slow
def test_sync_with_scrub_rules_stores_no_email_or_ip(db_url, sim, originals):
    org, srv = sim
    settings = Settings(
        url=srv.url,
        token=TOKEN,
        org=org.slug,
        db=db_url,
        scrub=("user.email", "user.ip_address", "user.id", "request.cookies"),
        scrub_key=KEY,
    )
    outcome = execute_sync(settings)
    assert outcome.exit_code == ExitCode.OK
    assert outcome.report.events_new == len(org.truth())
    engine = db.make_engine(db_url)
    with engine.connect() as conn:
        unrecorded = conn.execute(text("SELECT count(*) FROM events WHERE scrubbed IS NULL"))
        emails = conn.execute(
            text(
                "SELECT user_email, count(*) FROM events WHERE user_email IS NOT NULL "
                "GROUP BY user_email"
            )
        ).all()
        user_tags = (
            conn.execute(text("SELECT value FROM event_tags WHERE key = 'user'")).scalars().all()
        )
        unrecorded_count = unrecorded.scalar_one()
    engine.dispose()
    assert unrecorded_count == 0
    assert emails
    assert all(e.startswith(PREFIX) for e, _ in emails)
    assert any(n > 1 for _, n in emails)  # a user with several events: equal values group
    assert user_tags
    assert all(v.startswith("id:" + PREFIX) for v in user_tags)
    # The simulator listens on 127.0.0.1, a user IP of some fixtures too: the run's server URL
    # (runs.server_url, issue permalinks) rightly holds it, so it cannot be searched for.
    assert_absent(db_url, [*(v for v in originals if v not in srv.url), KEY])
    # A second run fetches nothing new and rewrites nothing (the scrub is deterministic).
    again = execute_sync(settings)
    assert again.report.events_new == 0
    assert again.report.events_updated == 0


def test_sync_refuses_scrub_rules_without_a_key(tmp_path, sim, monkeypatch):
    org, srv = sim
    monkeypatch.delenv("SENTRY_ARCHIVER_SCRUB_KEY", raising=False)
    config = tmp_path / "c.toml"
    config.write_text('[privacy]\nscrub = ["user.email"]\n')
    target = tmp_path / "never.db"
    result = CliRunner().invoke(
        cli,
        [
            "sync",
            "--url",
            srv.url,
            "--auth-token",
            TOKEN,
            "--org",
            org.slug,
            "--db",
            f"sqlite:///{target}",
            "--config",
            str(config),
        ],
    )
    assert result.exit_code == ExitCode.USAGE, result.output
    assert result.output == (
        "error: scrub rules are configured but no scrub key is set: set SENTRY_ARCHIVER_SCRUB_KEY "
        "(or [privacy] scrub_key in the config file) to a long random secret, and keep it: the "
        "same key keeps hashes comparable\n"
    )
    assert TOKEN not in result.output
    assert not target.exists()
