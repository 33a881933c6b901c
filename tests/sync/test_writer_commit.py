"""The writer's commits on PostgreSQL: not waited for on disk (``synchronous_commit = off``),
in its page transactions only; SQLite's are unchanged (WAL, ``synchronous=NORMAL``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Engine

from archiver.storage.store import Store
from archiver.sync.handoff import PageWork, WalkEnded
from archiver.sync.report import Progress, SyncReport
from archiver.sync.state import IssueWalk, WalkStatus
from archiver.sync.writer import Writer


def setting(conn: Connection) -> str:
    if conn.dialect.name != "postgresql":
        return "n/a"
    return str(conn.exec_driver_sql("SHOW synchronous_commit").scalar_one())


def test_the_writer_commits_pages_without_waiting_for_the_disk(engine: Engine) -> None:
    store = Store(engine)
    with store.transaction() as conn:
        store.ensure_issues(conn, {7: 1})
    seen: list[str] = []
    unused: Any = None  # write_page and write_end take no inbox and hold no budget
    writer = Writer(
        store,
        unused,
        unused,
        SyncReport(),
        Progress(),
        guard=lambda c, _project: seen.append(setting(c)),
    )
    walk = IssueWalk(issue_id=7, project_id=1, status=WalkStatus.WALKING, walk_cursor="c")
    files: Any = None  # the page has no spooled events
    writer.write_page(PageWork(walk, [], [], None, 0, files))
    writer.write_end(WalkEnded(walk, WalkStatus.FAILED, "boom"))
    off = "off" if engine.dialect.name == "postgresql" else "n/a"
    assert seen == [off, off]
    # only the writer's transactions: the session's setting is left as it was
    with store.transaction() as conn:
        assert setting(conn) in ("on", "n/a")
    with engine.connect() as conn:
        assert setting(conn) in ("on", "n/a")
    with store.transaction() as conn:
        walked = store.issue_walk(conn, 7)
    assert walked is not None
    assert walked["status"] == WalkStatus.FAILED.value
