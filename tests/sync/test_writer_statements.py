"""What a page costs the database: the writer's statements per page, on both databases.

On PostgreSQL every statement is a round trip during which the writer (the sync's bottleneck
there) waits, so statements that repeat what this run already committed are left out:
placeholder issues and projects ensured, the walked issue's ``gone_at`` cleared, a pool
checkout (and its ping) per page, ``SET LOCAL synchronous_commit``, and ``nextval`` for
every page's new events. Each is remembered only once committed: a rolled-back page
forgets nothing it did not write.
"""

from __future__ import annotations

import re
import shutil
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, text

from archiver.errors import LockLostError
from archiver.storage.store import Store
from archiver.sync.handoff import Handed, Inbox, InFlight, PageWork, Shutdown, WalkEnded
from archiver.sync.report import Progress, SyncReport
from archiver.sync.spool import PageFiles
from archiver.sync.state import IssueWalk, WalkStatus
from archiver.sync.workers import PageJob, SpooledEvent, normalize_spooled_page
from archiver.sync.writer import Writer

PROJECT = 1


def pages(page_body: bytes, tmp_path: Path, dialect: str, count: int = 3) -> Iterator[PageWork]:
    """The simulator's page as ``count`` pages of one issue's walk, each with its own files
    (the writer removes a page's files once it is committed)."""
    body, rows = tmp_path / "page.body", tmp_path / "page.rows"
    body.write_bytes(page_body)
    out = normalize_spooled_page(str(body), str(rows), PageJob(PROJECT, 0, dialect))
    assert isinstance(out, list)
    events = [e for e in out if isinstance(e, SpooledEvent)]
    (issue,) = {e.issue_id for e in events}
    assert issue is not None
    size = -(-len(events) // count)
    for n in range(count):
        copy = tmp_path / f"page{n}.rows"
        shutil.copyfile(rows, copy)
        walk = IssueWalk(issue, PROJECT, WalkStatus.WALKING, walk_cursor=f"c{n}")
        chunk: list[SpooledEvent | Any] = list(events[n * size : (n + 1) * size])
        yield PageWork(walk, chunk, [], None, 0, PageFiles(str(body), str(copy)))


@contextmanager
def recorded(engine: Engine) -> Iterator[tuple[list[str], list[int]]]:
    """The statements sent through SQLAlchemy (COPY goes to the driver: not here), and the
    pool checkouts (each one a ping on PostgreSQL)."""
    statements: list[str] = []
    checkouts: list[int] = []

    def on_statement(*args: Any) -> None:
        statements.append(" ".join(str(args[2]).split()))

    def on_checkout(*args: Any) -> None:
        checkouts.append(1)

    event.listen(engine, "before_cursor_execute", on_statement)
    event.listen(engine.pool, "checkout", on_checkout)
    try:
        yield statements, checkouts
    finally:
        event.remove(engine, "before_cursor_execute", on_statement)
        event.remove(engine.pool, "checkout", on_checkout)


def writer(store: Store, guard: Any = None) -> Writer:
    inbox = Inbox(Shutdown(threading.Event()), size=10)
    return Writer(store, inbox, InFlight(1 << 30), SyncReport(), Progress(), guard=guard)


def run(w: Writer, items: list[Handed]) -> None:
    """``Writer.run`` over ``items``, its walks already over."""
    for item in items:
        assert w.inbox.put(item)
    done: Future[None] = Future()
    done.set_result(None)
    w.run([done])


def per_page(statements: list[str]) -> list[list[str]]:
    """The statements of each page transaction (each ends with the checkpoint's upsert)."""
    out: list[list[str]] = [[]]
    for s in statements:
        out[-1].append(s)
        if s.startswith("INSERT INTO sync_issues"):
            out.append([])
    return [p for p in out if p and p[-1].startswith("INSERT INTO sync_issues")]


def matching(page: list[str], pattern: str) -> list[str]:
    return [s for s in page if re.search(pattern, s)]


def test_later_pages_skip_what_the_run_already_committed(
    engine: Engine, page_body: bytes, tmp_path: Path
) -> None:
    store = Store(engine)
    w = writer(store)
    with recorded(engine) as (statements, _):
        run(w, list(pages(page_body, tmp_path, engine.dialect.name)))
    first, *later = per_page(statements)
    assert len(later) == 2
    assert matching(first, "^INSERT INTO issues")
    assert matching(first, "^UPDATE issues SET gone")
    for page in later:
        assert not matching(page, "^INSERT INTO (issues|projects)"), page
        assert not matching(page, "^UPDATE issues"), page
        assert not matching(page, "synchronous_commit"), page
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM events")).scalar_one() > 0
        assert conn.execute(text("SELECT count(*) FROM issues")).scalar_one() == 1


def test_postgresql_pages_share_one_connection_and_draw_ids_in_blocks(
    pg_engine: Engine, page_body: bytes, tmp_path: Path
) -> None:
    store = Store(pg_engine)
    w = writer(store)
    with recorded(pg_engine) as (statements, checkouts):
        run(w, list(pages(page_body, tmp_path, "postgresql")))
    assert len(checkouts) == 1  # not one checkout (and ping) per page
    assert len(matching(statements, "nextval")) == 1  # one block for the three pages
    # set for the session and reset at the end, not a SET LOCAL per page
    assert len(matching(statements, "synchronous_commit")) == 2
    # and the connection went back to the pool as it came: commits wait for the disk
    with pg_engine.connect() as conn:
        assert conn.exec_driver_sql("SHOW synchronous_commit").scalar_one() == "on"
    with pg_engine.connect() as conn:
        ids = [r[0] for r in conn.execute(text("SELECT id FROM events ORDER BY id"))]
    assert len(ids) == len(set(ids)) > 0


def test_a_rolled_back_page_is_not_remembered(
    engine: Engine, page_body: bytes, tmp_path: Path
) -> None:
    """The first page's commit fails (its lock lost): the issue it ensured and the gone_at it
    cleared rolled back with it, so the next page does both again."""
    store = Store(engine)
    first, second = pages(page_body, tmp_path, engine.dialect.name, count=2)
    issue = first.walk.issue_id
    with store.transaction() as conn:
        store.ensure_projects(conn, [PROJECT])
        conn.execute(
            text(
                "INSERT INTO issues (id, project_id, gone_at, archived_at, updated_at)"
                " VALUES (:i, :p, :t, :t, :t)"
            ),
            {"i": issue, "p": PROJECT, "t": "2026-01-01 00:00:00"},
        )
    failures = [LockLostError("gone for a moment")]

    def guard(conn: Any, project_id: int) -> None:
        if failures:
            raise failures.pop()

    w = writer(store, guard)
    with pytest.raises(LockLostError):
        w.write_page(first)
    with recorded(engine) as (statements, _):
        w.write_page(second)
    assert matching(statements, "^UPDATE issues SET gone")
    with engine.connect() as conn:
        gone = conn.execute(text("SELECT gone_at FROM issues WHERE id = :i"), {"i": issue})
        assert gone.scalar_one() is None


def test_an_issue_marked_gone_is_cleared_again_when_it_answers(
    engine: Engine, page_body: bytes, tmp_path: Path
) -> None:
    store = Store(engine)
    first, second = pages(page_body, tmp_path, engine.dialect.name, count=2)
    ended = WalkEnded(first.walk, WalkStatus.GONE)
    run(writer(store), [first, ended, second])
    with engine.connect() as conn:
        gone = conn.execute(
            text("SELECT gone_at FROM issues WHERE id = :i"), {"i": first.walk.issue_id}
        )
        assert gone.scalar_one() is None
