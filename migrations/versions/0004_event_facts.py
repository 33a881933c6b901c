"""event facts on events: views read narrow indexes, not the wide rows

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 23:30:00.000000

The views of 0003 computed, on every query and for every event, the UTC day, the user key and
(through joins over exceptions and ~10 frames per event) the raised exception and its top
in-app frame, reading the wide ``events`` rows (``raw_json`` inline). On a 1M-event SQLite
archive whole-archive recipes took 1.4-15.5 s.

This revision keeps those facts on ``events`` (computed at write time by
``archiver.normalize.event_facts``; older events are backfilled here with the SQL of the 0003
views), redefines the views over them with the same columns and meaning, and gives SQLite
covering indexes in the orders the views group by (SQLite matches GROUP BY terms to index
columns in any order), so each view reads one narrow index and never the table
(``NEW_INDEXES`` says which). ``ix_events_release_users``, ``ix_events_environment_users`` and
``ix_events_issue_users`` replace ``ix_events_release``, ``ix_events_environment`` and
``ix_events_issue_id_date_created``: they lead with the same first column, so lookups by
release, environment or issue are still index lookups (issue and date: a range within the issue).

Dropped: ``ix_frames_top_inapp`` and ``ix_exceptions_is_last_type`` (0003 made them for the
views, which no longer read frames or exceptions; every frame index costs the sync writer time
per frame row, tens per event).

``ix_events_day_exceptions`` and ``ix_events_crash_frames`` are created on SQLite only (see
``NEW_INDEXES``). Text that goes into these indexes is cut to 1,000 characters, as other indexed text is (full
values stay in the user columns and in ``frames``). An event with several ``is_last``
exceptions (only a payload with two exception entries has that; Sentry sends one) now counts
once, by its highest-positioned one; 0003 counted it once per such exception.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXED_MAX = 1000  # archiver.normalize.INDEXED_MAX, frozen here

COLUMNS: list[tuple[str, sa.types.TypeEngine[Any]]] = [
    ("day", sa.Date()),
    ("user_key", sa.Text()),
    ("exception_position", sa.Integer()),
    ("exception_type", sa.Text()),
    ("crash_position", sa.Integer()),
    ("crash_function", sa.Text()),
    ("crash_module", sa.Text()),
    ("crash_filename", sa.Text()),
    ("crash_lineno", sa.BigInteger()),
]

# The 0003 views' definitions of the facts, for events already archived.
DAY = {
    "sqlite": "substr(events.date_created, 1, 10)",
    "postgresql": "((events.date_created) AT TIME ZONE 'UTC')::date",
}
BACKFILL = f"""
UPDATE events SET ({', '.join(name for name, _ in COLUMNS)}) = (
    SELECT {{day}},
           substr(COALESCE('id:' || events.user_id, 'email:' || events.user_email,
                           'username:' || events.user_username,
                           'ip:' || events.user_ip_address), 1, {INDEXED_MAX}),
           x.position, substr(x.type, 1, {INDEXED_MAX}),
           f.position, substr(f.function, 1, {INDEXED_MAX}), substr(f.module, 1, {INDEXED_MAX}),
           substr(f.filename, 1, {INDEXED_MAX}), f.lineno
    FROM (SELECT 1 AS one) o
    LEFT JOIN exceptions x
      ON x.event_pk = events.id
     AND x.position = (SELECT max(x2.position) FROM exceptions x2
                       WHERE x2.event_pk = events.id AND x2.is_last = true)
    LEFT JOIN frames f
      ON f.event_pk = events.id AND f.stack_kind = 'exception' AND f.stack_index = x.position
     AND f.is_raw = false
     AND f.position = (
         SELECT max(g.position) FROM frames g
         WHERE g.event_pk = events.id AND g.stack_kind = 'exception'
           AND g.stack_index = x.position AND g.is_raw = false AND g.in_app = true)
)
"""

# Same names, columns and meaning as in 0003; in dependency order.
VIEWS: list[tuple[str, str]] = [
    ("v_events", """
