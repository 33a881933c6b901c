"""The query views (migrations 0003 and 0004) return the right numbers on a hand-built archive."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, inspect, text

from archiver.normalize import normalize_event
from archiver.storage import db
from archiver.storage.store import Store
from scripts.cookbook import cell

VIEWS = {
    "v_events",
    "v_project_daily",
    "v_issue_daily",
    "v_exception_types_daily",
    "v_crash_frames",
    "v_top_inapp_frames",
    "v_release_errors",
    "v_environment_events",
    "v_issue_users",
}

API, WEB = 11, 12  # project ids
BOOM, SLOW, JS = 101, 102, 201  # issue ids


def frame(function: str, in_app: bool, lineno: int = 1) -> dict[str, Any]:
    return {
        "function": function,
        "module": f"app.{function}" if in_app else f"lib.{function}",
        "filename": f"{function}.py",
        "lineNo": lineno,
        "inApp": in_app,
    }


def event(
    n: int,
    when: str,
    *,
    issue: int,
    project: int,
    exc: list[tuple[str, list[dict[str, Any]]]],
    env: str | None = "production",
    release: str | None = "api@1.0",
    user: dict[str, Any] | None = None,
) -> dict[str, Any]:
    tags = [{"key": "level", "value": "error"}]
    if env is not None:
        tags.append({"key": "environment", "value": env})
    if release is not None:
        tags.append({"key": "release", "value": release})
    return {
        "eventID": f"{n:032x}",
        "projectID": str(project),
        "groupID": str(issue),
        "dateCreated": when,
        "title": exc[-1][0] if exc else "message",
        "tags": tags,
        "user": user,
        "entries": [
            {
                "type": "exception",
                "data": {
                    "values": [
                        {"type": t, "value": "x", "stacktrace": {"frames": frames}}
                        for t, frames in exc
                    ]
                },
            }
        ]
        if exc
        else [],
    }


def archive() -> list[dict[str, Any]]:
    boom = [frame("main", True, 1), frame("handler", True, 7), frame("lib_call", False, 99)]
    return [
        # Issue BOOM (api): 3 events on 2024-05-01 and 1 on 2024-05-02, two users (one by email).
        event(
            1,
            "2024-05-01T08:00:00Z",
            issue=BOOM,
            project=API,
            exc=[("ValueError", boom)],
            user={"id": "u1"},
        ),
        event(
            2,
            "2024-05-01T09:30:00Z",
            issue=BOOM,
            project=API,
            exc=[("ValueError", boom)],
            user={"id": "u1", "email": "a@example.com"},
        ),
        event(
            3,
            "2024-05-01T23:59:59Z",
            issue=BOOM,
            project=API,
            exc=[("ValueError", boom)],
            user={"email": "b@example.com"},
            release="api@1.1",
        ),
        event(
            4,
            "2024-05-02T00:00:00Z",
            issue=BOOM,
            project=API,
            exc=[("ValueError", boom)],
            release="api@1.1",
            env="staging",
        ),
        # Issue SLOW (api): a chained exception; the raised one (last) is TimeoutError, whose
        # top in-app frame is "fetch" (position 1), not the library frame above it.
        event(
            5,
            "2024-05-02T10:00:00Z",
            issue=SLOW,
            project=API,
            exc=[
                ("OSError", [frame("socket_read", True, 3)]),
                (
                    "TimeoutError",
                    [
                        frame("main", True, 1),
                        frame("fetch", True, 42),
                        frame("urlopen", False, 500),
                    ],
                ),
            ],
            user={"ip_address": "10.0.0.1"},
            env=None,
            release=None,
        ),
        # Issue JS (web): no in-app frame at all, so no crash frame.
        event(
            6,
            "2024-05-02T11:00:00Z",
            issue=JS,
            project=WEB,
            exc=[("TypeError", [frame("vendor", False, 1)])],
            user={"id": "u1"},
            release="web@2",
        ),
    ]


def projects_and_issues(store: Store, conn: Connection) -> None:
    """The projects and issues the hand-made archive's events belong to."""
    store.upsert_projects(
        conn,
        [
            {"id": API, "slug": "api", "organization_slug": "acme"},
            {"id": WEB, "slug": "web", "organization_slug": "acme"},
        ],
    )
    store.upsert_issues(
        conn,
        [
            {"id": BOOM, "project_id": API, "short_id": "API-1", "title": "ValueError"},
            {"id": SLOW, "project_id": API, "short_id": "API-2", "title": "TimeoutError"},
            {"id": JS, "project_id": WEB, "short_id": "WEB-1", "title": "TypeError"},
        ],
    )


def load(engine) -> None:
    store = Store(engine)
    with store.transaction() as conn:
        projects_and_issues(store, conn)
        store.write_events(conn, [normalize_event(p) for p in archive()])


def rows(engine, sql: str) -> list[tuple[str, ...]]:
    with engine.connect() as conn:
        return [tuple(cell(v) for v in r) for r in conn.execute(text(sql))]


def test_every_view_exists_and_is_not_schema_drift(engine):
    assert set(inspect(engine).get_view_names()) >= VIEWS
    assert db.schema_diff(engine) == []


