"""PostgreSQL's binary ``COPY`` format: values as the server's own binary representation.

Why: in ``COPY``'s text format the server scans every character of every field for escapes
and parses every number and timestamp; the ``events`` rows, whose raw JSON is most of an
event, cost it about a third more CPU that way than in binary (the README's issue-17
figures), and the writer waits for the server most of its time. A binary field is its
length and its bytes: the page workers encode them (:func:`row_encoder`), the writer only
puts the row's field count, its id and its stamps in front (:mod:`archiver.storage.pgcopy`).

The format (PostgreSQL's documentation of ``COPY``, "Binary Format"): :data:`HEADER`, then
per row an int16 field count and per field an int32 length (-1: NULL) and the value as the
type's ``send`` function writes it, then :data:`TRAILER`. Integers are big-endian;
``timestamptz`` is int64 microseconds since 2000-01-01 00:00 UTC, ``date`` int32 days since
2000-01-01; ``jsonb`` is a version byte (1) and the JSON text, which the server parses as it
parses text input; text is UTF-8 (the client encoding), checked by the server as in text
format. Encoders are chosen by the column's PostgreSQL type name, so a column of a type not
listed here fails loudly (:class:`TypeError`) instead of being sent in a wrong form.

Text is encoded strictly, as the text format's rows were: a lone surrogate raises
:class:`UnicodeEncodeError` (normalization replaces them, and escapes them in raw JSON),
and a NUL fails the ``COPY`` on the server in both formats (normalization replaces it).
"""

from __future__ import annotations

import datetime as dt
import struct
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy.dialects import postgresql
from sqlalchemy.types import TypeEngine

HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # signature, flags 0, no header extension
TRAILER = b"\xff\xff"
NULL = b"\xff\xff\xff\xff"

_LENGTH = struct.Struct("!i").pack
_INT4 = struct.Struct("!ii").pack  # (length 4, value)
_INT8 = struct.Struct("!iq").pack  # (length 8, value)
_TRUE = b"\x00\x00\x00\x01\x01"
_FALSE = b"\x00\x00\x00\x01\x00"
_EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc)
_EPOCH_DAY = dt.date(2000, 1, 1).toordinal()
_MICROSECOND = dt.timedelta(microseconds=1)
_DIALECT = postgresql.dialect()  # type: ignore[no-untyped-call]

FieldEncoder = Callable[[Any], bytes]


def field_count(n: int) -> bytes:
    """A row's int16 field count."""
    return struct.pack("!h", n)


def int8_field(value: int) -> bytes:
    """A ``bigint`` field (the writer's event ids)."""
    return _INT8(8, value)


def _text(value: str | None) -> bytes:
    if value is None:
        return NULL
    data = value.encode()
    return _LENGTH(len(data)) + data


def _jsonb(value: str | None) -> bytes:
    """JSON text (the converter's ``json.dumps``), after jsonb's version byte."""
    if value is None:
        return NULL
    data = value.encode()
    return _LENGTH(len(data) + 1) + b"\x01" + data


def _bytea(value: bytes | None) -> bytes:
    return NULL if value is None else _LENGTH(len(value)) + value


def _int8(value: int | None) -> bytes:
    return NULL if value is None else _INT8(8, value)


def _int4(value: int | None) -> bytes:
    return NULL if value is None else _INT4(4, value)


def _boolean(value: bool | None) -> bytes:
    if value is None:
        return NULL
    return _TRUE if value else _FALSE


def _timestamptz(value: dt.datetime | None) -> bytes:
    """The instant of an aware datetime (a naive one raises: the converter made it UTC)."""
    return NULL if value is None else _INT8(8, (value - _EPOCH) // _MICROSECOND)


def _date(value: dt.date | None) -> bytes:
    return NULL if value is None else _INT4(4, value.toordinal() - _EPOCH_DAY)


_BY_NAME: dict[str, FieldEncoder] = {
    "BIGINT": _int8,
    "INTEGER": _int4,
    "BOOLEAN": _boolean,
    "TEXT": _text,
    "VARCHAR": _text,
    "JSONB": _jsonb,
    "BYTEA": _bytea,
    "TIMESTAMP WITH TIME ZONE": _timestamptz,
    "DATE": _date,
}


def field_encoder(type_: TypeEngine[Any]) -> FieldEncoder:
    """The encoder of a column type's values, as converted for PostgreSQL
    (:func:`archiver.storage.encode.converter`: aware datetimes, JSON as its text)."""
    name = type_.compile(dialect=_DIALECT)
    encoder = _BY_NAME.get(name.split("(", 1)[0])
    if encoder is None:
        raise TypeError(f"no binary COPY encoder for PostgreSQL type {name}")
    return encoder


def row_encoder(types: Sequence[TypeEngine[Any]]) -> Callable[[Sequence[Any]], bytes]:
    """A function from a row's values (in ``types`` order) to its fields, without the field
    count: the writer puts that and the fields only it knows in front."""
    encoders = tuple(field_encoder(t) for t in types)

    def encode(values: Sequence[Any]) -> bytes:
        return b"".join([f(v) for f, v in zip(encoders, values, strict=True)])

    return encode
