"""A transaction PostgreSQL aborted for a conflict with another writer is run again; no other
error is (:mod:`archiver.storage.conflicts`)."""

from __future__ import annotations

from types import SimpleNamespace

import psycopg.errors
import pytest
from sqlalchemy.exc import OperationalError

from archiver.storage.conflicts import EVENTS_KEY, aborted_by_conflict, retry_conflicts


class DriverError(Exception):
    def __init__(self, sqlstate: str | None, constraint: str | None = None) -> None:
        super().__init__(f"sqlstate {sqlstate}")
        self.sqlstate = sqlstate
        self.diag = SimpleNamespace(constraint_name=constraint)


def failure(sqlstate: str | None, constraint: str | None = None) -> OperationalError:
    return OperationalError("INSERT ...", {}, DriverError(sqlstate, constraint))


@pytest.fixture(autouse=True)
def no_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("archiver.storage.conflicts.time.sleep", lambda _s: None)


def test_a_deadlock_or_serialization_failure_is_a_conflict() -> None:
    assert aborted_by_conflict(failure("40P01"))
    assert aborted_by_conflict(failure("40001"))
    assert not aborted_by_conflict(failure("23505"))  # a unique violation is a bug, not a race
    assert not aborted_by_conflict(failure(None))  # SQLite's errors carry no SQLSTATE
    assert not aborted_by_conflict(ValueError("40P01"))


def test_two_writers_inserting_one_new_event_is_a_conflict_other_duplicates_are_not() -> None:
    """The writer's lanes may both find an event new (see archiver.sync.lanes); a duplicate
    of anything else is a bug."""
    assert aborted_by_conflict(failure("23505", EVENTS_KEY))
    assert not aborted_by_conflict(failure("23505", "pk_event_tags"))
    # a COPY on the driver's own cursor raises psycopg's error, not SQLAlchemy's
    assert aborted_by_conflict(psycopg.errors.DeadlockDetected("deadlock detected"))
    assert not aborted_by_conflict(psycopg.errors.UndefinedTable("no such table"))


def test_the_transaction_is_run_again_until_it_commits() -> None:
    calls: list[int] = []

    def write() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise failure("40P01")
        return "committed"

    assert retry_conflicts(write) == "committed"
    assert len(calls) == 3


def test_other_errors_and_the_last_conflict_are_raised() -> None:
    calls: list[int] = []

    def unique_violation() -> None:
        calls.append(1)
        raise failure("23505")

    with pytest.raises(OperationalError, match="23505"):
        retry_conflicts(unique_violation)
    assert len(calls) == 1

    def always_deadlocked() -> None:
        calls.append(1)
        raise failure("40P01")

    calls.clear()
    with pytest.raises(OperationalError, match="40P01"):
        retry_conflicts(always_deadlocked, attempts=3)
    assert len(calls) == 3
