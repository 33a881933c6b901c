"""Transactions PostgreSQL aborts to resolve a conflict between writers: written again.

Syncs sharing a PostgreSQL archive (project leases) write different projects, but their
events may share stacks, stored once by key (:mod:`archiver.storage.stacks`). Each call
inserts its keys in sorted order, yet a page is written in several batches: two pages meeting
the same new stacks in opposite batch orders wait for each other, and PostgreSQL aborts one
of the two transactions (``deadlock detected``, SQLSTATE 40P01; a serialization failure,
40001, would be handled alike). Nothing of the aborted transaction is kept, and the other one
goes on, so writing the aborted page again is safe (every write is an idempotent upsert) and
succeeds once the other has committed.
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
ATTEMPTS = 5


def aborted_by_conflict(exc: BaseException) -> bool:
    """Did the server abort this transaction to resolve a conflict with another one?"""
    orig = getattr(exc, "orig", None)
    return isinstance(exc, DBAPIError) and getattr(orig, "sqlstate", None) in RETRYABLE


def retry_conflicts(write: Callable[[], T], attempts: int = ATTEMPTS) -> T:
    """Run ``write`` (one whole transaction) again when the server aborted it for a conflict,
    up to ``attempts`` times in all; any other error, or the last one, is raised."""
    for attempt in range(1, attempts + 1):
        try:
            return write()
        except DBAPIError as exc:
            if attempt == attempts or not aborted_by_conflict(exc):
                raise
            code = getattr(exc.orig, "sqlstate", "")
            log.warning(
                "the database aborted a page's transaction (%s, another writer held the same "
                "rows); writing it again (attempt %d of %d)",
                RETRYABLE.get(code, code),
                attempt + 1,
                attempts,
            )
            # a little random wait, so two writers that collided do not meet again at once
            time.sleep(random.uniform(0, 0.05 * attempt))
    raise AssertionError("unreachable")  # pragma: no cover
