"""The page's lookup of stored events (``Store._existing``) on PostgreSQL: an index probe per
event of the page, whatever the table's statistics say.

A backfill fills ``events`` faster than autovacuum analyzes it: with no statistics the
planner guessed a project's events few, and read every stored event of the project through
``(project_id, date_created)`` for each page, a lookup that grew with the archive (7 to 12
ms a page at 5,000 events of one project, most of the writer's wait for it).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, event, text

from archiver.storage.store import Store

PROJECT = 5


def test_the_lookup_probes_the_natural_key_without_statistics(pg_engine: Engine) -> None:
    store = Store(pg_engine)
    with store.transaction() as conn:
        store.ensure_projects(conn, [PROJECT])
        conn.execute(
            text(
                "INSERT INTO events (project_id, event_id, has_detail, is_full, problem_count,"
                " archived_at, updated_at, date_created)"
                " SELECT :p, md5(n::text), false, false, 0, now(), now(), now()"
                " FROM generate_series(1, 5000) AS n"
            ),
            {"p": PROJECT},
        )
    keys = [(PROJECT, f"{n:032x}") for n in range(100)]
    with pg_engine.connect() as conn:
        assert (
            conn.execute(
                text("SELECT reltuples FROM pg_class WHERE relname = 'events'")
            ).scalar_one()
            < 0
        )  # never analyzed, as in a backfill
        sent: list[tuple[str, Any]] = []

        def on_statement(*args: Any) -> None:
            sent.append((args[2], args[3]))

        event.listen(conn, "before_cursor_execute", on_statement)
        store._existing(conn, keys)
        event.remove(conn, "before_cursor_execute", on_statement)
        ((statement, parameters),) = sent
        plan = "\n".join(r[0] for r in conn.exec_driver_sql("EXPLAIN " + statement, parameters))
    assert "uq_events_project_id_event_id" in plan, plan
    assert "date_created" not in plan, plan