def test_downgrade_drops_the_views(engine):
    db.downgrade(engine, "0002")
    assert not VIEWS & set(inspect(engine).get_view_names())
    db.upgrade(engine)
    assert set(inspect(engine).get_view_names()) >= VIEWS


def test_daily_views(engine):
    load(engine)
    assert rows(
        engine,
        "SELECT project_slug, day, events, issues, users FROM v_project_daily "
        "ORDER BY project_slug, day",
    ) == [
        ("api", "2024-05-01", "3", "1", "2"),  # id:u1 twice (the id wins over the email), email:b
        ("api", "2024-05-02", "2", "2", "1"),  # no user; ip:10.0.0.1
        ("web", "2024-05-02", "1", "1", "1"),
    ]
    assert rows(
        engine,
        "SELECT issue_id, day, events, users, first_seen, last_seen "
        "FROM v_issue_daily ORDER BY issue_id, day",
    ) == [
        (str(BOOM), "2024-05-01", "3", "2", "2024-05-01 08:00:00", "2024-05-01 23:59:59"),
        (str(BOOM), "2024-05-02", "1", "0", "2024-05-02 00:00:00", "2024-05-02 00:00:00"),
        (str(SLOW), "2024-05-02", "1", "1", "2024-05-02 10:00:00", "2024-05-02 10:00:00"),
        (str(JS), "2024-05-02", "1", "1", "2024-05-02 11:00:00", "2024-05-02 11:00:00"),
    ]
    assert rows(
        engine,
        "SELECT project_id, day, exception_type, events, issues "
        "FROM v_exception_types_daily ORDER BY project_id, day, exception_type",
    ) == [
        (str(API), "2024-05-01", "ValueError", "3", "1"),
        (str(API), "2024-05-02", "TimeoutError", "1", "1"),  # the cause OSError is not counted
        (str(API), "2024-05-02", "ValueError", "1", "1"),
        (str(WEB), "2024-05-02", "TypeError", "1", "1"),
    ]


def test_crash_frames_are_the_top_in_app_frame_of_the_raised_exception(engine):
    load(engine)
    assert rows(
        engine,
        "SELECT e.event_id, c.exception_type, c.function, c.lineno, c.day "
        "FROM v_crash_frames c JOIN events e ON e.id = c.event_pk "
        "ORDER BY e.event_id",
    ) == [
        (f"{n:032x}", "ValueError", "handler", "7", day)
        for n, day in [(1, "2024-05-01"), (2, "2024-05-01"), (3, "2024-05-01"), (4, "2024-05-02")]
    ] + [(f"{5:032x}", "TimeoutError", "fetch", "42", "2024-05-02")]
    assert rows(
        engine,
        "SELECT project_id, function, module, filename, events, issues, "
        "first_seen, last_seen FROM v_top_inapp_frames ORDER BY events DESC",
    ) == [
        (
            str(API),
            "handler",
            "app.handler",
            "handler.py",
            "4",
            "1",
            "2024-05-01 08:00:00",
            "2024-05-02 00:00:00",
        ),
        (
            str(API),
            "fetch",
            "app.fetch",
            "fetch.py",
            "1",
            "1",
            "2024-05-02 10:00:00",
            "2024-05-02 10:00:00",
        ),
    ]


def test_release_environment_and_user_views(engine):
    load(engine)
    assert rows(
        engine,
        "SELECT project_id, release, events, issues, users, first_seen, last_seen "
        "FROM v_release_errors ORDER BY project_id, release",
    ) == [
        (str(API), "api@1.0", "2", "1", "1", "2024-05-01 08:00:00", "2024-05-01 09:30:00"),
        (str(API), "api@1.1", "2", "1", "1", "2024-05-01 23:59:59", "2024-05-02 00:00:00"),
        (str(WEB), "web@2", "1", "1", "1", "2024-05-02 11:00:00", "2024-05-02 11:00:00"),
    ]
    envs = rows(
        engine,
        "SELECT project_id, COALESCE(environment, '-'), events, issues, users "
        "FROM v_environment_events",
    )
    assert sorted(envs) == [
        (str(API), "-", "1", "1", "1"),
        (str(API), "production", "3", "1", "2"),
        (str(API), "staging", "1", "1", "0"),
        (str(WEB), "production", "1", "1", "1"),
    ]
    assert rows(
        engine,
        "SELECT short_id, events, users, first_seen, last_seen FROM v_issue_users "
        "ORDER BY short_id",
    ) == [
        ("API-1", "4", "2", "2024-05-01 08:00:00", "2024-05-02 00:00:00"),
        ("API-2", "1", "1", "2024-05-02 10:00:00", "2024-05-02 10:00:00"),
        ("WEB-1", "1", "1", "2024-05-02 11:00:00", "2024-05-02 11:00:00"),
    ]
    assert rows(
        engine, "SELECT event_id, project_slug, user_key FROM v_events ORDER BY event_id"
    ) == [
        (f"{1:032x}", "api", "id:u1"),
        (f"{2:032x}", "api", "id:u1"),
        (f"{3:032x}", "api", "email:b@example.com"),
        (f"{4:032x}", "api", "NULL"),
        (f"{5:032x}", "api", "ip:10.0.0.1"),
        (f"{6:032x}", "web", "id:u1"),
    ]
