"""Reading a page's keys ahead (:func:`archiver.sync.prefetch.read_keys`) in the sync process.

Against a server that answers slowly every page is read ahead, so what it costs the sync
process's memory is paid by every page of every walk thread at once: the page's events must
be parsed one at a time, never all of them together.
"""

from __future__ import annotations

import json
import threading
import tracemalloc
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from archiver.sync import keyset, prefetch
from archiver.sync.prefetch import read_keys


def _event(i: int) -> dict[str, Any]:
    """A listed event of about 8 KB of JSON, most of it small objects (frames, tags)."""
    frames = [
        {"function": f"fn_{j}", "module": f"app.mod{j}", "lineno": j, "vars": {"a": str(j)}}
        for j in range(60)
    ]
    return {
        "id": f"{i:032x}",
        "dateCreated": f"2026-01-01T00:00:{i % 60:02d}Z",
        "entries": [
            {"type": "exception", "data": {"values": [{"stacktrace": {"frames": frames}}]}}
        ],
        "tags": [{"key": f"k{t}", "value": f"v{t}"} for t in range(20)],
    }


def _page(tmp_path: Path, body: str | bytes) -> str:
    path = tmp_path / "body"
    path.write_bytes(body.encode() if isinstance(body, str) else body)
    return str(path)


def test_a_page_is_read_one_event_at_a_time(tmp_path: Path) -> None:
    events = [_event(i) for i in range(100)]
    body = json.dumps(events).encode()
    path = _page(tmp_path, body)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        keys = read_keys(path, detail_always=False)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert keys == [keyset.event_key(e) for e in events]
    # the body and its text, and an event or two as objects: the whole page parsed at once
    # (objects several times the JSON's size) is what this rules out
    assert peak < 3 * len(body)


@pytest.mark.parametrize(
    "body",
    [
        '[{"id": "a", "entries": []}',  # cut short: invalid
        '[{"id": "a", "entries": []}] x',  # extra data
        '[{"id": "a", "entries": []}, ]',
        '{"id": "a"}',  # not a list
        '[{"id": "a", "entries": []}, 3]',  # an item that is not an event
        '[{"id": "a"}]',  # listed without entries: a detail request
        "\ufeff\ufeff[]",  # a BOM left after decoding (json.loads refuses it)
        "[" * 100_000 + "]" * 100_000,  # too deep
        b'[{"id": "\xff", "entries": []}]',  # not UTF-8 (the worker archives it leniently)
    ],
)
def test_anything_unusual_goes_the_sequential_way(tmp_path: Path, body: str | bytes) -> None:
    assert read_keys(_page(tmp_path, body), detail_always=False) is None


def test_keys_as_json_loads_reads_them(tmp_path: Path) -> None:
    """Bytes as json.loads decodes them: a UTF-8 BOM is skipped, UTF-16 is read, whitespace
    anywhere between items."""
    items = [{"id": "é1", "entries": [], "dateCreated": "2026-01-01T00:00:05Z"}, {"entries": []}]
    text = " \n[ " + " ,\t".join(json.dumps(i, ensure_ascii=False) for i in items) + " ]\r\n"
    want = [keyset.event_key(i) for i in items]
    for body in (text.encode(), b"\xef\xbb\xbf" + text.encode(), text.encode("utf-16")):
        assert read_keys(_page(tmp_path, body), detail_always=False) == want
    assert read_keys(_page(tmp_path, " [ ] "), detail_always=False) == []
    assert read_keys(_page(tmp_path, text), detail_always=True) is None


def test_one_page_is_read_ahead_at_a_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Walk threads read their pages ahead one after another: the parse holds the interpreter
    anyway, and only one page's text is in the sync process at a time."""
    both_inside = threading.Barrier(2, timeout=1.0)
    overlapped: list[bool] = []
    items = prefetch._array_items

    def slow_items(text: str) -> Iterator[Any]:
        try:  # the other thread's read would come in meanwhile if nothing kept it out
            both_inside.wait()
            overlapped.append(True)
        except threading.BrokenBarrierError:
            overlapped.append(False)
        yield from items(text)

    monkeypatch.setattr(prefetch, "_array_items", slow_items)
    path = _page(tmp_path, json.dumps([_event(1)]))
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda _: read_keys(path, detail_always=False), range(2)))
    assert results == [[keyset.event_key(_event(1))]] * 2
    assert overlapped == [False, False]
