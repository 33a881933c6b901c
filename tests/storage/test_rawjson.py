"""Raw JSON compressed with zstd (SQLite) stays the exact text: codec, store, training, sync."""

from __future__ import annotations

import hashlib
import json
import pickle
from typing import Any

import pytest
from sqlalchemy import Engine, text

from archiver.normalize import normalize_event
from archiver.operations.export import ExportFilter, export_events
from archiver.storage import rawjson, rawtrain
from archiver.storage.store import Store

ODD_TEXTS = [
    '{"id":"fffffffffffffffffffffffffffffff1","message":"a\\u0000b"}',
    '{"id":"fffffffffffffffffffffffffffffff2","message":"h\u00e9llo \u2603 \U0001d11e"}',
    '{"id":"fffffffffffffffffffffffffffffff3","message":"\\udcff lone escape"}',
    '{"id":"fffffffffffffffffffffffffffffff4",  "spaces" : [ 1 ,2 ] , "k":"\\/"}',
    '{"id":"fffffffffffffffffffffffffffffff5","big":"' + "x\u00e9" * 1_500_000 + '"}',
]


def _sha(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()


@pytest.mark.parametrize("trained", [False, True])
def test_the_codec_gives_back_every_text_exactly(trained: bool) -> None:
    codec = rawjson.PLAIN
    if trained:
        samples = [
            json.dumps({"id": i, "message": f"event {i}", "tags": [["a", "b"]]}) for i in range(50)
        ]
        data = rawjson.train(samples)
        assert data is not None
        codec = rawjson.RawCodec(7, data)
    odd = [*ODD_TEXTS, "", "{", "\udcff raw lone surrogate", "not json at all \x00"]
    for raw in odd:
        blob = codec.compress(raw)
        assert codec.decompress(blob) == raw
        # a worker's copy (pickled) reads and writes the same frames
        assert pickle.loads(pickle.dumps(codec)).decompress(blob) == raw
    assert len(codec.compress(ODD_TEXTS[4])) < len(ODD_TEXTS[4]) // 100


def _events(n: int, start: int = 0) -> list[Any]:
    out = []
    for i in range(start, start + n):
        payload = {
            "id": f"{i:032x}",
            "eventID": f"{i:032x}",
            "projectID": "11",
            "groupID": "22",
            "message": f"event number {i}",
            "dateCreated": "2026-01-01T00:00:00Z",
            "tags": [{"key": "level", "value": "error"}, {"key": "n", "value": str(i)}],
            "entries": [],
        }
        out.append(normalize_event(payload, project_id=11, issue_id=22, raw=json.dumps(payload)))
    return out


def _odd_events() -> list[Any]:
    out = []
    for raw in ODD_TEXTS:
        payload = json.loads(raw)
        out.append(normalize_event(payload, project_id=11, issue_id=22, raw=raw))
    return out


def _stored(engine: Engine) -> dict[str, tuple[str, str]]:
    """event_id -> (raw text read back through the view, raw_sha256)."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT e.event_id, r.raw_json, e.raw_sha256 FROM events e "
                "JOIN v_event_raw_json r ON r.event_pk = e.id"
            )
        ).all()
    return {eid: (raw, sha) for eid, raw, sha in rows}


def test_odd_events_come_back_byte_for_byte_and_rewrites_write_nothing(engine: Engine) -> None:
    store = Store(engine)
    events = _odd_events()
    with store.transaction() as conn:
        result = store.write_events(conn, events)
    assert result.inserted == len(events)
    stored = _stored(engine)
    for ev in events:
        raw, sha = stored[ev.event_id]
        assert raw == ev.event["raw_json"]
        assert sha == _sha(raw)
    with engine.connect() as conn:
        where = "raw_json IS NULL AND raw_zstd IS NOT NULL"
        if engine.dialect.name != "sqlite":
            where = "raw_json IS NOT NULL AND raw_zstd IS NULL AND raw_dict_id IS NULL"
        n = conn.execute(text(f"SELECT count(*) FROM events WHERE {where}")).scalar_one()
    assert n == len(events)
    with store.transaction() as conn:
        again = store.write_events(conn, _odd_events())
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, len(events))
    # export gives the exact text too (jsonl: one per line, so the huge one is checked whole)
    out = _Collect()
    assert export_events(engine, out, "jsonl", ExportFilter()) == len(events)  # type: ignore[arg-type]
    assert sorted(out.text.splitlines()) == sorted(ev.event["raw_json"] for ev in events)


class _Collect:
    def __init__(self) -> None:
        self.text = ""

    def writelines(self, lines: Any) -> None:
        self.text += "".join(lines)

    def write(self, s: str) -> None:
        self.text += s


def test_a_dictionary_is_trained_once_enough_events_are_stored(
    db_url: str, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rawtrain, "TRAIN_AFTER", 30)
    store = Store(engine)
    sqlite = engine.dialect.name == "sqlite"
    with store.transaction() as conn:
        store.write_events(conn, _events(20))
    assert store.raw_codec() == rawjson.PLAIN if sqlite else store.raw_codec() is None
    with store.transaction() as conn:
        store.write_events(conn, _events(20, start=20))
    codec = store.raw_codec()
    with engine.connect() as conn:
        dicts = conn.execute(text("SELECT id, samples FROM zstd_dictionaries")).all()
        plain = conn.execute(text("SELECT count(*) FROM events WHERE raw_dict_id IS NULL"))
        plain_count = plain.scalar_one()
    if not sqlite:  # PostgreSQL keeps raw_json as text: nothing to train
        assert codec is None
        assert dicts == []
        assert plain_count == 40
        return
    assert codec is not None
    assert codec.dict_id == dicts[0][0]
    assert dicts[0][1] == 20  # trained on the committed events; all 40 recompressed
    assert plain_count == 0
    with store.transaction() as conn:
        store.write_events(conn, [*_events(10, start=40), *_odd_events()])
    with engine.connect() as conn:
        ids = {r[0] for r in conn.execute(text("SELECT DISTINCT raw_dict_id FROM events"))}
    assert ids == {codec.dict_id}
    stored = _stored(engine)
    for ev in [*_events(50), *_odd_events()]:
        assert stored[ev.event_id][0] == ev.event["raw_json"]


def test_a_dictionary_trained_in_a_rolled_back_transaction_is_not_used(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from archiver.storage import db

    engine = db.make_engine(f"sqlite:///{tmp_path}/a.db")
    db.upgrade(engine)
    monkeypatch.setattr(rawtrain, "TRAIN_AFTER", 30)
    store = Store(engine)
    with store.transaction() as conn:
        store.write_events(conn, _events(20))

    def failed_page() -> None:
        with store.transaction() as conn:
            store.write_events(conn, _events(20, start=20))
            raise RuntimeError("the page failed")

    with pytest.raises(RuntimeError):
        failed_page()
    assert store.raw_codec() == rawjson.PLAIN
    with store.transaction() as conn:
        store.write_events(conn, _events(20, start=20))
    codec = store.raw_codec()
    assert codec is not None
    assert codec.dict_id is not None
    stored = _stored(engine)
    assert len(stored) == 40
    engine.dispose()


def test_batches_after_the_training_in_the_same_transaction_use_the_dictionary(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from archiver.storage import db

    engine = db.make_engine(f"sqlite:///{tmp_path}/a.db")
    db.upgrade(engine)
    monkeypatch.setattr(rawtrain, "TRAIN_AFTER", 30)
    store = Store(engine)
    with store.transaction() as conn:
        store.write_events(conn, _events(20))
    with store.transaction() as conn:  # a page written in two batches: training in the first
        store.write_events(conn, _events(20, start=20))
        store.write_events(conn, _events(20, start=40))
    with engine.connect() as conn:
        plain = conn.execute(text("SELECT count(*) FROM events WHERE raw_dict_id IS NULL"))
        assert plain.scalar_one() == 0
    assert len(_stored(engine)) == 60
    engine.dispose()


def test_datasettes_connections_get_the_function(tmp_path: Any) -> None:
    import sqlite3

    from archiver.operations.datasette_plugin import prepare_connection
    from archiver.storage import db

    engine = db.make_engine(f"sqlite:///{tmp_path}/a.db")
    db.upgrade(engine)
    store = Store(engine)
    with store.transaction() as conn:
        store.write_events(conn, _odd_events()[:2])
    engine.dispose()
    plain = sqlite3.connect(f"{tmp_path}/a.db")  # as Datasette opens it, plugin applied
    prepare_connection(plain)
    sql = "SELECT raw_json FROM v_event_raw_json ORDER BY event_pk"
    assert [r[0] for r in plain.execute(sql)] == [ev.event["raw_json"] for ev in _odd_events()[:2]]
    plain.close()


def test_a_training_that_cannot_run_leaves_plain_zstd_and_fails_nothing(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from archiver.storage import db

    def no_processes(*args: Any, **kwargs: Any) -> Any:
        raise OSError("no processes here")

    monkeypatch.setattr(rawjson, "ProcessPoolExecutor", no_processes)
    monkeypatch.setattr(rawtrain, "TRAIN_AFTER", 10)
    engine = db.make_engine(f"sqlite:///{tmp_path}/a.db")
    db.upgrade(engine)
    store = Store(engine)
    for start in (0, 20):
        with store.transaction() as conn:
            store.write_events(conn, _events(20, start=start))
    assert store.raw_codec() == rawjson.PLAIN
    assert len(_stored(engine)) == 40
    engine.dispose()
