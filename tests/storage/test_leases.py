"""Project leases on PostgreSQL: claim, renew, expire, take over, finish (issue 17).

Expiry is made by moving ``expires_at`` into the past (what the clock does to a lease nobody
renews), so no test waits for time to pass.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text

from archiver.errors import LeaseLostError, LockHeldError
from archiver.storage import lock
from archiver.storage.leases import Leases, claim_order, lease_seconds, leases_now
from archiver.storage.liveness import close_dead_runs

PROJECTS = [11, 12, 13]


@pytest.fixture
def live(pg_engine: Engine) -> Iterator[Engine]:
    """This process holds the shared lock as a sync does: its leases' holder is alive."""
    with lock.acquire(pg_engine, "sync", shared=True):
        yield pg_engine


def expire(engine: Engine, project_id: int) -> None:
    """What time does to a lease its holder stopped renewing."""
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE project_leases SET expires_at = now() - interval '1 second' "
                "WHERE project_id = :p"
            ),
            {"p": project_id},
        )


def test_each_project_goes_to_one_holder(live):
    pg_engine = live
    a = Leases(pg_engine, run_id=1)
    b = Leases(pg_engine, run_id=2)
    b.holder = "other-host 1 run 2"  # two processes, one test
    got = [a.claim(PROJECTS), b.claim(PROJECTS), a.claim(PROJECTS), b.claim(PROJECTS)]
    assert got[:3] == [11, 12, 13]
    assert got[3] is None  # all taken, none finished: b has to wait for them
    assert b.pending(PROJECTS) == PROJECTS
    held = {row["project_id"]: row["pid"] for row in leases_now(pg_engine)}
    assert set(held) == set(PROJECTS)


def test_a_finished_project_is_not_walked_again_in_the_same_round(live):
    pg_engine = live
    a = Leases(pg_engine, run_id=1)
    b = Leases(pg_engine, run_id=2)
    b.holder = "other-host 1 run 2"
    assert a.claim([11]) == 11
    a.release(11, finished=True)
    assert b.claim([11]) is None  # finished after b started: done for b too
    assert b.pending([11]) == []
    assert leases_now(pg_engine) == []
    later = Leases(pg_engine, run_id=3)  # a run started afterwards walks it again
    assert later.claim([11]) == 11


def test_a_released_unfinished_project_is_free_at_once(live):
    pg_engine = live
    a = Leases(pg_engine, run_id=1)
    b = Leases(pg_engine, run_id=2)
    b.holder = "other-host 1 run 2"
    assert a.claim([11]) == 11
    a.stop()  # an interrupted run gives its leases back
    assert b.claim([11]) == 11


def test_an_expired_lease_is_taken_over_and_the_old_holder_writes_nothing(live):
    pg_engine = live
    lost: list[int] = []
    old = Leases(pg_engine, run_id=1, on_lost=lost.append)
    new = Leases(pg_engine, run_id=2)
    new.holder = "other-host 1 run 2"
    assert old.claim([11]) == 11
    with pg_engine.begin() as conn:
        old.verify(conn, 11)  # still ours
    assert new.claim([11]) is None  # held and renewed: not free
    expire(pg_engine, 11)
    assert new.claim([11]) == 11
    with pytest.raises(LeaseLostError, match="taken over"), pg_engine.begin() as conn:
        old.verify(conn, 11)
    assert lost == [11]
    assert old.renew()  # nothing else held: nothing more lost
    assert lost == [11]
    with pg_engine.begin() as conn:
        new.verify(conn, 11)


def test_a_lost_lease_ends_only_that_project_and_the_others_stay_held(live):
    """The heartbeat finds one of two leases taken over: that project is lost (its pages can
    no longer commit), the other is still this process's and still renewed."""
    pg_engine = live
    lost: list[int] = []
    a = Leases(pg_engine, run_id=1, seconds=60, on_lost=lost.append)
    thief = Leases(pg_engine, run_id=2)
    thief.holder = "other-host 1 run 2"
    assert [a.claim([11]), a.claim([12])] == [11, 12]
    expire(pg_engine, 11)
    assert thief.claim([11]) == 11
    assert not a.renew()  # 11 was taken over
    assert lost == [11]
    assert a.is_lost(11)
    assert not a.is_lost(12)
    assert a.held == {12}
    with pytest.raises(LeaseLostError, match="project 11") as caught, pg_engine.begin() as conn:
        a.verify(conn, 11)
    assert caught.value.project_id == 11
    with pg_engine.begin() as conn:
        a.verify(conn, 12)  # still ours
    expire(pg_engine, 12)
    assert a.renew()  # and still renewed
    assert thief.claim([12]) is None
    assert lost == [11]


def test_renewal_moves_the_expiry_forward(live):
    pg_engine = live
    a = Leases(pg_engine, run_id=1, seconds=60)
    assert a.claim([11]) == 11
    expire(pg_engine, 11)  # expired but not yet taken: renewing keeps it
    assert a.renew()
    b = Leases(pg_engine, run_id=2)
    b.holder = "other-host 1 run 2"
    assert b.claim([11]) is None
    with pg_engine.connect() as conn:
        left = conn.execute(
            text("SELECT expires_at - now() FROM project_leases WHERE project_id = 11")
        ).scalar_one()
    assert left.total_seconds() > 50