SELECT e.id AS event_pk, e.project_id, p.slug AS project_slug, e.issue_id, e.event_id,
       e.date_created, e.day, e.level, e.environment, e.release, e.title, e.user_key
FROM events e
JOIN projects p ON p.id = e.project_id
"""),
    ("v_project_daily", """
SELECT d.project_id, p.slug AS project_slug, d.day, d.events, d.issues, d.users
FROM (
    SELECT e.project_id, e.day, count(*) AS events,
           count(DISTINCT e.issue_id) AS issues, count(DISTINCT e.user_key) AS users
    FROM events e
    GROUP BY e.project_id, e.day
) d
JOIN projects p ON p.id = d.project_id
"""),
    ("v_issue_daily", """
SELECT e.issue_id, e.project_id, e.day, count(*) AS events,
       count(DISTINCT e.user_key) AS users,
       min(e.date_created) AS first_seen, max(e.date_created) AS last_seen
FROM events e
WHERE e.issue_id IS NOT NULL
GROUP BY e.issue_id, e.project_id, e.day
"""),
    ("v_exception_types_daily", """
SELECT e.project_id, e.day, e.exception_type, count(*) AS events,
       count(DISTINCT e.issue_id) AS issues
FROM events e
WHERE e.exception_position IS NOT NULL
GROUP BY e.project_id, e.day, e.exception_type
"""),
    ("v_crash_frames", """
SELECT e.id AS event_pk, e.project_id, e.issue_id, e.date_created, e.day,
       e.exception_type, e.crash_function AS function, e.crash_module AS module,
       e.crash_filename AS filename, e.crash_lineno AS lineno
FROM events e
WHERE e.crash_position IS NOT NULL
"""),
    ("v_top_inapp_frames", """
SELECT e.project_id, e.crash_function AS function, e.crash_module AS module,
       e.crash_filename AS filename, count(*) AS events, count(DISTINCT e.issue_id) AS issues,
       min(e.date_created) AS first_seen, max(e.date_created) AS last_seen
FROM events e
WHERE e.crash_position IS NOT NULL
GROUP BY e.project_id, e.crash_function, e.crash_module, e.crash_filename
"""),
    ("v_release_errors", """
SELECT e.project_id, e.release, count(*) AS events, count(DISTINCT e.issue_id) AS issues,
       count(DISTINCT e.user_key) AS users,
       min(e.date_created) AS first_seen, max(e.date_created) AS last_seen
FROM events e
WHERE e.release IS NOT NULL
GROUP BY e.project_id, e.release
"""),
    ("v_environment_events", """
SELECT e.project_id, e.environment, count(*) AS events, count(DISTINCT e.issue_id) AS issues,
       count(DISTINCT e.user_key) AS users,
       min(e.date_created) AS first_seen, max(e.date_created) AS last_seen
FROM events e
GROUP BY e.project_id, e.environment
"""),
    ("v_issue_users", """
SELECT i.id AS issue_id, i.project_id, i.short_id, i.title, u.events, u.users,
       u.first_seen, u.last_seen
