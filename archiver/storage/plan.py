"""What a batch of events does to the archive: which events are written, and the counts.

The store's decision, apart from how it writes: an event is new, replaces a stored copy whole,
or is left as stored (its raw JSON is unchanged, or the stored copy is richer). Both write paths
(multi-row INSERT, and COPY on PostgreSQL) follow the same plan, from the same lookup of the
batch's stored events (:func:`stored_events`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Select, select, text

from archiver.storage.base import chunks
from archiver.storage.encode import EncodedEvent, rank
from archiver.storage.models import EVENTS


@dataclass(frozen=True)
class WriteResult:
    """What one ``write_events`` call did."""

    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    # hollow copies (whose body Sentry lost) left unwritten over a complete archived event;
    # counted, not stored, so the archived rows stay byte for byte
    hollow_ignored: int = 0

    def __add__(self, other: WriteResult) -> WriteResult:
        return WriteResult(
            self.inserted + other.inserted,
            self.updated + other.updated,
            self.unchanged + other.unchanged,
            self.hollow_ignored + other.hollow_ignored,
        )


@dataclass(frozen=True)
class Plan:
    """What ``write_events`` does with a batch: the events it writes, in batch order, the
    primary keys of stored events whose child rows it replaces, and the counts it reports."""

    written: list[tuple[int, str]]
    changed_pks: list[int]
    result: WriteResult


def plan_writes(
    batch: Mapping[tuple[int, str], EncodedEvent],
    existing: Mapping[tuple[int, str], tuple[int, str | None, int]],
) -> Plan:
    """Decide per event: new, changed (replaced whole) or left as stored.

    An event is left as stored when its raw JSON is unchanged, or when the stored copy is
    richer (see :func:`~archiver.storage.encode.rank`): a slim or hollow copy never replaces
    a complete one.
    """
    written: list[tuple[int, str]] = []
    changed_pks: list[int] = []
    inserted = updated = unchanged = hollow = 0
    for key, ev in batch.items():
        old = existing.get(key)
        if old is None:
            inserted += 1
        else:
            pk, old_sha, old_rank = old
            if old_sha == ev.sha256 or ev.rank < old_rank:
                unchanged += 1
                if old_sha != ev.sha256 and ev.rank == 0 and old_rank > 0:
                    hollow += 1  # (a slim list item ranks 0 too; it is counted alike)
                continue
            changed_pks.append(pk)
            updated += 1
        written.append(key)
    return Plan(written, changed_pks, WriteResult(inserted, updated, unchanged, hollow))


def stored_events(
    conn: Connection, keys: Iterable[tuple[int, str]]
) -> dict[tuple[int, str], tuple[int, str | None, int]]:
    """(project_id, event_id) -> (events.id, raw_sha256, richness) for stored events."""
    keys = set(keys)
    by_project: dict[int, list[str]] = {}
    for pid, eid in keys:
        by_project.setdefault(pid, []).append(eid)
    found: dict[tuple[int, str], tuple[int, str | None, int]] = {}
    # project_id leads the natural key's unique index: both columns in the WHERE clause
    # make this an index lookup, not a scan of every archived event.
    for pid, eids in by_project.items():
        eids.sort()
        if conn.dialect.name == "postgresql":  # one probe per event, see _EXISTING_PG
            results = [conn.execute(_EXISTING_PG, {"pid": pid, "eids": eids})]
        else:
            results = [conn.execute(_existing_query(pid, chunk)) for chunk in chunks(eids)]
        for rows in results:
            for pk, eid, sha, has_detail, is_full in rows:
                found[(pid, eid)] = (pk, sha, rank(bool(has_detail), bool(is_full)))
    return found


def _existing_query(pid: int, eids: Sequence[str]) -> Select[Any]:
    return select(
        EVENTS.c.id, EVENTS.c.event_id, EVENTS.c.raw_sha256, EVENTS.c.has_detail, EVENTS.c.is_full
    ).where(EVENTS.c.project_id == pid, EVENTS.c.event_id.in_(eids))


# A backfill fills ``events`` faster than autovacuum analyzes it, and without statistics
# PostgreSQL read every stored event of the project for the IN list above (by project_id and
# date_created), a lookup that grew with the archive. LIMIT keeps the lateral subquery a
# probe of the natural key's unique index per event; one array, one statement text.
_EXISTING_PG = text(
    "SELECT e.id, e.event_id, e.raw_sha256, e.has_detail, e.is_full"
    " FROM unnest(CAST(:eids AS VARCHAR[])) AS k(event_id) CROSS JOIN LATERAL"
    " (SELECT id, event_id, raw_sha256, has_detail, is_full FROM events"
    " WHERE project_id = :pid AND event_id = k.event_id LIMIT 1) AS e"
)
