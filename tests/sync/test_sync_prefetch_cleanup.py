"""The unusual paths of reading ahead (:mod:`archiver.sync.prefetch`): nothing leaks, nothing
is written twice.

A walk asks page N+1 while a worker still normalizes page N, from the keys it read of page N
itself. Three ways that page read ahead is not used:

* the worker's keys are not the ones read ahead: page N is asked again the sequential way,
  and the page read ahead (asked from the wrong state) is dropped;
* the run is stopped while the page read ahead is held;
* page N's worker fails while the page read ahead is held: the issue fails.

Each time the dropped page's spool files must be removed and its in-flight bytes given back
exactly once, and the archive must end exact. The normalizer runs in the test's threads
(as in ``test_sync_prefetch``) so that page N's worker can wait until the page after it has
been read ahead: the order of events is fixed, not left to timing.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pytest

import archiver.sync.engine as engine_module
import archiver.sync.prefetch as prefetch
import archiver.sync.walk as walk_module
from archiver.errors import ExitCode, InterruptedRun
from archiver.sentry.body import BodyFile
from archiver.simulator import SimulatedOrg, SimulatorServer
from archiver.sync import keyset
from archiver.sync.handoff import InFlight
from archiver.sync.runner import SyncOutcome, execute_sync
from archiver.sync.spool import Spool
from archiver.sync.workers import NotAList, PageJob, PageNormalizer, normalize_spooled_page
from tests.helpers import archived
from tests.sync.test_sync import TOKEN, settings

WAIT_SECONDS = 20.0  # only a broken test waits this long
FULL_PAGE = 100


@dataclass
class Watch:
    """What the run did with its pages read ahead and its in-flight bytes."""

    ahead_done: threading.Event = field(default_factory=threading.Event)
    dropped: list[tuple[str, str, bool]] = field(default_factory=list)  # files, removed?
    budgets: list[Counted] = field(default_factory=list)
    spool_left: list[list[str]] = field(default_factory=list)
    # Called in page N's worker (the first full page read ahead) before it answers.
    on_first_full_page: Callable[[], None] | None = None


class Counted(InFlight):
    """An :class:`InFlight` that also keeps the exact sum (``release`` clamps at zero, which
    would hide bytes given back twice)."""

    def __init__(self, limit: int) -> None:
        super().__init__(limit)
        self.exact = 0
        self._count = threading.Lock()

    def _add(self, amount: int) -> None:
        with self._count:
            self.exact += amount

    def acquire(self, amount: int, stop: threading.Event) -> None:
        super().acquire(amount, stop)
        self._add(amount)

    def try_acquire(self, amount: int) -> bool:
        taken = super().try_acquire(amount)
        if taken:
            self._add(amount)
        return taken

    def release(self, amount: int) -> None:
        super().release(amount)
        self._add(-amount)

    def adjust(self, delta: int) -> None:
        if delta < 0:
            self.release(-delta)  # counted there
        else:
            super().adjust(delta)
            self._add(delta)


def _threaded_normalizer(watch: Watch) -> type[PageNormalizer]:
    first = threading.Lock()

    class Threaded(PageNormalizer):
        """Pages read ahead are normalized in the test's threads, the others right here."""

        def __init__(self, workers: int, raw_codec: Any = None) -> None:
            super().__init__(0, raw_codec)
            self._threads = ThreadPoolExecutor(max_workers=2, thread_name_prefix="norm")

        def _normalize(self, body_path: str, rows_path: str, job: PageJob) -> Any:
            items = normalize_spooled_page(body_path, rows_path, job)
            full = isinstance(items, list) and len(items) == FULL_PAGE
            if full and watch.on_first_full_page and first.acquire(blocking=False):
                watch.on_first_full_page()
            return items

        def spooled(self, body: BodyFile, rows_path: str, job: PageJob) -> Any:
            return normalize_spooled_page(body.path, rows_path, self._with_codec(job))

        def submit(
            self, body_path: str, rows_path: str, job: PageJob
        ) -> Callable[[], list[Any] | NotAList]:
            job = self._with_codec(job)
            return self._threads.submit(self._normalize, body_path, rows_path, job).result

        def close(self) -> None:
            self._threads.shutdown(wait=True)
            super().close()

    return Threaded


