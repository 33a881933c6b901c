"""The walk record: where one issue's event walk stands (a row of ``sync_issues``).

The store keeps the row as a plain mapping (:class:`archiver.storage.store.IssueWalkRow`)
because storage never imports the sync engine; this module turns it into the typed record
the engine reasons with, and back.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass

from archiver.storage.store import IssueWalkRow


class WalkStatus(str, enum.Enum):
    """Where an issue's walk is; the value is what ``sync_issues.status`` stores."""

    PENDING = "pending"  # discovery saw new activity: walk it
    WALKING = "walking"  # a walk is under way; its checkpoint says where
    DONE = "done"  # walked up to ``synced_until``
    FAILED = "failed"  # the last walk failed; the next run walks it again
    GONE = "gone"  # 404: deleted on the server; its archived events are kept

    def __str__(self) -> str:
        return self.value

    @property
    def to_walk(self) -> bool:
        """Does a run walk an issue in this state?"""
        return self in (WalkStatus.PENDING, WalkStatus.WALKING, WalkStatus.FAILED)

    @property
    def settled(self) -> bool:
        """Walked to its end (or gone): only new activity makes it pending again."""
        return self in (WalkStatus.DONE, WalkStatus.GONE)


@dataclass(frozen=True)
class IssueWalk:
    """The checkpoint of one issue's event walk.

    ``synced_until``: the end of the last completed walk. ``walk_start``/``walk_end``: the
    window pinned by the walk under way, ``walk_cursor`` its keyset checkpoint
    (:mod:`archiver.sync.keyset`), ``walk_events`` the events it has written so far.
    """

    issue_id: int
    project_id: int
    status: WalkStatus
    synced_until: dt.datetime | None = None
    walk_start: dt.datetime | None = None
    walk_end: dt.datetime | None = None
    walk_cursor: str | None = None
    walk_events: int = 0

    @classmethod
    def from_row(cls, row: IssueWalkRow) -> IssueWalk:
        return cls(
            issue_id=int(row["issue_id"]),
            project_id=int(row["project_id"]),
            status=WalkStatus(row["status"]),
            synced_until=row["synced_until"],
            walk_start=row["walk_start"],
            walk_end=row["walk_end"],
            walk_cursor=row["walk_cursor"],
            walk_events=int(row["walk_events"] or 0),
        )

    def row(self) -> IssueWalkRow:
        return IssueWalkRow(
            issue_id=self.issue_id,
            project_id=self.project_id,
            status=self.status.value,
            synced_until=self.synced_until,
            walk_start=self.walk_start,
            walk_end=self.walk_end,
            walk_cursor=self.walk_cursor,
            walk_events=self.walk_events,
        )
