"""What a batch of events does to the archive: which events are written, and the counts.

The store's decision, apart from how it writes: an event is new, replaces a stored copy whole,
or is left as stored (its raw JSON is unchanged, or the stored copy is richer). Both write paths
(multi-row INSERT, and COPY on PostgreSQL) follow the same plan.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from archiver.storage.encode import EncodedEvent


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