FROM (
    SELECT e.issue_id, count(*) AS events, count(DISTINCT e.user_key) AS users,
           min(e.date_created) AS first_seen, max(e.date_created) AS last_seen
    FROM events e
    WHERE e.issue_id IS NOT NULL
    GROUP BY e.issue_id
) u
JOIN issues i ON i.id = u.issue_id
"""),
]

# (name, table, columns, SQLite only): covering indexes of the views (see the docstring). Each
# leads with the columns its views group by (SQLite matches GROUP BY terms in any order), then
# user_key: count(DISTINCT user_key) then meets each group's keys in order, several times
# cheaper. The two with three text columns of up to 1,000 characters each are SQLite's only: a
# PostgreSQL index entry holds at most 2,704 bytes (and PostgreSQL scans events cheaply, its
# raw_json being stored out of line).
NEW_INDEXES: list[tuple[str, str, list[str], bool]] = [
    # v_events, v_project_daily, v_issue_daily (recipes filter them by day).
    ("ix_events_day_users", "events",
     ["day", "project_id", "user_key", "issue_id", "date_created"], False),
    # v_exception_types_daily, v_crash_frames.
    ("ix_events_day_exceptions", "events",
     ["day", "project_id", "exception_type", "issue_id", "exception_position",
      "crash_position", "crash_filename", "crash_lineno", "crash_function"], True),
    # v_top_inapp_frames.
    ("ix_events_crash_frames", "events",
     ["project_id", "crash_function", "crash_module", "crash_filename", "issue_id",
      "date_created", "crash_position"], True),
    # v_release_errors, v_environment_events, v_issue_users; they lead with the columns of the
    # indexes they replace, so lookups by release, environment or issue stay index lookups.
    ("ix_events_release_users", "events",
     ["release", "project_id", "user_key", "issue_id", "date_created"], False),
    ("ix_events_environment_users", "events",
     ["environment", "project_id", "user_key", "issue_id", "date_created"], False),
    ("ix_events_issue_users", "events", ["issue_id", "user_key", "date_created"], False),
]
# Indexes this revision drops (recreated by the downgrade).
OLD_INDEXES: list[tuple[str, str, list[str]]] = [
    ("ix_events_release", "events", ["release"]),
    ("ix_events_environment", "events", ["environment"]),
    ("ix_events_issue_id_date_created", "events", ["issue_id", "date_created"]),
    ("ix_exceptions_is_last_type", "exceptions", ["is_last", "type"]),
    ("ix_frames_top_inapp", "frames",
     ["event_pk", "stack_kind", "stack_index", "is_raw", "in_app", "position"]),
]


def _previous_views() -> ModuleType:
    """Revision 0003 (its frozen view SQL, for the downgrade)."""
    path = Path(__file__).with_name("0003_views.py")
    spec = importlib.util.spec_from_file_location("_sentry_archiver_0003_views", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    for name, _ in reversed(VIEWS):
        op.execute(f"DROP VIEW IF EXISTS {name}")
    for name, type_ in COLUMNS:
        op.add_column("events", sa.Column(name, type_, nullable=True))
    # Before the new indexes exist (an UPDATE would maintain them) and while ix_frames_top_inapp
    # still finds each stack's top in-app frame in one seek.
    op.execute(BACKFILL.format(day=DAY.get(dialect, DAY["postgresql"])))
    for name, table, _ in OLD_INDEXES:
        op.drop_index(name, table_name=table)
    for name, table, columns, sqlite_only in NEW_INDEXES:
        if dialect == "sqlite" or not sqlite_only:
            op.create_index(name, table, columns, unique=False)
    for name, sql in VIEWS:
        op.execute(f"CREATE VIEW {name} AS {sql.strip()}")


def downgrade() -> None:
    previous = _previous_views()
    dialect = op.get_bind().dialect.name
    for name, _ in reversed(VIEWS):
        op.execute(f"DROP VIEW IF EXISTS {name}")
    for name, table, _, sqlite_only in reversed(NEW_INDEXES):
        if dialect == "sqlite" or not sqlite_only:
            op.drop_index(name, table_name=table)
    for name, table, columns in reversed(OLD_INDEXES):
        op.create_index(name, table, columns, unique=False)
    for name, _ in reversed(COLUMNS):
        # Native on PostgreSQL and on SQLite 3.35+ (a batch copy of events would rewrite it all).
        op.execute(f"ALTER TABLE events DROP COLUMN {name}")
    for name, template in previous.VIEWS:
        op.execute(f"CREATE VIEW {name} AS {previous._sql(template, dialect).strip()}")
