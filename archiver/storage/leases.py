"""Project leases: several sync processes share one PostgreSQL archive, a project each.

A sync on PostgreSQL holds the archive's lock in shared mode (:mod:`archiver.storage.lock`)
and then, project after project, *claims* one: a single atomic ``INSERT ... ON CONFLICT DO
UPDATE ... WHERE`` takes a project whose lease is free (released, or not renewed for the
lease's duration: its holder died or lost its database) and that no run finished since this
one started. It discovers and walks that project, then marks it finished. While it holds a
lease, a heartbeat thread renews it every third of its duration; each page's transaction
reads the lease row ``FOR SHARE`` and rolls back unless it still names this process, so once
another process took a lease over (the taker's update waits for that page's commit) the old
holder writes nothing more of that project. Checkpoints are per issue and commit with each
page, so the taker resumes every walk where the dead process stopped. A lease lost that way
ends that project's walk only (:class:`~archiver.errors.LeaseLostError`): the process goes on
with its other projects, since the taker finishes this one.

Projects are claimed biggest first (:func:`claim_order`): the longest walk starts first, so
the processes of a round end at about the same time instead of one walking a big project
alone at the end.

All times are the database server's (``now()``): the machines' clocks never matter. The
lease's duration is ``SENTRY_ARCHIVER_LEASE_SECONDS`` (default 120 s): a dead process's
projects wait that long before another process takes them over.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import Connection, Engine, text

from archiver.errors import LeaseLostError
from archiver.storage.db import safe_url
from archiver.storage.liveness import live_sessions
from archiver.storage.lock import ADVISORY_KEY

log = logging.getLogger("archiver.storage.leases")

LEASE_SECONDS = 120.0
LEASE_ENV = "SENTRY_ARCHIVER_LEASE_SECONDS"

_CLAIM = text(
    "INSERT INTO project_leases AS l (project_id, holder, host, pid, run_id, acquired_at, "
    "renewed_at, expires_at) VALUES (:project, :holder, :host, :pid, :run, now(), now(), "
    "now() + make_interval(secs => :secs)) "
    "ON CONFLICT (project_id) DO UPDATE SET holder = excluded.holder, host = excluded.host, "
    "pid = excluded.pid, run_id = excluded.run_id, acquired_at = now(), renewed_at = now(), "
    "expires_at = excluded.expires_at "
    "WHERE (l.expires_at <= now() OR l.holder = ANY(:dead)) "
    "AND (l.finished_at IS NULL OR l.finished_at < :since) "
    "RETURNING project_id"
)


def lease_seconds() -> float:
    """The lease duration: ``SENTRY_ARCHIVER_LEASE_SECONDS`` or 120 s (at least 1 s)."""
    raw = os.environ.get(LEASE_ENV)
    try:
        return max(1.0, float(raw)) if raw else LEASE_SECONDS
    except ValueError:
        log.warning("ignoring %s=%r: not a number of seconds", LEASE_ENV, raw)
        return LEASE_SECONDS


class Leases:
    """This process's project leases on one PostgreSQL archive, for one run."""

    def __init__(
        self,
        engine: Engine,
        *,
        run_id: int | None,
        seconds: float | None = None,
        on_lost: Callable[[int], None] | None = None,
    ) -> None:
        """``on_lost(project_id)`` is called (from the heartbeat thread, or the page's) when a
        held project's lease turns out to be another process's."""
        self.engine = engine
        self.seconds = seconds if seconds is not None else lease_seconds()
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.run_id = run_id
        self.holder = f"{self.host} {self.pid} run {run_id}"
        self.on_lost = on_lost
        self.held: set[int] = set()
        self.lost: set[int] = set()  # taken over by another process while held
        self._guard = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        with engine.connect() as conn:
            # Projects finished after this instant count as done for this run.
            self.since: dt.datetime = conn.execute(text("SELECT now()")).scalar_one()

    # ------------------------------------------------------------------ claiming

    def _states(self, conn: Connection, ids: list[int]) -> dict[int, Any]:
        rows = conn.execute(
            text(
                "SELECT project_id, holder, host, pid, run_id, expires_at <= now() AS free, "
                "coalesce(finished_at >= :since, false) AS done FROM project_leases "
                "WHERE project_id = ANY(:ids)"
            ),
            {"ids": ids, "since": self.since},
        ).all()
        return {int(r.project_id): r for r in rows}

    def _dead_holders(self, conn: Connection, states: dict[int, Any]) -> set[str]:
        """Holders of unexpired leases whose sync process is gone: its lock session ended
        (a killed process's connection closes), so it can commit nothing more (each page
        checks that session) and its projects need not wait for their leases to expire."""
        held = [s for s in states.values() if not s.free and s.holder != self.holder]
        if not held:
            return set()
        live = live_sessions(conn, ADVISORY_KEY)
        return {
            s.holder
            for s in held
            if not any(pid == s.pid and str(s.host).startswith(h) for _, h, pid in live)
        }

    def claim(self, project_ids: Iterable[int]) -> int | None:
        """Take the lease of the first of these projects (in their order:
        :func:`claim_order`) that is free (released, expired, or held by a process that is
        gone) and not finished since this run started; None when none is (:meth:`pending`
        says whether to wait for one)."""
        ids = list(dict.fromkeys(project_ids))
        with self.engine.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            states = self._states(conn, ids)
            dead = self._dead_holders(conn, states)
            for pid in ids:
                state = states.get(pid)
                if state is not None and (state.done or not (state.free or state.holder in dead)):
                    continue
                got = conn.execute(
                    _CLAIM,
                    {
                        "project": pid,
                        "holder": self.holder,
                        "host": self.host,
                        "pid": self.pid,
                        "run": self.run_id,
                        "secs": self.seconds,
                        "since": self.since,
                        "dead": sorted(dead),
                    },
                ).first()
                if got is None:
                    continue  # another process was quicker
                if state is not None and state.holder in dead:
                    log.warning("project %s: taking over the lease of %s, gone", pid, state.holder)
                    _interrupted(conn, state.run_id)
                elif state is not None and state.holder != self.holder:
                    log.info("project %s: lease taken (last holder %s)", pid, state.holder)
                with self._guard:
                    self.held.add(pid)
                    self.lost.discard(pid)
                return pid
        return None

    def pending(self, project_ids: Iterable[int]) -> list[int]:
        """The projects not finished since this run started (held by others, or free)."""
        ids = sorted(set(project_ids))
        with self.engine.connect() as conn:
            states = self._states(conn, ids)
        return [p for p in ids if p not in states or not states[p].done]

    def release(self, project_id: int, *, finished: bool) -> None:
        """Give the lease up at once; ``finished``: the project's walks are complete."""
        with self._guard:
            self.held.discard(project_id)
        done = ", finished_at = now()" if finished else ""
        with self.engine.begin() as conn:
            conn.execute(
                text(
                    f"UPDATE project_leases SET expires_at = now(){done} "
                    "WHERE project_id = :project AND holder = :holder"
                ),
                {"project": project_id, "holder": self.holder},
            )

    # ------------------------------------------------------------------ holding

    def verify(self, conn: Connection, project_id: int) -> None:
        """Raise :class:`LeaseLostError` unless ``project_id``'s lease still names this process.

        Called in each page's transaction before its commit; ``FOR SHARE`` makes a takeover
        wait for this commit, so a page either commits before the taker reads its checkpoint,
        or rolls back.
        """
        if self.is_lost(project_id):
            raise self.lost_error(project_id)
        mine = conn.execute(
            text(
                "SELECT 1 FROM project_leases WHERE project_id = :project AND holder = :holder "
                "FOR SHARE"
            ),
            {"project": project_id, "holder": self.holder},
        ).first()
        if mine is None:
            self._lose([project_id])
            raise self.lost_error(project_id)

    def is_lost(self, project_id: int) -> bool:
        """Was this project's lease taken over while this process held it?"""
        with self._guard:
            return project_id in self.lost

    def renew(self) -> bool:
        """Extend every held lease; False (and ``on_lost`` called for each) when some were
        taken over. The others stay held, and renewed."""
        with self._guard:
            held = sorted(self.held)
        if not held:
            return True
        try:
            with self.engine.begin() as conn:
                renewed = conn.execute(
                    text(
                        "UPDATE project_leases SET renewed_at = now(), "
                        "expires_at = now() + make_interval(secs => :secs) "
                        "WHERE project_id = ANY(:ids) AND holder = :holder RETURNING project_id"
                    ),
                    {"ids": held, "holder": self.holder, "secs": self.seconds},
                ).all()
        except Exception as exc:  # a busy or unreachable database: try again next beat
            log.warning("project lease renewal failed: %s", exc)
            return True
        with self._guard:
            gone = (set(self.held) & set(held)) - {int(r[0]) for r in renewed}
        self._lose(sorted(gone))
        return not gone

    def _lose(self, project_ids: list[int]) -> None:
        """These projects' leases are another process's now: stop holding them."""
        with self._guard:
            new = [p for p in project_ids if p in self.held]
            self.held.difference_update(new)
            self.lost.update(new)
        for project_id in new:
            log.warning(
                "project %s: its lease names another process now (taken over once this one "
                "had not renewed it for the lease's %g s); handing the project over",
                project_id,
                self.seconds,
            )
            if self.on_lost is not None:
                self.on_lost(project_id)

    def lost_error(self, project_id: int) -> LeaseLostError:
        """The error that ends a project's walk once its lease is another process's."""
        return LeaseLostError(
            project_id,
            f"project {project_id}'s lease on {safe_url(str(self.engine.url))} was taken over "
            "by another process; this one stopped that project's walk at a page boundary "
            "(every committed page is kept) and the other goes on from there",
        )

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="lease-renewal", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.seconds / 3):
            self.renew()

    def stop(self) -> None:
        """Stop renewing and give back what is still held (unfinished: free for others)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        with self._guard:
            held = sorted(self.held)
        for project_id in held:
            try:
                self.release(project_id, finished=False)
            except Exception as exc:  # it expires by itself
                log.warning("could not release project %s's lease: %s", project_id, exc)


def claim_order(engine: Engine, project_ids: Iterable[int]) -> list[int]:
    """These projects, biggest first: most events expected (the sum of their issues' lifetime
    counts, as discovery stored them), then most issues, then by id.

    A sync claims projects in this order, so the longest walks start first and the processes
    sharing the archive end together rather than one walking a big project alone at the end.
    An archive that never discovered a project knows nothing of its size: it comes last (by
    id); so a new archive's first round claims by id. One grouped read of ``issues`` (indexed
    by project), once per run.
    """
    ids = sorted(set(project_ids))
    if not ids:
        return []
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT project_id, coalesce(sum(times_seen), 0) AS events, count(*) AS issues "
                "FROM issues WHERE project_id = ANY(:ids) GROUP BY project_id"
            ),
            {"ids": ids},
        ).all()
    size = {int(r.project_id): (int(r.events), int(r.issues)) for r in rows}
    return sorted(ids, key=lambda p: (*(-n for n in size.get(p, (0, 0))), p))


def _interrupted(conn: Connection, run_id: int | None) -> None:
    """Record a gone holder's run as interrupted (its process cannot say so any more)."""
    if run_id is None:
        return
    conn.execute(
        text(
            "UPDATE runs SET outcome = 'interrupted', finished_at = now(), error_message = "
            "'the process ended without recording how (killed: SIGKILL, out of memory); "
            "marked by the sync that took its project over' "
            "WHERE id = :run AND outcome = 'running'"
        ),
        {"run": run_id},
    )


def leases_now(engine: Engine) -> list[dict[str, Any]]:
    """Every lease held now (not expired), for ``status``; empty where there is no table."""
    if engine.dialect.name != "postgresql":
        return []
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT l.project_id, p.slug, l.host, l.pid, l.run_id, l.acquired_at, "
                "l.expires_at FROM project_leases l LEFT JOIN projects p ON p.id = l.project_id "
                "WHERE l.expires_at > now() ORDER BY l.project_id"
            )
        ).all()
    return [
        {
            "project_id": int(r.project_id),
            "project": r.slug,
            "host": r.host,
            "pid": int(r.pid),
            "run_id": r.run_id,
            "acquired_at": r.acquired_at.isoformat(),
            "expires_at": r.expires_at.isoformat(),
        }
        for r in rows
    ]
