"""Binary COPY: each encoder against the bytes PostgreSQL's format defines, the server's reading
of them against its reading of the text format, and a whole archive written both ways.

The expected bytes are written out by hand from PostgreSQL's documentation (``COPY``, "Binary
Format", and each type's ``send`` function), not computed with the encoders' own constants.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
from typing import Any

import pytest
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Engine,
    Float,
    Integer,
    LargeBinary,
    String,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeEngine

from archiver.storage import db, encode
from archiver.storage.base import UTCDateTime
from archiver.storage.encode import EncodedEvent, copy_field, encode_event
from archiver.storage.models import CHILD_TABLES, EVENTS
from archiver.storage.pgbinary import HEADER, TRAILER, field_count, field_encoder, row_encoder
from archiver.storage.stacks import STACK_FRAMES
from archiver.storage.store import Store
from archiver.sync.workers import PageJob, normalize_page
from tests.helpers import binary_fields, drop_pg_database, new_pg_database, require_postgres
from tests.storage.test_pgcopy import ODD, normalized, odd_payload
from tests.sync.test_worker_golden import golden_pages

UTC = dt.timezone.utc
MINUS_7 = dt.timezone(dt.timedelta(hours=-7))


def enc(type_: TypeEngine[Any], value: Any) -> bytes:
    return field_encoder(type_)(value)


@pytest.mark.parametrize(
    ("type_", "value", "expected"),
    [
        (BigInteger(), None, b"\xff\xff\xff\xff"),
        (BigInteger(), 1, b"\x00\x00\x00\x08" + b"\x00" * 7 + b"\x01"),
        (BigInteger(), -2, b"\x00\x00\x00\x08" + b"\xff" * 7 + b"\xfe"),
        (BigInteger(), 2**63 - 1, b"\x00\x00\x00\x08\x7f" + b"\xff" * 7),
        (Integer(), -1, b"\x00\x00\x00\x04\xff\xff\xff\xff"),
        (Integer(), 258, b"\x00\x00\x00\x04\x00\x00\x01\x02"),
        (Boolean(), True, b"\x00\x00\x00\x01\x01"),
        (Boolean(), False, b"\x00\x00\x00\x01\x00"),
        (Text(), "", b"\x00\x00\x00\x00"),
        (Text(), "é\t\\N", b"\x00\x00\x00\x05\xc3\xa9\t\\N"),  # no escapes in binary
        (String(16), "🙂", b"\x00\x00\x00\x04\xf0\x9f\x99\x82"),
        (JSONB(), '{"a": 1}', b"\x00\x00\x00\x09\x01" + b'{"a": 1}'),  # version 1 first
        (JSONB(), None, b"\xff\xff\xff\xff"),
        (LargeBinary(), b"\x00\n\xff", b"\x00\x00\x00\x03\x00\n\xff"),
        # timestamptz: microseconds since 2000-01-01 00:00 UTC, whatever the offset
        (UTCDateTime(), dt.datetime(2000, 1, 1, tzinfo=UTC), b"\x00\x00\x00\x08" + bytes(8)),
        (
            UTCDateTime(),
            dt.datetime(1999, 12, 31, 17, 0, 0, 1, tzinfo=MINUS_7),
            b"\x00\x00\x00\x08" + b"\x00" * 7 + b"\x01",
        ),
        (
            UTCDateTime(),
            dt.datetime(1999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
            b"\x00\x00\x00\x08" + b"\xff" * 8,
        ),
        (
            UTCDateTime(),
            dt.datetime(2000, 1, 2, tzinfo=UTC),  # 86,400,000,000 microseconds
            b"\x00\x00\x00\x08\x00\x00\x00\x14\x1d\xd7\x60\x00",
        ),
        (UTCDateTime(), None, b"\xff\xff\xff\xff"),
        # date: days since 2000-01-01
        (Date(), dt.date(2000, 1, 2), b"\x00\x00\x00\x04\x00\x00\x00\x01"),
        (Date(), dt.date(1999, 12, 31), b"\x00\x00\x00\x04\xff\xff\xff\xff"),
        (Date(), None, b"\xff\xff\xff\xff"),
    ],
)
def test_a_field_is_the_bytes_the_format_defines(
    type_: TypeEngine[Any], value: Any, expected: bytes
) -> None:
    assert enc(type_, value) == expected


@pytest.mark.parametrize("type_", [JSON(), Float(), DateTime(timezone=False)])
def test_a_type_without_an_encoder_fails_loudly(type_: TypeEngine[Any]) -> None:
    """Plain ``json`` has no version byte and ``timestamp`` no time zone: a wrong form would
    be stored silently, so a column of such a type cannot be encoded at all."""
    with pytest.raises(TypeError, match="no binary COPY encoder"):
        field_encoder(type_)


def test_every_column_the_workers_encode_has_an_encoder() -> None:
    for table in (EVENTS, *CHILD_TABLES.values(), STACK_FRAMES):
        row_encoder([c.type for c in table.columns])


def test_text_that_is_not_utf8_fails_as_text_copy_did() -> None:
    """A lone surrogate fails in the worker, as the text format's strict encoding did
    (normalization replaces them in values and escapes them in raw JSON first)."""
    with pytest.raises(UnicodeEncodeError):
        enc(Text(), "lone \ud800")
    with pytest.raises(UnicodeEncodeError):
        "\t".join(map(copy_field, ["lone \ud800"])).encode()


def test_a_naive_timestamp_fails() -> None:
    """The converter makes every timestamp aware; a naive one has no instant to send."""
    with pytest.raises(TypeError):
        enc(UTCDateTime(), dt.datetime(2024, 1, 1))


def test_a_row_is_its_fields_in_order() -> None:
    row = row_encoder([BigInteger(), Text(), Boolean()])
    data = row((7, None, True))
    assert binary_fields(data) == [b"\x00" * 7 + b"\x07", None, b"\x01"]
    with pytest.raises(ValueError, match="shorter"):  # a row of the wrong length is never sent
        row((7, None))


# ------------------------------------------------------------------ the server's reading

COLUMNS: list[tuple[str, TypeEngine[Any], str]] = [
    ("i8", BigInteger(), "bigint"),
    ("i4", Integer(), "integer"),
    ("b", Boolean(), "boolean"),
    ("t", Text(), "text"),
    ("v", String(16), "varchar(16)"),
    ("j", JSONB(), "jsonb"),
    ("y", LargeBinary(), "bytea"),
    ("ts", UTCDateTime(), "timestamptz"),
    ("d", Date(), "date"),
]
ROWS: list[tuple[Any, ...]] = [
    (
        2**63 - 1,
        2**31 - 1,
        True,
        "\n".join(ODD[:7]),
        "é ü 🙂\t\\N",
        '{"a": [1, "ü\\n\\t\\\\", null, -1.25], "b": {"c": "\\u00e9"}}',
        b"\x00\\\n\xff",
        dt.datetime(2024, 5, 1, 23, 30, 0, 123456, tzinfo=MINUS_7),
        dt.date(2024, 5, 2),
    ),
    (
        -(2**63),
        -(2**31),
        False,
        "",
        "",
        '"text"',
        b"",
        dt.datetime(1, 1, 1, tzinfo=UTC),
        dt.date(1, 1, 1),
    ),
    (
        -1,
        0,
        None,
        ODD[7],
        None,
        "null",
        None,
        dt.datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        dt.date(1999, 12, 31),
    ),
    (
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        None,
    ),
]


def test_the_server_reads_binary_rows_as_it_reads_text_rows(pg_engine: Engine) -> None:
    """Every type, extreme and odd values, NULLs: copied as text (the workers' former form)
    and as binary, the two tables hold the same values, which are the values sent."""
    encode_row = row_encoder([t for _, t, _ in COLUMNS])
    key = field_count(1 + len(COLUMNS))
    binary = [HEADER]
    for k, row in enumerate(ROWS):
        binary += (key, field_encoder(Integer())(k), encode_row(row))
    binary.append(TRAILER)
    text_rows = ["\t".join(map(copy_field, (k, *row))) + "\n" for k, row in enumerate(ROWS)]
    columns = ", ".join(f"{name} {sql}" for name, _, sql in COLUMNS)
    with pg_engine.begin() as conn:
        driver: Any = conn.connection.driver_connection
        with driver.cursor() as cursor:
            for table, options, data in (
                ("as_text", "", "".join(text_rows).encode()),
                ("as_binary", " (FORMAT BINARY)", b"".join(binary)),
            ):
                cursor.execute(f"CREATE TEMP TABLE {table} (k integer, {columns})")
                with cursor.copy(f"COPY {table} FROM STDIN{options}") as out:
                    out.write(data)
        names = ", ".join(name for name, _, _ in COLUMNS)
        as_text, as_binary = (
            conn.execute(text(f"SELECT {names}, j::text, ts::text FROM {t} ORDER BY k")).all()
            for t in ("as_text", "as_binary")
        )
        differing = conn.execute(
            text(
                "SELECT count(*) FROM as_text a JOIN as_binary b USING (k) WHERE "
                + " OR ".join(f"a.{n} IS DISTINCT FROM b.{n}" for n, _, _ in COLUMNS)
            )
        ).scalar_one()
    assert differing == 0
    assert as_binary == as_text
    assert len(as_binary) == len(ROWS)
    for stored, sent in zip(as_binary, ROWS, strict=True):
        json_value = None if sent[5] is None else json.loads(sent[5])
        assert tuple(stored)[: len(COLUMNS)] == (*sent[:5], json_value, *sent[6:])


def archive(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every stored row of the archive's events, child tables and stacks, without keys or
    stamps, child rows by their event's natural key; each jsonb value also as its text."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    skip = {"id", "archived_at", "updated_at"}
    with engine.connect() as conn:
        events = conn.execute(text("SELECT * FROM events")).mappings()
        out["events"] = sorted(
            (tuple(v for k, v in r.items() if k not in skip) for r in events), key=repr
        )
        for name in [*CHILD_TABLES, "stacks", "stack_frames"]:
            keyed = name in CHILD_TABLES
            found = conn.execute(
                text(
                    f"SELECT e.project_id, e.event_id, c.* FROM {name} c "
                    "JOIN events e ON e.id = c.event_pk"
                    if keyed
                    else f"SELECT * FROM {name}"
                )
            ).mappings()
            out[name] = sorted(
                (tuple(v for k, v in r.items() if k != "event_pk") for r in found), key=repr
            )
        out["jsonb text"] = sorted(
            conn.execute(
                text(
                    "SELECT project_id, event_id, user_geo::text, user_data::text, "
                    "fingerprints::text, contexts::text, metadata::text, extra::text, "
                    "scrubbed::text, date_created::text, date_received::text, day::text "
                    "FROM events"
                )
            ).all(),
            key=repr,
        )
    return out


def worker_events(pages: list[tuple[int, int, bytes]]) -> list[EncodedEvent]:
    out: list[EncodedEvent] = []
    for project, issue, body in pages:
        page = normalize_page(body, PageJob(project, issue, "postgresql"))
        assert isinstance(page, list)
        out.extend(ev for ev in page if isinstance(ev, EncodedEvent))
    return out


def test_the_workers_copy_rows_store_what_inserts_store(
    pg_template: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The golden pages (every simulator template and fixture, and odd pages: NUL, lone
    surrogates, bytes that are not UTF-8, a too deep item) as the workers encode them for
    COPY, and as tuples bound by the driver: two archives with the same rows."""
    require_postgres()
    pages = golden_pages()
    copied = worker_events(pages)
    monkeypatch.setattr(encode, "COPY_BY_DEFAULT", False)
    bound = worker_events(pages)
    assert all(ev.copy is not None for ev in copied)
    assert all(ev.copy is None for ev in bound)
    found = []
    for events in (copied, bound):
        url, admin = new_pg_database(template=pg_template)
        engine = db.make_engine(url)
        try:
            store = Store(engine)
            with store.transaction() as conn:
                written = store.write_events(conn, events).inserted
            assert written == len({(ev.project_id, ev.event_id) for ev in events})
            found.append(archive(engine))
        finally:
            engine.dispose()
            drop_pg_database(url, admin)
    by_copy, by_insert = found
    assert by_copy == by_insert
    assert len(by_copy["events"]) == written > 100
    assert all(by_copy[name] for name in ("event_tags", "breadcrumbs", "stack_frames"))


def test_a_changed_event_goes_through_the_staging_table_binary(pg_engine: Engine) -> None:
    """The staging table's COPY is binary too: a replaced row holds the new values."""
    store = Store(pg_engine)
    first = odd_payload()
    with store.transaction() as conn:
        store.write_events(conn, [encode_event(normalized(first, 11), "postgresql")])
    changed = copy.deepcopy(first)
    changed["message"] = ODD[5] + "\t" + ODD[3]
    changed["dateCreated"] = "1999-12-31T23:59:59.999999Z"
    with store.transaction() as conn:
        assert store.write_events(conn, [normalized(changed, 11)]).updated == 1
    with pg_engine.connect() as conn:
        row = conn.execute(text("SELECT message, date_created, day FROM events")).one()
    assert tuple(row) == (
        ODD[5] + "\t" + ODD[3],
        dt.datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        dt.date(1999, 12, 31),
    )
