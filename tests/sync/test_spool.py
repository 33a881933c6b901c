"""The spool: page bodies and their encoded events wait in files, not in the sync process.

What it promises: a spooled body is the server's bytes (decoded, retried whole), a spooled
page gives exactly the events an in-memory page gives, the writer reads them back in order
and in batches, nothing is left on disk after a run, and the spool of a killed run is
removed by the next one.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from archiver.errors import ArchiverError, InvalidBody
from archiver.sentry.body import BodyFile
from archiver.sentry.client import SentryClient
from archiver.storage.encode import EncodedEvent
from archiver.sync import writer as sync
from archiver.sync.spool import PREFIX, PageFiles, Spool, remove_stale
from archiver.sync.workers import (
    NotAList,
    PageJob,
    PageNormalizer,
    SpooledEvent,
    normalize_page,
    normalize_spooled_page,
)

TOKEN = "spool-test-token"
LINK_END = (
    '<https://x/api/0/issues/1/events/?&cursor=0:0:1>; rel="previous"; '
    'results="false"; cursor="0:0:1", '
    '<https://x/api/0/issues/1/events/?&cursor=0:100:0>; rel="next"; '
    'results="false"; cursor="0:100:0"'
)


def job(**kw: object) -> PageJob:
    return PageJob(project_id=1, issue_id=2, dialect="sqlite", **kw)  # type: ignore[arg-type]


class Chunks(httpx.SyncByteStream):
    def __init__(self, *chunks: bytes) -> None:
        self.chunks = chunks

    def __iter__(self) -> Iterator[bytes]:
        yield from self.chunks


def client_for(answers: list[Callable[[httpx.Request], httpx.Response]]) -> SentryClient:
    script = list(answers)
    return SentryClient(
        "http://127.0.0.1:9",
        TOKEN,
        transport=httpx.MockTransport(lambda r: script.pop(0)(r)),
        sleep=lambda s: None,
    )


def test_a_spooled_body_is_streamed_to_its_file_and_parse_gets_the_file(tmp_path: Path) -> None:
    data = [{"id": str(i), "text": "é" * 50} for i in range(20)]
    packed = gzip.compress(json.dumps(data).encode())
    seen: list[BodyFile] = []

    def parse(body: BodyFile) -> object:
        seen.append(body)
        return json.loads(Path(body.path).read_bytes())

    spooled = str(tmp_path / "p.body")

    def answer(_r):
        return httpx.Response(
            200,
            stream=Chunks(packed[:7], packed[7:50], packed[50:]),
            headers={"Content-Encoding": "gzip", "Link": LINK_END},
        )

    with client_for([answer]) as client:
        page = client.list_issue_events_page("acme", 1, parse=parse, body_path=spooled)
    assert page.items == data
    assert not page.has_next
    assert [b.path for b in seen] == [spooled]
    assert Path(spooled).read_bytes() == json.dumps(data).encode()  # decoded, whole
    assert seen[0].size == len(json.dumps(data).encode())
    assert client.stats.bytes_received == seen[0].size


def test_a_truncated_spooled_body_is_fetched_again_and_rewritten(tmp_path: Path) -> None:
    whole = json.dumps([{"id": "1"}, {"id": "2"}]).encode()
    answers = [
        lambda _r: httpx.Response(200, content=whole[:-5] + b" " * 200),
        lambda _r: httpx.Response(200, content=whole, headers={"Link": LINK_END}),
    ]
    spooled = str(tmp_path / "p.body")
    sizes: list[int] = []

    def parse(body: BodyFile) -> object:
        sizes.append(os.path.getsize(body.path))
        return json.loads(Path(body.path).read_bytes())  # ValueError on the cut body

    with client_for(answers) as client:
        page = client.list_issue_events_page("acme", 1, parse=parse, body_path=spooled)
    assert page.items == [{"id": "1"}, {"id": "2"}]
    assert sizes == [len(whole) - 5 + 200, len(whole)]  # the file was rewritten, not appended
    assert client.stats.retries == 1


def test_error_bodies_are_never_spooled_and_still_give_their_message(tmp_path: Path) -> None:
    spooled = tmp_path / "p.body"
    answer = lambda _r: httpx.Response(  # noqa: E731
        400, json={"detail": "Invalid cursor parameter."}
    )
    with client_for([answer]) as client, pytest.raises(Exception, match="Invalid cursor"):
        client.list_issue_events_page(
            "acme", 1, parse=lambda b: pytest.fail("parsed"), body_path=str(spooled)
        )
    assert not spooled.exists()


def _read_back(out: list[Any], rows: Path) -> list[Any]:
    with rows.open("rb") as f:
        return [item.read(f) if isinstance(item, SpooledEvent) else item for item in out]


@pytest.mark.parametrize("workers", [0, 1])
def test_a_spooled_page_gives_the_events_an_in_memory_page_gives(
    page_body: bytes, tmp_path: Path, workers: int
) -> None:
    body = tmp_path / "p.body"
    body.write_bytes(page_body)
    rows = tmp_path / "p.rows"
    in_memory = normalize_page(page_body, job())
    assert isinstance(in_memory, list)
    with PageNormalizer(workers) as normalizer:
        out = normalizer.spooled(BodyFile(str(body), len(page_body)), str(rows), job())
    assert isinstance(out, list)
    assert all(isinstance(e, SpooledEvent) for e in out)
    # only small references came back: the rows are in the file, one after another
    assert sum(e.length for e in out) == rows.stat().st_size
    events = _read_back(out, rows)
    assert events == [e for e in in_memory if isinstance(e, EncodedEvent)]
    for ref, ev in zip(out, events, strict=True):
        assert isinstance(ref, SpooledEvent)
        assert isinstance(ev, EncodedEvent)
        assert (ref.issue_id, ref.release_version, ref.release) == (
            ev.issue_id,
            ev.release_version,
            ev.release,
        )


def test_spooled_pages_keep_raw_items_and_report_bad_bodies(tmp_path: Path) -> None:
    body, rows = tmp_path / "p.body", tmp_path / "p.rows"
    body.write_bytes(b'[{"eventID": "a", "entries": []}, {"eventID": "b"}]')
    out = normalize_spooled_page(str(body), str(rows), job())
    assert isinstance(out, list)
    assert isinstance(out[0], SpooledEvent)
    assert out[1] == {"eventID": "b"}  # needs the detail endpoint: comes back as it is
    body.write_bytes(b'{"detail": "x"}')
    assert normalize_spooled_page(str(body), str(rows), job()) == NotAList("dict")
    body.write_bytes(b'[{"eventID": "a", "entries": []}, {"eventID": "b"')
    with pytest.raises(InvalidBody):
        normalize_spooled_page(str(body), str(rows), job())


def test_the_writer_reads_spooled_events_back_in_order_and_in_batches(
    page_body: bytes, tmp_path: Path, monkeypatch
) -> None:
    body, rows = tmp_path / "p.body", tmp_path / "p.rows"
    body.write_bytes(page_body)
    out = normalize_spooled_page(str(body), str(rows), job())
    assert isinstance(out, list)
    assert all(isinstance(e, SpooledEvent) for e in out)
    expected = _read_back(out, rows)
    detail = expected[0]  # an event the walk fetched in detail is not spooled
    page = [*out, detail]
    with rows.open("rb") as f:
        # A page of small events is one batch, as the writer always wrote it; this one is not.
        small = [*out[:5], detail]
        assert sum(e.length for e in out[:5]) < sync.WRITE_BATCH_BYTES
        assert [len(b) for b in sync.opened(small, f)] == [len(small)]
        # (On SQLite the raw JSON is compressed: this page's rows are no longer 1 MB, so the
        # limit is set below their size.)
        with monkeypatch.context() as m:
            m.setattr(sync, "WRITE_BATCH_BYTES", sum(e.length for e in out) // 2)
            assert len(list(sync.opened(page, f))) > 1
        # A limit of three events' size: batches close once past it, in order, nothing lost.
        limit = 3 * max(e.length for e in out)
        monkeypatch.setattr(sync, "WRITE_BATCH_BYTES", limit)
        batches = list(sync.opened(page, f))
    assert len(batches) > 3
    assert [ev for batch in batches for ev in batch] == [*expected, detail]
    sizes = {ev.event_id: ref.length for ref, ev in zip(out, expected, strict=True)}
    for batch in batches[:-1]:
        total = sum(sizes[ev.event_id] for ev in batch)
        assert limit <= total < limit + sizes[batch[-1].event_id]
    with pytest.raises(ValueError, match="rows file"):
        list(sync.opened(out))


def test_a_spool_file_cut_short_is_an_error_not_a_wrong_event(
    page_body: bytes, tmp_path: Path
) -> None:
    body, rows = tmp_path / "p.body", tmp_path / "p.rows"
    body.write_bytes(page_body)
    out = normalize_spooled_page(str(body), str(rows), job())
    assert isinstance(out, list)
    assert isinstance(out[-1], SpooledEvent)
    os.truncate(rows, rows.stat().st_size - 10)
    with rows.open("rb") as f, pytest.raises(OSError, match="ended 10 bytes early"):
        out[-1].read(f)


def test_a_spool_is_removed_with_its_files_and_hands_out_distinct_pages(tmp_path: Path) -> None:
    with Spool(tmp_path) as spool:
        assert spool.path.parent == tmp_path
        assert spool.path.name.startswith(f"{PREFIX}{os.getpid()}-")
        pages = [spool.page() for _ in range(3)]
        assert len({p.body for p in pages} | {p.rows for p in pages}) == 6
        Path(pages[0].body).write_bytes(b"x")
        Path(pages[0].rows).write_bytes(b"y")
        pages[0].discard()
        assert not Path(pages[0].body).exists()
        assert not Path(pages[0].rows).exists()
        pages[1].discard()  # files never written: nothing to do, no error
        Path(pages[2].rows).write_bytes(b"z")
    assert not spool.path.exists()
    PageFiles(str(tmp_path / "a"), str(tmp_path / "b")).discard()


def test_the_spool_of_a_killed_run_is_removed_by_the_next_run(tmp_path: Path) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead_pid = int(dead.stdout)  # a process that has ended: its pid is (almost surely) free
    stale = tmp_path / f"{PREFIX}{dead_pid}-abc"
    (stale / "sub").mkdir(parents=True)
    (stale / "0.rows").write_bytes(b"left by SIGKILL")
    alive = tmp_path / f"{PREFIX}{os.getpid()}-def"  # a running sync's (this process)
    alive.mkdir()
    other = tmp_path / f"{PREFIX}notapid"
    other.mkdir()
    with Spool(tmp_path) as spool:
        assert not stale.exists()
        assert alive.exists()
        assert other.exists()
        assert spool.path.exists()
    assert remove_stale(tmp_path) == []


def test_an_unusable_spool_directory_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "dir"
    with pytest.raises(ArchiverError, match=r"spool directory.*TMPDIR"):
        Spool(missing)
