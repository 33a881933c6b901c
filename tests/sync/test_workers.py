"""Pages normalized in worker processes: same rows as in-process, failures handled.

The sync hands each page body to a worker process (archiver.sync.workers). These tests check the
three promises that makes: the rows are exactly those of in-process normalization, a bad
body or a dead worker is handled (retried, or normalized in the main process instead), and
a sync killed with SIGKILL leaves no worker process behind.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from archiver.config import Settings
from archiver.errors import InvalidBody, TransportError
from archiver.normalize import normalize_event
from archiver.sentry.body import BodyFile
from archiver.sentry.client import SentryClient
from archiver.simulator import SimulatedOrg, SimulatorConfig, SimulatorServer
from archiver.storage import db
from archiver.storage.encode import EncodedEvent, encode_event
from archiver.storage.models import CHILD_TABLES
from archiver.sync import writer as sync
from archiver.sync.handoff import InFlight
from archiver.sync.runner import execute_sync
from archiver.sync.workers import (
    NotAList,
    PageJob,
    PageNormalizer,
    SpooledEvent,
    normalize_page,
)
from tests.helpers import alive, archiver_process, event_row

TOKEN = "worker-test-token"


def job(dialect: str = "sqlite", **kw: object) -> PageJob:
    return PageJob(project_id=1, issue_id=2, dialect=dialect, **kw)  # type: ignore[arg-type]


def as_list(out: object) -> list[Any]:
    assert isinstance(out, list)
    return out


def run(normalizer: PageNormalizer, body: bytes, page_job: PageJob) -> list[Any]:
    """A page through the normalizer as the sync sends it (spooled), its events read back
    (raw items left as they are)."""
    with tempfile.TemporaryDirectory() as tmp:
        path, rows = Path(tmp, "p.body"), Path(tmp, "p.rows")
        path.write_bytes(body)
        out = as_list(normalizer.spooled(BodyFile(str(path), len(body)), str(rows), page_job))
        with rows.open("rb") as f:
            events = [item.read(f) if isinstance(item, SpooledEvent) else item for item in out]
    for item, ev in zip(out, events, strict=True):
        if isinstance(item, SpooledEvent):  # what the walk reads without opening it
            assert isinstance(ev, EncodedEvent)
            assert (item.issue_id, item.release_version, item.release) == (
                ev.issue_id,
                ev.release_version,
                ev.release,
            )
    return events


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_worker_rows_equal_in_process_rows(page_body: bytes, dialect: str) -> None:
    with PageNormalizer(0) as here, PageNormalizer(2) as pool:
        local = run(here, page_body, job(dialect))
        remote = run(pool, page_body, job(dialect))
    assert isinstance(local, list)
    assert all(isinstance(e, EncodedEvent) for e in local)
    assert remote == local
    # on PostgreSQL the rows are COPY text (ev.copy), not tuples
    frames = [e for e in local if (e.copy.stacks if e.copy else e.stacks)]
    assert frames, "the page has stack frames"


def test_scrubbing_happens_in_the_worker(page_body: bytes) -> None:
    with PageNormalizer(1) as pool:
        events = run(pool, page_body, job(scrub=("user.email",), scrub_key="k"))
    assert all(isinstance(ev, EncodedEvent) for ev in events)
    assert all(event_row(ev)["scrubbed"] is not None for ev in events)
    assert all("@" not in (event_row(ev)["user_email"] or "") for ev in events)
    emails = {
        i["user"]["email"] for i in json.loads(page_body) if (i.get("user") or {}).get("email")
    }
    assert emails, "the page has user emails to scrub"
    # raw_json is the scrubbed payload, not the server's text
    assert not any(e in event_row(ev)["raw_json"] for ev in events for e in emails)


def test_items_without_entries_stay_raw_for_a_detail_request() -> None:
    body = b'[{"eventID": "a" , "entries": []}, {"eventID": "b"}]'
    out = as_list(normalize_page(body, job()))
    assert isinstance(out[0], EncodedEvent)
    assert out[1] == {"eventID": "b"}
    always = normalize_page(body, job(detail_always=True))
    assert always == [{"eventID": "a", "entries": []}, {"eventID": "b"}]


def test_truncated_body_is_an_invalid_body_in_both_modes(page_body: bytes) -> None:
    cut = page_body[: len(page_body) // 2]
    with PageNormalizer(1) as pool, pytest.raises(InvalidBody):
        run(pool, cut, job())
    with pytest.raises(ValueError, match=r"^invalid JSON: ") as err:  # the client retries on it
        normalize_page(cut, job())
    assert type(err.value) is InvalidBody


def _without_raw(ev: EncodedEvent) -> tuple[object, ...]:
    row = event_row(ev)
    del row["raw_json"], row["raw_sha256"], row["raw_zstd"]
    return (ev.event_id, tuple(sorted(row.items())), ev.children, ev.release)


def test_each_event_keeps_the_servers_own_json_text(page_body: bytes) -> None:
    items = json.loads(page_body)
    # A server that pretty-prints and escapes non-ASCII: the stored text is its text.
    items[0]["message"] = "caf\u00e9 \u2603"
    pretty = json.dumps(items, indent=2, ensure_ascii=True)
    out = as_list(normalize_page(pretty.encode(), job()))
    assert len(out) == len(items)
    position = 0
    for ev, item in zip(out, items, strict=True):
        assert isinstance(ev, EncodedEvent)
        raw = event_row(ev)["raw_json"]
        assert json.loads(raw) == item
        position = pretty.index(raw, position)  # a slice of the page, in order
    assert "\\u2603" in event_row(out[0])["raw_json"]
    # Everything but the raw text is what normalizing the parsed items gives.
    compact = as_list(normalize_page(json.dumps(items).encode(), job()))
    expected = [
        _without_raw(encode_event(normalize_event(i, project_id=1, issue_id=2), "sqlite"))
        for i in items
    ]
    assert [_without_raw(ev) for ev in out] == expected
    assert [_without_raw(ev) for ev in compact] == expected


def test_encoded_lone_surrogates_are_kept_as_json_escapes() -> None:
    # A lone surrogate encoded as UTF-8 bytes: json.loads accepts it, strict UTF-8 does not.
    body = b'[{"eventID": "' + b"a" * 32 + b'", "entries": [], "message": "x\xed\xa0\x80"}]'
    out = as_list(normalize_page(body, job()))
    assert isinstance(out[0], EncodedEvent)
    raw = event_row(out[0])["raw_json"]
    raw.encode("utf-8")  # storable: the surrogate is written as its JSON escape
    assert json.loads(raw)["message"] == "x\ud800"


@pytest.mark.parametrize("body", [b"[{}] x", b"[{} {}]", b"[{},", b"[", b"[1,]"])
def test_malformed_arrays_are_invalid_bodies(body: bytes) -> None:
    with pytest.raises(InvalidBody):
        normalize_page(body, job())


@pytest.mark.parametrize(("body", "kind"), [(b' {"detail": "x"}', "dict"), (b'"[]"', "str")])
def test_valid_json_that_is_not_an_array_is_not_a_list(body: bytes, kind: str) -> None:
    assert normalize_page(body, job()) == NotAList(kind)
    assert normalize_page(b" [ ] ", job()) == []


def test_client_retries_a_truncated_body_then_reports_a_non_list(page_body: bytes) -> None:
    bodies = [page_body[:100], b'{"detail": "not a list"}']
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(200, content=bodies[min(len(calls), len(bodies)) - 1])

    client = SentryClient(
        "http://127.0.0.1:9", "tok", transport=httpx.MockTransport(handler), sleep=lambda s: None
    )
    with pytest.raises(TransportError) as err:
        client.list_issue_events_page("acme", 2, parse=lambda body: normalize_page(body, job()))
    assert len(calls) == 2  # the truncated body was fetched again
    assert "expected a JSON list, got dict" in str(err.value)
    assert isinstance(normalize_page(bodies[1], job()), NotAList)


def test_a_dead_worker_falls_back_to_the_main_process(page_body: bytes, caplog) -> None:
    # Directly on the logger: a sync run earlier in the session may have set "archiver" to
    # errors only and stopped its logs from propagating to the root logger (caplog's).
    caplog.set_level(logging.WARNING, logger="archiver.sync.workers")
    logger = logging.getLogger("archiver.sync.workers")
    logger.addHandler(caplog.handler)
    try:
        _kill_the_worker_and_normalize(page_body)
    finally:
        logger.removeHandler(caplog.handler)
    assert "normalizing in the main process" in caplog.text


def _kill_the_worker_and_normalize(page_body: bytes) -> None:
    with PageNormalizer(1) as pool:
        first = run(pool, page_body, job())
        assert pool._pool is not None
        for pid in list(pool._pool._processes):  # the OOM killer, say
            os.kill(pid, signal.SIGKILL)
        time.sleep(0.5)
        again = run(pool, page_body, job())
    assert again == first


def _descendants(pid: int) -> set[int]:
    out: set[int] = set()
    todo = [pid]
    while todo:
        for task in Path(f"/proc/{todo.pop()}/task").glob("*"):
            try:
                children = [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
            out.update(children)
            todo.extend(children)
    return out


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
@pytest.mark.slow
def test_killed_sync_leaves_no_worker_processes(tmp_path: Path) -> None:
    org = SimulatedOrg(seed=21, events=3000)
    url = f"sqlite:///{tmp_path}/a.db"
    with SimulatorServer(org, token=TOKEN, config=SimulatorConfig(latency_ms=5)) as srv:
        args = ("sync", "--quiet", "--workers", "2")
        proc = archiver_process(
            srv.url, TOKEN, org, url, *args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 60
        helpers: set[int] = set()
        while time.monotonic() < deadline and proc.poll() is None and len(helpers) < 3:
            helpers |= _descendants(proc.pid)  # forkserver, its workers, resource tracker
            time.sleep(0.05)
        assert proc.poll() is None, "the sync ended before its workers could be seen"
        assert len(helpers) >= 3
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and any(alive(p) for p in helpers):
            time.sleep(0.1)
    assert not [p for p in helpers if alive(p)], "worker processes outlived the killed sync"


def _table_counts(db_url: str) -> dict[str, int]:
    engine = db.make_engine(db_url)
    try:
        with engine.connect() as conn:
            return {
                name: conn.execute(text(f"SELECT count(*) FROM {name}")).scalar_one()
                for name in ["events", *CHILD_TABLES]
            }
    finally:
        engine.dispose()


@pytest.mark.slow
def test_sync_with_and_without_workers_writes_the_same_archive(tmp_path: Path, monkeypatch) -> None:
    org = SimulatedOrg(seed=9, events=800)
    counts = []
    with SimulatorServer(org, token=TOKEN) as srv:
        # the third run writes every event in a batch of its own
        for workers, batch in ((0, sync.WRITE_BATCH_BYTES), (2, sync.WRITE_BATCH_BYTES), (2, 1)):
            monkeypatch.setattr(sync, "WRITE_BATCH_BYTES", batch)
            url = f"sqlite:///{tmp_path}/w{workers}-{batch}.db"
            settings = Settings(
                url=srv.url,
                token=TOKEN,
                org=org.slug,
                db=url,
                workers=workers,
                earliest=dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc),
            )
            outcome = execute_sync(settings)
            assert not outcome.report.failures
            assert outcome.report.events_new == len(org.truth())
            counts.append(_table_counts(url))
    assert counts[0] == counts[1] == counts[2]
    assert counts[0]["events"] == len(org.truth())


def test_every_events_column_comes_from_normalize() -> None:
    """The writer stores events by column position: normalize must give every column."""
    from archiver.normalize import normalize_event
    from archiver.storage.encode import EVENT_COLUMNS

    ev = normalize_event({"eventID": "a" * 32, "entries": []}, project_id=1)
    assert set(ev.event) | {"raw_sha256", "raw_zstd", "raw_dict_id"} == set(EVENT_COLUMNS)


def test_in_flight_budget_waits_for_the_writer_and_never_blocks_an_empty_pipeline() -> None:
    stop = threading.Event()
    budget = InFlight(limit=10)
    budget.acquire(25, stop)  # bigger than the budget, but nothing is in flight: goes through
    assert budget.used == 25
    entered = threading.Event()

    def second() -> None:
        budget.acquire(5, stop)
        entered.set()

    thread = threading.Thread(target=second)
    thread.start()
    assert not entered.wait(0.5), "a page must wait while the budget is spent"
    budget.release(25)  # the writer committed the first page
    assert entered.wait(5)
    thread.join()
    assert budget.used == 5
    budget.adjust(-5)
    assert budget.used == 0
    budget.acquire(8, stop)
    budget.adjust(+4)  # the page turned out bigger than estimated
    assert budget.used == 12
    stop.set()
    budget.acquire(100, stop)  # a stopping run never waits
    assert budget.used == 112


def test_free_memory_goes_back_to_the_system_on_glibc() -> None:
    import platform
    import sys

    from archiver.sync.workers import release_free_memory

    done = release_free_memory()
    if sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc":
        assert done is True
    else:
        assert done is False