def test_the_biggest_projects_are_claimed_first(live):
    """Most events expected (the issues' lifetime counts discovery stored) first, then most
    issues, then by id: the longest walks start first, so the processes end together."""
    with live.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO projects (id, archived_at, updated_at) VALUES "
                "(11, now(), now()), (12, now(), now()), (13, now(), now()), "
                "(14, now(), now())"
            )
        )
        conn.execute(
            text(
                "INSERT INTO issues (id, project_id, times_seen, archived_at, updated_at) VALUES "
                "(1, 11, 5, now(), now()), (2, 11, 5, now(), now()), "
                "(3, 12, 500, now(), now()), "
                "(4, 13, NULL, now(), now()), (5, 13, NULL, now(), now()), "
                "(6, 13, NULL, now(), now())"
            )
        )
    order = claim_order(live, [14, 13, 12, 11])
    assert order == [12, 11, 13, 14]
    a = Leases(live, run_id=1)
    assert [a.claim(order) for _ in range(5)] == [12, 11, 13, 14, None]


def test_lease_seconds_from_the_environment(monkeypatch):
    monkeypatch.setenv("SENTRY_ARCHIVER_LEASE_SECONDS", "2.5")
    assert lease_seconds() == 2.5
    monkeypatch.setenv("SENTRY_ARCHIVER_LEASE_SECONDS", "soon")
    assert lease_seconds() == 120.0


def test_syncs_share_the_lock_and_keep_an_exclusive_command_out(pg_engine):
    with lock.acquire(pg_engine, "sync", shared=True), lock.acquire(pg_engine, "sync", shared=True):
        assert lock.current_holder(pg_engine) is None  # no single holder row
        assert len(lock.shared_holders(pg_engine)) == 2
        with pytest.raises(LockHeldError, match="command sync"), lock.acquire(pg_engine, "purge"):
            pass
    purge = lock.acquire(pg_engine, "purge")
    refused = pytest.raises(LockHeldError, match="command purge")
    with purge, refused, lock.acquire(pg_engine, "sync", shared=True):
        pass


def test_a_sharing_sync_does_not_mark_a_live_sync_interrupted(pg_engine):
    with lock.acquire(pg_engine, "sync", shared=True):
        with pg_engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO runs (command, started_at, outcome, host, pid, projects, "
                    "issues, events_new, events_updated, requests, retries) VALUES "
                    "('sync', now(), 'running', :host, :pid, 0, 0, 0, 0, 0, 0), "
                    "('sync', now(), 'running', 'gone-host', 1, 0, 0, 0, 0, 0, 0)"
                ),
                {"host": socket.gethostname(), "pid": os.getpid()},
            )
        assert close_dead_runs(pg_engine, lock.ADVISORY_KEY) == 1  # only the dead one
        with pg_engine.connect() as conn:
            outcomes = conn.execute(text("SELECT host, outcome FROM runs ORDER BY id")).all()
    assert [o for _, o in outcomes] == ["running", "interrupted"]


def test_a_lease_of_a_process_that_is_gone_is_free_before_it_expires(live):
    """A killed sync's lock session ends with it: its projects are taken over at once, and
    its run (still ``running``: it could not record its end) is marked interrupted."""
    with live.begin() as conn:
        run = conn.execute(
            text(
                "INSERT INTO runs (command, started_at, outcome, host, pid, projects, issues, "
                "events_new, events_updated, requests, retries) VALUES "
                "('sync', now(), 'running', 'gone-host', 4242, 0, 0, 0, 0, 0, 0) RETURNING id"
            )
        ).scalar_one()
    gone = Leases(live, run_id=run)
    gone.host, gone.pid, gone.holder = "gone-host", 4242, f"gone-host 4242 run {run}"
    assert gone.claim([11]) == 11
    alive = Leases(live, run_id=2)
    assert alive.claim([11, 12]) == 11  # no live session names gone-host 4242
    with live.connect() as conn:
        assert conn.execute(text("SELECT outcome FROM runs")).scalar_one() == "interrupted"
    assert alive.claim([11, 12]) == 12
    other = Leases(live, run_id=3)
    other.holder = "x"
    # the leases of a live holder (this very process's session) wait for their expiry
    assert other.claim([12]) is None


def test_status_names_the_sharing_syncs_and_their_leases(live):
    from archiver.operations.status import collect_status, format_status

    leases = Leases(live, run_id=7)
    assert leases.claim([11]) == 11
    status = collect_status(live)
    assert status["lock"] is None
    assert [s["pid"] for s in status["syncs"]] == [os.getpid()]
    assert [x["project_id"] for x in status["leases"]] == [11]
    text_ = format_status(status)
    assert f"shared by sync on host {socket.gethostname()}, pid {os.getpid()}" in text_
    assert f"lease:    project 11 walked by host {socket.gethostname()}" in text_
    assert "(run #7)" in text_
