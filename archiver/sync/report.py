"""What a run did: the summary's counts (also recorded in ``runs``) and the progress line's."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from archiver.storage.store import WriteResult


@dataclass
class SyncReport:
    """What a run did (also recorded in the ``runs`` table)."""

    projects: int = 0
    issues_discovered: int = 0
    issues_walked: int = 0
    pages: int = 0
    events_new: int = 0
    events_updated: int = 0
    events_unchanged: int = 0
    releases: int = 0
    details_fetched: int = 0
    failures: list[dict[str, Any]] = field(default_factory=list)
    gone: list[int] = field(default_factory=list)
    merged: dict[int, int] = field(default_factory=dict)
    interrupted: bool = False
    # projects whose leases another sync took over: it finishes them (several syncs, PG)
    handed_over: list[str] = field(default_factory=list)
    events_hollow_ignored: int = 0  # hollow copies kept from replacing complete events
    # listed events kept as listed: their detail answer was unusable (:mod:`.details`)
    details_unusable: list[str] = field(default_factory=list)
    # events kept as listed by earlier runs whose detail this run asked again, and those of
    # them it could replace with the detail (:mod:`.redetail`)
    details_retried: int = 0
    details_recovered: int = 0
    # of those asked, the events whose answer was unusable for the last allowed time: kept as
    # listed for good (:data:`archiver.sync.redetail.MAX_ATTEMPTS`)
    details_given_up: int = 0

    def add(self, result: WriteResult) -> None:
        self.events_hollow_ignored += result.hollow_ignored
        self.events_new += result.inserted
        self.events_updated += result.updated
        self.events_unchanged += result.unchanged


@dataclass
class Progress:
    """Counters for the progress display."""

    issues_total: int = 0
    issues_done: int = 0
    events: int = 0
    started: float = field(default_factory=time.monotonic)
