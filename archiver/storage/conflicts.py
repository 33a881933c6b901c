"""Transactions PostgreSQL aborts to resolve a conflict between writers: written again.

Syncs sharing a PostgreSQL archive (project leases) write different projects, but their
events may share stacks, stored once by key (:mod:`archiver.storage.stacks`). Each call
inserts its keys in sorted order, yet a page is written in several batches: two pages meeting
the same new stacks in opposite batch orders wait for each other, and PostgreSQL aborts one
of the two transactions (``deadlock detected``, SQLSTATE 40P01; a serialization failure,
40001, would be handled alike). Nothing of the aborted transaction is kept, and the other one
goes on, so writing the aborted page again is safe (every write is an idempotent upsert) and
succeeds once the other has committed.

The writer's two lanes (:mod:`archiver.sync.lanes`) meet the same way, and on one thing more:
an event two issues list at once (Sentry merging them) that both lanes found new. The second
waits on ``events``' natural key for the first; when that commits, PostgreSQL aborts the
second with a unique violation on exactly that key (SQLSTATE 23505, constraint
:data:`EVENTS_KEY`), and written again the page finds the event stored. A unique violation
on any other constraint is a bug and raised at once.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError

log = logging.getLogger("archiver.storage.conflicts")

T = TypeVar("T")

# SQLSTATEs of transactions the server aborted only because of a concurrent one.
RETRYABLE = {"40P01": "deadlock detected", "40001": "serialization failure"}
UNIQUE_VIOLATION = "23505"
EVENTS_KEY = "uq_events_project_id_event_id"  # events' natural key (project_id, event_id)
ATTEMPTS = 5


def aborted_by_conflict(exc: BaseException) -> bool:
    """Did the server abort this transaction to resolve a conflict with another one?

    ``exc`` is SQLAlchemy's error or, from a COPY on the driver's own cursor, psycopg's.
    """
    if isinstance(exc, DBAPIError):
        orig: object = exc.orig
    elif type(exc).__module__.startswith("psycopg"):
        orig = exc
    else:
        return False
    sqlstate = getattr(orig, "sqlstate", None)
    if sqlstate == UNIQUE_VIOLATION:
        return getattr(getattr(orig, "diag", None), "constraint_name", None) == EVENTS_KEY
    return sqlstate in RETRYABLE


def retry_conflicts(write: Callable[[], T], attempts: int = ATTEMPTS) -> T:
    """Run ``write`` (one whole transaction) again when the server aborted it for a conflict,
    up to ``attempts`` times in all; any other error, or the last one, is raised."""
    for attempt in range(1, attempts + 1):
        try:
            return write()
        except Exception as exc:
            if attempt == attempts or not aborted_by_conflict(exc):
                raise
            code = getattr(getattr(exc, "orig", exc), "sqlstate", "")
            log.warning(
                "the database aborted a page's transaction (%s, another writer held the same "
                "rows); writing it again (attempt %d of %d)",
                RETRYABLE.get(code, "the same event written by another writer"),
                attempt + 1,
                attempts,
            )
            # a little random wait, so two writers that collided do not meet again at once
            time.sleep(random.uniform(0, 0.05 * attempt))
    raise AssertionError("unreachable")  # pragma: no cover