@pytest.fixture
def watch(monkeypatch: pytest.MonkeyPatch) -> Watch:
    watch = Watch()
    monkeypatch.setattr(prefetch, "READ_AHEAD_AFTER_SECONDS", 0.0)  # a local server is fast
    monkeypatch.setattr(engine_module, "PageNormalizer", _threaded_normalizer(watch))

    def counted(limit: int) -> Counted:
        budget = Counted(limit)
        watch.budgets.append(budget)
        return budget

    monkeypatch.setattr(engine_module, "InFlight", counted)

    ahead = walk_module.Walker._ahead

    def ahead_then_tell(self: walk_module.Walker, *args: Any) -> Any:
        try:
            return ahead(self, *args)
        finally:
            watch.ahead_done.set()

    monkeypatch.setattr(walk_module.Walker, "_ahead", ahead_then_tell)

    discard = walk_module.Walker._discard

    def discard_and_check(self: walk_module.Walker, fetched: Any) -> None:
        discard(self, fetched)
        files = fetched.files
        gone = not os.path.exists(files.body) and not os.path.exists(files.rows)
        watch.dropped.append((files.body, files.rows, gone))

    monkeypatch.setattr(walk_module.Walker, "_discard", discard_and_check)

    close = Spool.close

    def close_and_list(self: Spool) -> None:
        watch.spool_left.append(sorted(os.listdir(self.path)))
        close(self)

    monkeypatch.setattr(Spool, "close", close_and_list)
    return watch


def _org() -> SimulatedOrg:
    """An org whose biggest issue takes several full pages."""
    org = SimulatedOrg(seed=5, events=40)
    big = max(org.live_issues(), key=lambda i: i.times_seen)
    org.add_events(big.id, 450, at=int(org.now()) - 50, spread_seconds=3000)
    return org


def _assert_nothing_leaked(watch: Watch) -> None:
    assert watch.dropped, "no page read ahead was dropped"
    assert all(gone for _, _, gone in watch.dropped)
    assert watch.budgets
    assert all((b.used, b.exact) == (0, 0) for b in watch.budgets)
    assert watch.spool_left
    assert all(left == [] for left in watch.spool_left)  # no page's files outlived it


def _sync(org: SimulatedOrg, db_url: str, stop: threading.Event | None = None) -> SyncOutcome:
    with SimulatorServer(org, token=TOKEN) as srv:
        return execute_sync(settings(srv, org, db_url, concurrency=1), stop=stop)


def test_a_page_read_ahead_from_keys_the_worker_disagrees_with_is_dropped(
    monkeypatch: pytest.MonkeyPatch,
    watch: Watch,
    db_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The keys read of the first full page name another event last: the worker's do not.
    read_keys = prefetch.read_keys
    tampered: list[bool] = []

    def wrong_once(body_path: str, detail_always: bool) -> Any:
        keys = read_keys(body_path, detail_always)
        if keys is not None and len(keys) == FULL_PAGE and not tampered:
            tampered.append(True)
            keys[-1] = keyset.Key("0" * 32, keys[-1].second)
        return keys

    monkeypatch.setattr(walk_module, "read_keys", wrong_once)
    org = _org()
    with caplog.at_level(logging.WARNING, logger="archiver.sync.walk"):
        outcome = _sync(org, db_url)
    assert outcome.exit_code == ExitCode.OK, outcome.report.failures
    assert tampered
    assert "a page read ahead disagreed with its worker" in caplog.text
    _assert_nothing_leaked(watch)
    # Every event written once: the dropped page was never written, nor its page asked again.
    report = outcome.report
    assert (report.events_new, report.events_updated, report.events_unchanged) == (
        len(org.truth()),
        0,
        0,
    )
    assert archived(db_url) == org.truth()


def test_a_page_read_ahead_is_given_back_when_the_run_is_stopped(watch: Watch, db_url: str) -> None:
    stop = threading.Event()

    def stop_once_read_ahead() -> None:
        assert watch.ahead_done.wait(WAIT_SECONDS), "the next page was never read ahead"
        stop.set()

    watch.on_first_full_page = stop_once_read_ahead
    org = _org()
    try:
        outcome = _sync(org, db_url, stop)
    except InterruptedRun:  # PostgreSQL's walk by project leases says so this way
        pass
    else:
        assert outcome.exit_code == ExitCode.INTERRUPTED
        assert outcome.report.interrupted
    assert stop.is_set()
    _assert_nothing_leaked(watch)
    # The next run resumes where the stopped one committed, and ends exact.
    again = _sync(org, db_url)
    assert again.exit_code == ExitCode.OK, again.report.failures
    assert archived(db_url) == org.truth()


def test_a_page_read_ahead_is_given_back_when_its_issue_fails(watch: Watch, db_url: str) -> None:
    def fail_once_read_ahead() -> None:
        assert watch.ahead_done.wait(WAIT_SECONDS), "the next page was never read ahead"
        raise RuntimeError("the worker broke")

    watch.on_first_full_page = fail_once_read_ahead
    org = _org()
    outcome = _sync(org, db_url)
    assert outcome.exit_code == ExitCode.PARTIAL
    big = max(org.live_issues(), key=lambda i: i.times_seen)
    failures = outcome.report.failures
    assert [f["issue_id"] for f in failures] == [big.id]
    assert "the worker broke" in failures[0]["error"]
    _assert_nothing_leaked(watch)
    # The other issues were archived; the next run walks the failed one again, exactly.
    again = _sync(org, db_url)
    assert again.exit_code == ExitCode.OK, again.report.failures
    assert archived(db_url) == org.truth()
