"""How the writer splits a spooled page into write batches (``writer.opened``)."""

from __future__ import annotations

from pathlib import Path

from archiver.sync import writer as sync
from archiver.sync.workers import PageJob, SpooledEvent, normalize_spooled_page


def spooled(page_body: bytes, tmp_path: Path, dialect: str) -> tuple[list[SpooledEvent], Path]:
    body, rows = tmp_path / f"{dialect}.body", tmp_path / f"{dialect}.rows"
    body.write_bytes(page_body)
    out = normalize_spooled_page(str(body), str(rows), PageJob(1, 2, dialect))
    assert isinstance(out, list)
    assert all(isinstance(e, SpooledEvent) for e in out)
    return [e for e in out if isinstance(e, SpooledEvent)], rows


def test_a_page_in_copy_form_is_one_batch_where_row_objects_would_be_several(
    page_body: bytes, tmp_path: Path, monkeypatch
) -> None:
    """COPY rows are bytes, about their pickled size in memory: a page of them is written
    in one batch (every batch repeats the page's lookups and one COPY per table), up to
    COPY_BATCH_BYTES. Row objects (SQLite) keep the smaller WRITE_BATCH_BYTES."""
    copy_page, copy_rows = spooled(page_body, tmp_path, "postgresql")
    row_page, row_rows = spooled(page_body, tmp_path, "sqlite")
    # the limits scaled to this page: past the row limit, under the COPY limit
    size = sum(e.length for e in copy_page)
    monkeypatch.setattr(sync, "WRITE_BATCH_BYTES", min(e.length for e in row_page))
    monkeypatch.setattr(sync, "COPY_BATCH_BYTES", size + 1)
    with copy_rows.open("rb") as f:
        batches = list(sync.opened(copy_page, f))
    assert [len(b) for b in batches] == [len(copy_page)]
    assert all(ev.copy is not None for ev in batches[0])
    with row_rows.open("rb") as f:
        assert len(list(sync.opened(row_page, f))) == len(row_page)
    # and a COPY page past its limit is split too, nothing lost, in order
    monkeypatch.setattr(sync, "COPY_BATCH_BYTES", size // 2)
    with copy_rows.open("rb") as f:
        batches = list(sync.opened(copy_page, f))
    assert len(batches) == 2
    assert [ev.event_id for b in batches for ev in b] == [e.event_id for e in copy_page]
