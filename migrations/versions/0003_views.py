"""query views and the indexes behind them

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 21:30:00.000000

Views answer the common questions without knowing the schema (README, "Cookbook"). The SQL is
frozen here on purpose: a later change to a view is a new migration, never an edit of this one.
Both databases get the same columns with the same meaning; only the day bucket differs in type
(ISO text 'YYYY-MM-DD' on SQLite, where timestamps are ISO text; ``date`` on PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The UTC calendar day of a timestamp column.
DAY = {
    "sqlite": "substr({col}, 1, 10)",
    "postgresql": "(({col}) AT TIME ZONE 'UTC')::date",
}

# The user an event happened to, spelled like Sentry's own `sentry:user` tag (id, else email,
# else username, else IP address), so distinct counts agree with Sentry's "users" column.
USER_KEY = (
    "COALESCE('id:' || {e}.user_id, 'email:' || {e}.user_email, "
    "'username:' || {e}.user_username, 'ip:' || {e}.user_ip_address)"
)

# name -> SQL with {day_created} (the event's day) and {user_key} placeholders. In dependency
# order: a view only uses views above it.
VIEWS: list[tuple[str, str]] = [
    ("v_events", """
SELECT e.id AS event_pk, e.project_id, p.slug AS project_slug, e.issue_id, e.event_id,
       e.date_created, {day_created} AS day, e.level, e.environment, e.release, e.title,
       {user_key} AS user_key
FROM events e
JOIN projects p ON p.id = e.project_id
"""),
    ("v_project_daily", """
SELECT d.project_id, p.slug AS project_slug, d.day, d.events, d.issues, d.users
FROM (
    SELECT e.project_id, {day_created} AS day, count(*) AS events,
           count(DISTINCT e.issue_id) AS issues, count(DISTINCT {user_key}) AS users
    FROM events e
    GROUP BY e.project_id, {day_created}
) d
JOIN projects p ON p.id = d.project_id
"""),
    ("v_issue_daily", """
SELECT e.issue_id, e.project_id, {day_created} AS day, count(*) AS events,
       count(DISTINCT {user_key}) AS users,
       min(e.date_created) AS first_seen, max(e.date_created) AS last_seen
FROM events e
WHERE e.issue_id IS NOT NULL
GROUP BY e.issue_id, e.project_id, {day_created}
"""),
    ("v_exception_types_daily", """
SELECT e.project_id, {day_created} AS day, x.type AS exception_type, count(*) AS events,
       count(DISTINCT e.issue_id) AS issues
FROM exceptions x
JOIN events e ON e.id = x.event_pk
WHERE x.is_last = true
GROUP BY e.project_id, {day_created}, x.type
"""),
    ("v_crash_frames", """
SELECT e.id AS event_pk, e.project_id, e.issue_id, e.date_created, {day_created} AS day,
       x.type AS exception_type, f.function, f.module, f.filename, f.lineno
FROM exceptions x
JOIN events e ON e.id = x.event_pk
JOIN frames f
  ON f.event_pk = x.event_pk AND f.stack_kind = 'exception' AND f.stack_index = x.position
 AND f.is_raw = false
 AND f.position = (
     SELECT max(g.position) FROM frames g
     WHERE g.event_pk = x.event_pk AND g.stack_kind = 'exception'
       AND g.stack_index = x.position AND g.is_raw = false AND g.in_app = true)
WHERE x.is_last = true
"""),
    ("v_top_inapp_frames", """
SELECT c.project_id, c.function, c.module, c.filename, count(*) AS events,
       count(DISTINCT c.issue_id) AS issues,
       min(c.date_created) AS first_seen, max(c.date_created) AS last_seen
FROM v_crash_frames c
GROUP BY c.project_id, c.function, c.module, c.filename
"""),
    ("v_release_errors", """
SELECT e.project_id, e.release, count(*) AS events, count(DISTINCT e.issue_id) AS issues,
       count(DISTINCT {user_key}) AS users,
       min(e.date_created) AS first_seen, max(e.date_created) AS last_seen
FROM events e
WHERE e.release IS NOT NULL
GROUP BY e.project_id, e.release
"""),
    ("v_environment_events", """
SELECT e.project_id, e.environment, count(*) AS events, count(DISTINCT e.issue_id) AS issues,
       count(DISTINCT {user_key}) AS users,
       min(e.date_created) AS first_seen, max(e.date_created) AS last_seen
FROM events e
GROUP BY e.project_id, e.environment
"""),
    ("v_issue_users", """
SELECT i.id AS issue_id, i.project_id, i.short_id, i.title, u.events, u.users,
       u.first_seen, u.last_seen
FROM (
    SELECT e.issue_id, count(*) AS events, count(DISTINCT {user_key}) AS users,
           min(e.date_created) AS first_seen, max(e.date_created) AS last_seen
    FROM events e
    WHERE e.issue_id IS NOT NULL
    GROUP BY e.issue_id
) u
JOIN issues i ON i.id = u.issue_id
"""),
]

# (name, table, columns): indexes the views and the cookbook recipes lean on.
INDEXES: list[tuple[str, str, list[str]]] = [
    # The raised exception of every event, by type: v_exception_types_daily, v_crash_frames.
    ("ix_exceptions_is_last_type", "exceptions", ["is_last", "type"]),
    # One seek finds the top in-app frame of a stack: v_crash_frames.
    ("ix_frames_top_inapp", "frames",
     ["event_pk", "stack_kind", "stack_index", "is_raw", "in_app", "position"]),
]


def _sql(template: str, dialect: str) -> str:
    day = DAY.get(dialect, DAY["postgresql"])
    return template.format(
        day_created=day.format(col="e.date_created"), user_key=USER_KEY.format(e="e")
    )


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns, unique=False)
    for name, template in VIEWS:
        op.execute(f"CREATE VIEW {name} AS {_sql(template, dialect).strip()}")


def downgrade() -> None:
    for name, _ in reversed(VIEWS):
        op.execute(f"DROP VIEW IF EXISTS {name}")
    for name, table, _ in reversed(INDEXES):
        op.drop_index(name, table_name=table)
