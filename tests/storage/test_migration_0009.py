"""Migration 0009 on an archive of the 0008 schema with problem rows: each gets attempts 0."""

from __future__ import annotations

from sqlalchemy import Connection, text

from archiver.storage import db

ROWS = [
    (1, 0, "$", "detail_unusable", "the event detail endpoint's answer is unusable: 404"),
    (1, 1, "$.tags", "not_a_list", None),
    (2, 0, "$", "detail_unusable", "it names no event id"),
]


def _problems(conn: Connection) -> list[tuple[object, ...]]:
    return [
        tuple(r)
        for r in conn.execute(
            text(
                "SELECT event_pk, position, path, problem, detail FROM event_problems ORDER BY 1, 2"
            )
        )
    ]


def test_upgrade_from_0008_counts_no_attempt_yet_and_downgrade_keeps_the_rows(
    empty_db_url: str,
) -> None:
    engine = db.make_engine(empty_db_url)
    try:
        db.upgrade(engine, "0008")
        now = "2026-01-01 00:00:00.000000" if engine.dialect.name == "sqlite" else "2026-01-01Z"
        with engine.begin() as conn:
            conn.execute(
                text("INSERT INTO projects (id, archived_at, updated_at) VALUES (1, :t, :t)"),
                {"t": now},
            )
            conn.execute(
                text(
                    "INSERT INTO events (id, project_id, event_id, raw_json, raw_sha256, "
                    "archived_at, updated_at) VALUES (:id, 1, :eid, '{}', 'x', :t, :t)"
                ),
                [{"id": i, "eid": f"{i:032x}", "t": now} for i in (1, 2)],
            )
            conn.execute(
                text(
                    "INSERT INTO event_problems (event_pk, position, path, problem, detail) "
                    "VALUES (:e, :p, :path, :problem, :detail)"
                ),
                [dict(zip(("e", "p", "path", "problem", "detail"), r, strict=True)) for r in ROWS],
            )
        db.upgrade(engine)
        assert db.schema_diff(engine) == []
        with engine.connect() as conn:
            assert _problems(conn) == ROWS
            attempts = conn.execute(text("SELECT attempts FROM event_problems")).scalars().all()
            assert attempts == [0, 0, 0]
        with engine.begin() as conn:  # a row written without it gets the default too
            conn.execute(
                text(
                    "INSERT INTO event_problems (event_pk, position, path, problem) "
                    "VALUES (2, 1, '$', 'x')"
                )
            )
            added = "event_problems WHERE event_pk = 2 AND position = 1"
            assert conn.execute(text(f"SELECT attempts FROM {added}")).scalar_one() == 0
            conn.execute(text(f"DELETE FROM {added}"))
            conn.execute(text("UPDATE event_problems SET attempts = 3 WHERE event_pk = 2"))
        db.downgrade(engine, "0008")
        with engine.connect() as conn:
            assert _problems(conn) == ROWS
        db.upgrade(engine)
        with engine.connect() as conn:
            assert _problems(conn) == ROWS
    finally:
        engine.dispose()
