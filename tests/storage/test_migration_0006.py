"""Migration 0006 on an archive of the 0004 schema with events: the raw JSON comes out exact."""

from __future__ import annotations

import json

from sqlalchemy import Engine, text

from archiver.storage import db
from tests.storage.test_rawjson import ODD_TEXTS

N = 1100  # past the migration's training threshold (1000)


def _raws() -> list[str]:
    out = [
        json.dumps({"id": f"{i:032x}", "message": f"event {i}", "level": "error", "n": i})
        for i in range(N)
    ]
    out[:3] = ODD_TEXTS[:3]
    out.append(ODD_TEXTS[4])  # huge
    return out


def _fill_0004(engine: Engine, raws: list[str]) -> None:
    now = "2026-01-01 00:00:00.000000" if engine.dialect.name == "sqlite" else "2026-01-01Z"
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO projects (id, archived_at, updated_at) VALUES (1, :t, :t)"),
            {"t": now},
        )
        conn.execute(
            text(
                "INSERT INTO events (project_id, event_id, raw_json, raw_sha256, "
                "archived_at, updated_at) VALUES (1, :eid, :raw, 'x', :t, :t)"
            ),
            [{"eid": f"{i:032x}", "raw": raw, "t": now} for i, raw in enumerate(raws)],
        )


def _read(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return [
            r[0]
            for r in conn.execute(text("SELECT raw_json FROM v_event_raw_json ORDER BY event_pk"))
        ]


def test_upgrade_from_0004_compresses_every_event_exactly_and_downgrade_restores_it(
    empty_db_url: str,
) -> None:
    engine = db.make_engine(empty_db_url)
    try:
        db.upgrade(engine, "0004")
        raws = _raws()
        _fill_0004(engine, raws)
        db.upgrade(engine)
        assert db.schema_diff(engine) == []
        assert _read(engine) == raws
        with engine.connect() as conn:
            row = conn.execute(
                text(
                    "SELECT count(*), count(raw_json), count(raw_zstd), count(raw_dict_id) "
                    "FROM events"
                )
            ).one()
            dicts = conn.execute(text("SELECT count(*) FROM zstd_dictionaries")).scalar_one()
        if engine.dialect.name == "sqlite":
            assert tuple(row) == (len(raws), 0, len(raws), len(raws))
            assert dicts == 1
        else:
            assert tuple(row) == (len(raws), len(raws), 0, 0)
            assert dicts == 0
        db.downgrade(engine, "0004")
        with engine.connect() as conn:
            back = [r[0] for r in conn.execute(text("SELECT raw_json FROM events ORDER BY id"))]
        assert back == raws
        db.upgrade(engine)
        assert _read(engine) == raws
    finally:
        engine.dispose()
