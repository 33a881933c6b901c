"""A rate-limit wait ends when its project's walk stops, not only when the run's does.

With several syncs on one PostgreSQL archive, a project whose lease another process took over
is handed over: its walk stops (its :class:`ProjectStop`), the run goes on with the others.
A walk thread of that project waiting out a rate limit (a ``Retry-After`` of ten minutes,
say) must stop waiting then, not sleep on for the rest of the wait with its thread, while
the run's other projects wait for it. The client's clock is a fake one; the walk's wait ends
on the project's stop event, never on time passing.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from archiver.config import Settings
from archiver.sentry.client import SentryClient
from archiver.storage import db
from archiver.storage.store import Store
from archiver.sync.engine import Syncer
from archiver.sync.handoff import ProjectStop, Shutdown
from archiver.sync.state import IssueWalk, WalkStatus

TOKEN = "project-stop-token"
NOW = 1_700_000_000.0
ISSUE, PROJECT = 42, 7


class LimitedServer:
    """Every request answers 429 with ``Retry-After: 600``; ``asked`` is set at the first."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.asked = threading.Event()

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        self.asked.set()
        return httpx.Response(429, json={"detail": "slow down"}, headers={"Retry-After": "600"})


@pytest.fixture
def archive(tmp_path: Path) -> Iterator[Store]:
    engine = db.make_engine(f"sqlite:///{tmp_path}/archive.db")
    db.upgrade(engine)
    yield Store(engine)
    engine.dispose()


def test_a_handed_over_projects_walk_ends_while_a_long_retry_after_wait_is_pending(
    archive: Store,
) -> None:
    run_stop = threading.Event()
    server = LimitedServer()
    client = SentryClient(
        "https://sentry.example.com/",
        TOKEN,
        transport=httpx.MockTransport(server.handler),
        clock=lambda: NOW,  # the fake clock: the wait is the Retry-After, not a window
        stop=run_stop,
    )
    settings = Settings(
        url="https://sentry.example.com/",
        token=TOKEN,
        org="acme",
        db=str(archive.engine.url),
        concurrency=1,
        workers=0,
    )
    syncer = Syncer(client, archive, settings, stop=run_stop)
    project_stop = ProjectStop(run_stop)
    walk = IssueWalk(ISSUE, PROJECT, WalkStatus.PENDING)
    ended = threading.Event()

    def walk_project() -> None:
        syncer.walk_issues([walk], Shutdown(project_stop))
        ended.set()

    walker = threading.Thread(target=walk_project, daemon=True)
    try:
        with client:
            walker.start()
            assert server.asked.wait(30), "the walk never asked for its page"
            project_stop.set()  # handed over: another process took the project's lease
            walker.join(timeout=60)  # the wait was 600 s; the stop must end it now
            assert ended.is_set(), "the walk slept on through its project's handover"
    finally:
        run_stop.set()  # (a failing run: release the sleeping thread)
        walker.join(timeout=30)
    assert len(server.requests) == 1  # no retry once the project stopped
    assert client.stats.rate_limited_waits == 1
