"""A walk asks its next page while a worker still normalizes the last one (reading ahead).

The normalizer here runs in threads instead of processes and holds the first full page's
result until the server sees another event-list request: with one walk thread, only a walk
that reads ahead can send one. The hold gives up after a while (a walk that does not read
ahead would wait for it forever), and the test says whether the request came.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

import archiver.sync.engine as engine_module
import archiver.sync.prefetch as prefetch
from archiver.errors import ExitCode
from archiver.sentry.body import BodyFile
from archiver.simulator import SimulatedOrg, SimulatorServer
from archiver.simulator.server import Outcome
from archiver.sync.runner import execute_sync
from archiver.sync.workers import NotAList, PageJob, PageNormalizer, normalize_spooled_page
from tests.helpers import archived
from tests.sync.test_sync import TOKEN, settings

HOLD_SECONDS = 20.0  # only a walk that never reads ahead waits this long, once


class _Requests:
    """Counts the server's event-list requests; lets a thread wait for the next one."""

    def __init__(self, srv: SimulatorServer) -> None:
        self.count = 0
        self._cond = threading.Condition()
        dispatch = srv.dispatch

        def counted(method: str, target: str, headers: dict[str, str], base_url: str) -> Outcome:
            if "/issues/" in target and "/events/" in target:
                with self._cond:
                    self.count += 1
                    self._cond.notify_all()
            return dispatch(method, target, headers, base_url)

        srv.dispatch = counted  # type: ignore[method-assign]

    def wait_past(self, seen: int) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self.count > seen, timeout=HOLD_SECONDS)


def _held_normalizer(requests: _Requests, overlapped: list[bool]) -> type[PageNormalizer]:
    first = threading.Lock()

    class Held(PageNormalizer):
        """Normalizes in the test's threads; the first full page waits for a next request."""

        def __init__(self, workers: int, raw_codec: Any = None) -> None:
            super().__init__(0, raw_codec)
            self._threads = ThreadPoolExecutor(max_workers=2, thread_name_prefix="norm")

        def _normalize(
            self, body_path: str, rows_path: str, job: PageJob, seen: int
        ) -> list[Any] | NotAList:
            items = normalize_spooled_page(body_path, rows_path, job)
            full = isinstance(items, list) and len(items) == 100
            if full and first.acquire(blocking=False):  # only the first full page waits
                overlapped.append(requests.wait_past(seen))
            return items

        def spooled(self, body: BodyFile, rows_path: str, job: PageJob) -> Any:
            return self._normalize(body.path, rows_path, job, requests.count)

        def submit(
            self, body_path: str, rows_path: str, job: PageJob
        ) -> Callable[[], list[Any] | NotAList]:
            seen = requests.count
            future = self._threads.submit(self._normalize, body_path, rows_path, job, seen)
            return future.result

        def close(self) -> None:
            self._threads.shutdown(wait=True)
            super().close()

    return Held


def test_the_next_page_is_asked_while_the_last_one_is_normalized(
    monkeypatch: pytest.MonkeyPatch, db_url: str
) -> None:
    org = SimulatedOrg(seed=5, events=40)
    big = max(org.live_issues(), key=lambda i: i.times_seen)
    org.add_events(big.id, 450, at=int(org.now()) - 50, spread_seconds=3000)
    overlapped: list[bool] = []
    with SimulatorServer(org, token=TOKEN) as srv:
        requests = _Requests(srv)
        monkeypatch.setattr(engine_module, "PageNormalizer", _held_normalizer(requests, overlapped))
        monkeypatch.setattr(prefetch, "READ_AHEAD_AFTER_SECONDS", 0.0)  # a local server is fast
        result = execute_sync(settings(srv, org, db_url, concurrency=1))
        assert result.exit_code == ExitCode.OK
    assert overlapped == [True]
    assert archived(db_url) == org.truth()


@pytest.mark.parametrize(("after_seconds", "reads_ahead"), [(0.0, True), (3600.0, False)])
def test_only_a_slow_answer_is_read_ahead(
    monkeypatch: pytest.MonkeyPatch, db_url: str, after_seconds: float, reads_ahead: bool
) -> None:
    """Reading ahead parses each page once more in the sync process: worth it only when the
    answers are slow (a real Sentry), not against a server that answers at once."""
    import archiver.sync.walk as walk_module

    calls: list[str] = []
    read_keys = prefetch.read_keys

    def counted(body_path: str, detail_always: bool) -> Any:
        calls.append(body_path)
        return read_keys(body_path, detail_always)

    monkeypatch.setattr(walk_module, "read_keys", counted)
    monkeypatch.setattr(prefetch, "READ_AHEAD_AFTER_SECONDS", after_seconds)
    org = SimulatedOrg(seed=5, events=300)
    with SimulatorServer(org, token=TOKEN) as srv:
        result = execute_sync(settings(srv, org, db_url, concurrency=2))
    assert result.exit_code == ExitCode.OK
    assert bool(calls) is reads_ahead
    assert archived(db_url) == org.truth()


def test_time_spent_before_the_request_is_sent_does_not_make_an_answer_slow(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The read-ahead rule is about the server's answer time: a wait for a free slot (or for
    the interpreter, under CPU load) before the request leaves must not make it read ahead."""
    import archiver.sync.walk as walk_module
    from archiver.sentry.ratelimit import RateLimiter

    calls: list[str] = []
    read_keys = prefetch.read_keys

    def counted(body_path: str, detail_always: bool) -> Any:
        calls.append(body_path)
        return read_keys(body_path, detail_always)

    before = RateLimiter.before

    def slow_slot(self: RateLimiter, family: str, path: str = "", url: str = "") -> Any:
        if "/issues/" in path and "/events/" in path:  # the pages that could be read ahead
            time.sleep(0.3)  # as a busy slot or a loaded machine would hold the request back
        return before(self, family, path, url)

    monkeypatch.setattr(walk_module, "read_keys", counted)
    monkeypatch.setattr(RateLimiter, "before", slow_slot)
    monkeypatch.setattr(prefetch, "READ_AHEAD_AFTER_SECONDS", 0.25)
    org = SimulatedOrg(seed=5, events=20)
    db_url = f"sqlite:///{tmp_path / 'archive.db'}"  # the rule is the walk's, not the database's
    with SimulatorServer(org, token=TOKEN) as srv:
        result = execute_sync(settings(srv, org, db_url, concurrency=1))
    assert result.exit_code == ExitCode.OK
    assert calls == []
    assert archived(db_url) == org.truth()
