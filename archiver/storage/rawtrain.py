"""The writer's side of raw JSON compression: which codec new events get, and when to train.

:class:`CodecState` belongs to the :class:`~archiver.storage.store.Store`. The sync's page
workers ask it (through the store) for the current :class:`~archiver.storage.rawjson.RawCodec`
with each page; the writer tells it how many events it wrote, and once :data:`TRAIN_AFTER`
events are stored without a dictionary it trains one in the writer's transaction (see
:mod:`archiver.storage.rawjson`). The new codec is handed out only after that transaction
commits (:meth:`CodecState.committed`): a page compressed with a dictionary that a rollback
took away would be unreadable.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Engine, bindparam, case, func, insert, select, update
from sqlalchemy.sql.elements import ColumnElement

from archiver.storage.base import utcnow
from archiver.storage.db import sqlite_file
from archiver.storage.models import EVENTS, ZstdDictionary
from archiver.storage.rawjson import (
    FUNCTION,
    PLAIN,
    TRAIN_AFTER,
    TRAIN_SAMPLES,
    RawCodec,
    train_elsewhere,
)

DICTIONARIES: Any = ZstdDictionary.__table__


def raw_json_column(dialect: str) -> ColumnElement[Any]:
    """The events' raw JSON text as a SQL expression, on either database (for readers)."""
    if dialect != "sqlite":
        return EVENTS.c.raw_json
    return case(
        (EVENTS.c.raw_zstd.is_(None), EVENTS.c.raw_json),
        else_=getattr(func, FUNCTION)(EVENTS.c.raw_zstd, EVENTS.c.raw_dict_id),
    ).label("raw_json")


def latest_codec(conn: Connection) -> RawCodec:
    """The codec of the archive's newest dictionary (plain zstd when it has none)."""
    row = conn.execute(
        select(DICTIONARIES.c.id, DICTIONARIES.c.data).order_by(DICTIONARIES.c.id.desc()).limit(1)
    ).first()
    return PLAIN if row is None else RawCodec(int(row[0]), bytes(row[1]))


def train_and_recompress(conn: Connection, limit: int = TRAIN_SAMPLES) -> RawCodec | None:
    """Train a dictionary on the first ``limit`` events stored without one, store it, and
    recompress every event stored without one with it; None when zstd could not train one.

    A SQLite file's events are read by the training process itself (those committed: the
    writer's process never holds the samples); other databases send it the frames.
    """
    path = sqlite_file(str(conn.engine.url))
    if path is not None:
        trained = train_elsewhere(str(path), limit)
    else:
        rows = conn.execute(_plain_frames(limit)).all()
        trained = train_elsewhere([bytes(blob) for _, blob in rows], limit)
    if trained is None:
        return None
    data, samples = trained
    result = conn.execute(
        insert(DICTIONARIES).values(created_at=utcnow(), samples=samples, data=data)
    )
    assert result.inserted_primary_key is not None
    codec = RawCodec(int(result.inserted_primary_key[0]), data)
    last = -1
    while rows := conn.execute(_plain_frames(RECOMPRESS_BATCH, after=last)).all():
        conn.execute(
            update(EVENTS)
            .where(EVENTS.c.id == bindparam("b_id"))
            .values(raw_zstd=bindparam("b_zstd"), raw_dict_id=codec.dict_id),
            [{"b_id": pk, "b_zstd": codec.recompress(blob)} for pk, blob in rows],
        )
        last = int(rows[-1][0])
    return codec


RECOMPRESS_BATCH = 100


def _plain_frames(limit: int, after: int = -1) -> Any:
    """(id, raw_zstd) of events stored without a dictionary, in id order."""
    return (
        select(EVENTS.c.id, EVENTS.c.raw_zstd)
        .where(EVENTS.c.raw_dict_id.is_(None), EVENTS.c.raw_zstd.is_not(None), EVENTS.c.id > after)
        .order_by(EVENTS.c.id)
        .limit(limit)
    )


class CodecState:
    """The codec new events are compressed with, for one archive (SQLite; None elsewhere)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._current: RawCodec | None = None
        self._pending: RawCodec | None = None
        self._plain: int | None = None  # events stored without a dictionary, once counted

    def codec(self) -> RawCodec | None:
        """The current codec (None on PostgreSQL, which keeps raw_json as text)."""
        if self._engine.dialect.name != "sqlite":
            return None
        current = self._current
        if current is None:
            with self._engine.connect() as conn:
                current = self._current = latest_codec(conn)
        return current

    def for_writer(self) -> RawCodec | None:
        """The codec of the writer's own transaction: one trained in it already counts there
        (a page written in several batches uses it from the batch after the training on)."""
        return self._pending or self.codec()

    def written(self, conn: Connection, count: int) -> None:
        """``count`` events were written in ``conn``'s transaction: train when it is time."""
        current = self.codec()
        if current is None or current.dict_id is not None or self._pending is not None:
            return
        if self._plain is None:
            self._plain = int(
                conn.execute(
                    select(func.count()).where(
                        EVENTS.c.raw_dict_id.is_(None), EVENTS.c.raw_zstd.is_not(None)
                    )
                ).scalar_one()
            )
        else:
            self._plain += count
        if self._plain >= TRAIN_AFTER:
            self._pending = train_and_recompress(conn)
            self._plain = 0  # zstd could not train (odd events): try again later

    def committed(self) -> None:
        """The writer's transaction committed: a dictionary trained in it is now in use."""
        if self._pending is not None:
            self._current, self._pending = self._pending, None

    def rolled_back(self) -> None:
        """The writer's transaction rolled back: a dictionary trained in it is gone, and the
        events it wrote are not stored (counted again when next needed)."""
        self._pending = None
        self._plain = None
