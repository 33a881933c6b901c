"""A sync into SQLite through the page worker processes: every simulator event's raw JSON comes
back exactly, compressed with the dictionary trained mid-run, and a second sync writes nothing."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from archiver.errors import ExitCode
from archiver.storage import rawtrain
from archiver.sync.runner import execute_sync
from tests.helpers import archived, query_rows, simulated, sync_settings

TOKEN = "raw-zstd-token"

org, server = simulated(TOKEN, seed=11, events=600)


def test_every_simulator_event_round_trips_byte_for_byte(
    tmp_path: Path, org, server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rawtrain, "TRAIN_AFTER", 150)  # the writer trains mid-run
    db_url = f"sqlite:///{tmp_path / 'a.db'}"
    settings = sync_settings(server.url, TOKEN, org, db_url, workers=1, concurrency=2)
    first = execute_sync(settings)
    assert first.exit_code == ExitCode.OK
    assert archived(db_url) == org.truth()
    rows = query_rows(
        db_url,
        "SELECT r.raw_json, e.raw_sha256, e.raw_json, e.raw_dict_id FROM events e "
        "JOIN v_event_raw_json r ON r.event_pk = e.id",
    )
    assert len(rows) == len(org.truth())
    for raw, sha, column, dict_id in rows:
        assert hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest() == sha
        assert column is None
        # the first events are recompressed when the dictionary is trained, pages in flight
        # then by the writer: every event ends with the dictionary
        assert dict_id == 1
    before = query_rows(db_url, "SELECT id, raw_zstd, updated_at FROM events ORDER BY id")
    second = execute_sync(settings)
    assert second.exit_code == ExitCode.OK
    assert (second.report.events_new, second.report.events_updated) == (0, 0)
    assert query_rows(db_url, "SELECT id, raw_zstd, updated_at FROM events ORDER BY id") == before
