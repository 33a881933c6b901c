"""One writer at a time: the archive's run lock.

Whatever starts them (cron, ``sentry-archiver schedule``, a person), two commands that write
the archive never run at once. ``acquire(engine, command)`` is a context manager::

    with acquire(engine, "sync"):
        ...  # this process alone writes the archive

The second comer fails at once with :class:`~archiver.errors.LockHeldError` (exit code 5),
whose message names the holder: host, pid, command and since when.

How it works:

* **PostgreSQL**: ``pg_try_advisory_lock`` on a connection of its own, held for the whole run.
  The server releases the lock when that session ends, so a killed process (even SIGKILL, even
  a lost machine, once its connection times out) never leaves it behind. The ``run_lock`` row
  (id 1) only says who holds it; a row left by a dead process is overwritten by the next holder.
  The heartbeat asks that session whether it still holds the lock: a session that ended
  (terminated, restarted server) lost it, and the run stops with :class:`LockLostError`.
* **SQLite**: the ``run_lock`` row itself is the lock, inserted in a ``BEGIN IMMEDIATE``
  transaction (so two takers are serialized by SQLite's write lock). An existing row is *stale*,
  and taken over with a warning naming the old holder, when its host is this host and its pid
  is not alive (or is this very process, which holds no lock: a container restarted with the
  same pid), or when its heartbeat is older than ``stale_after`` (10 minutes; a background
  thread refreshes it every 30 seconds while the lock is held). Otherwise the lock is held.

* **PostgreSQL, shared** (``acquire(..., shared=True)``: ``sync``): several syncs hold the
  advisory lock in shared mode at once (they split the work by project leases,
  :mod:`archiver.storage.leases`), while any exclusive holder (``purge``) keeps them all out
  and is kept out by them. Shared holders write no ``run_lock`` row: each names its lock
  session ``sentry-archiver sync HOST PID``, which is how the others and ``status`` see it.

Release deletes the row (and unlocks the advisory lock). The schema must exist: upgrade first.
The new holder marks ``interrupted`` the ``runs`` a killed process left ``running``.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Connection, Engine, Table, delete, insert, select, text, update
from sqlalchemy.exc import OperationalError, ProgrammingError

from archiver.errors import DatabaseError, LockHeldError, LockLostError
from archiver.storage.base import utcnow
from archiver.storage.db import safe_url
from archiver.storage.liveness import application_name, close_dead_runs, live_sessions, pid_alive
from archiver.storage.models import RunLock

__all__ = ["HeldLock", "Holder", "acquire", "close_dead_runs", "current_holder", "pid_alive"]

log = logging.getLogger("archiver.storage.lock")

RUN_LOCK = cast(Table, RunLock.__table__)
LOCK_ROW_ID = 1
# A fixed 64-bit key for pg_advisory_lock: the lock is per database, so one key is enough.
ADVISORY_KEY = 0x5E47_A2C1_7E2D_0001
STALE_AFTER = dt.timedelta(minutes=10)
HEARTBEAT_EVERY = 30.0

# Locks this process holds, by database URL: a row naming this pid is ours only if listed here.
_HELD: set[str] = set()
_HELD_GUARD = threading.Lock()


@dataclass(frozen=True)
class Holder:
    """Who holds (or held) the lock, as recorded in the ``run_lock`` row."""

    host: str
    pid: int
    command: str | None
    acquired_at: dt.datetime
    heartbeat_at: dt.datetime

    def describe(self) -> str:
        since = self.acquired_at.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        what = f", command {self.command}" if self.command else ""
        return f"host {self.host}, pid {self.pid}{what}, since {since}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "pid": self.pid,
            "command": self.command,
            "acquired_at": self.acquired_at.isoformat(),
            "heartbeat_at": self.heartbeat_at.isoformat(),
        }


def _row_to_holder(row: Any) -> Holder:
    m = row._mapping
    return Holder(m["host"], int(m["pid"]), m["command"], m["acquired_at"], m["heartbeat_at"])


def read_holder(conn: Connection) -> Holder | None:
    """The ``run_lock`` row, if any (it may be stale: see :func:`is_stale`)."""
    row = conn.execute(select(RUN_LOCK).where(RUN_LOCK.c.id == LOCK_ROW_ID)).first()
    return _row_to_holder(row) if row is not None else None


def current_holder(engine: Engine) -> Holder | None:
    """Who holds the lock now, or None; a stale row does not count (for ``status``)."""
    with engine.connect() as conn:
        holder = read_holder(conn)
        if holder is None:
            return None
        if conn.dialect.name == "postgresql":
            sessions = live_sessions(conn, ADVISORY_KEY)
            if sessions:  # named sessions hold it: the row counts only if it is one of them
                return holder if any(pid == holder.pid for _, _, pid in sessions) else None
            free = conn.execute(
                text(
                    "SELECT NOT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' "
                    "AND granted AND database = (SELECT oid FROM pg_database "
                    "WHERE datname = current_database()) "
                    "AND ((classid::bigint << 32) | objid::bigint) = :key)"
                ),
                {"key": ADVISORY_KEY},
            ).scalar_one()
            return None if free else holder
    return None if is_stale(holder, str(engine.url)) else holder


def shared_holders(engine: Engine) -> list[dict[str, Any]]:
    """The processes sharing the lock now (PostgreSQL syncs), for ``status``; else empty."""
    if engine.dialect.name != "postgresql":
        return []
    with engine.connect() as conn:
        return [
            {"command": c, "host": h, "pid": p} for c, h, p in live_sessions(conn, ADVISORY_KEY)
        ]


def is_stale(
    holder: Holder,
    url_key: str,
    *,
    now: dt.datetime | None = None,
    stale_after: dt.timedelta = STALE_AFTER,
) -> bool:
    """Was this row left by a process that is gone (SQLite's rule; see the module doc)?"""
    now = now or utcnow()
    if holder.host == socket.gethostname():
        if holder.pid == os.getpid():
            with _HELD_GUARD:
                return url_key not in _HELD
        if not pid_alive(holder.pid):
            return True
    return now - holder.heartbeat_at > stale_after


class HeldLock:
    """The lock while held: refreshes its heartbeat, notices being taken over or lost."""

    def __init__(
        self,
        engine: Engine,
        command: str,
        *,
        heartbeat_every: float,
        on_lost: Callable[[], None] | None,
        shared: bool = False,
    ) -> None:
        self.engine = engine
        self.shared = shared
        self.command = command
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.acquired_at = utcnow()
        self.heartbeat_every = heartbeat_every
        self.on_lost = on_lost
        self.lost = False
        self.lost_reason = ""
        # PostgreSQL: the session holding the advisory lock (set by _acquire_postgresql)
        self.lock_conn: Connection | None = None
        self.lock_backend: int | None = None  # that session's backend pid
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def holder(self) -> Holder:
        return Holder(self.host, self.pid, self.command, self.acquired_at, self.acquired_at)

    def beat(self) -> bool:
        """Refresh the heartbeat; False (and ``on_lost`` called) when the lock is not ours.

        On PostgreSQL the lock's own session is checked first: the row says who holds the
        lock, but only that session holding the advisory lock makes it so.
        """
        if self.lock_conn is not None and not self._session_holds_lock():
            return False
        if self.shared:
            return True  # no row: the session's lock is all there is
        try:
            with self.engine.connect() as conn:
                conn = conn.execution_options(sqlite_immediate=True)
                with conn.begin():
                    result = conn.execute(
                        update(RUN_LOCK)
                        .where(
                            RUN_LOCK.c.id == LOCK_ROW_ID,
                            RUN_LOCK.c.host == self.host,
                            RUN_LOCK.c.pid == self.pid,
                            RUN_LOCK.c.acquired_at == self.acquired_at,
                        )
                        .values(heartbeat_at=utcnow())
                    )
                    ours = result.rowcount == 1
        except Exception as exc:  # a busy or unreachable database: try again next beat
            log.warning("run lock heartbeat failed: %s", exc)
            return True
        if not ours:
            self._lose("another process took the run lock over")
        return ours

    def _session_holds_lock(self) -> bool:
        """Does the lock's PostgreSQL session still hold the advisory lock? (False: lost.)"""
        assert self.lock_conn is not None
        try:
            held = self.lock_conn.execute(
                text(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                    "AND pid = pg_backend_pid() "
                    "AND ((classid::bigint << 32) | objid::bigint) = :key"
                ),
                {"key": ADVISORY_KEY},
            ).scalar_one()
        except Exception as exc:  # the session is gone, and the lock with it
            self._lose(f"its PostgreSQL session ended ({str(exc).splitlines()[0]})")
            return False
        if not held:
            self._lose("its PostgreSQL session no longer holds the advisory lock")
            return False
        return True

    def verify(self, conn: Connection) -> None:
        """Raise :class:`LockLostError` unless the lock is still this run's, seen from ``conn``.

        Called inside each page's write transaction, before its commit: the error rolls the
        page back, so no page commits once the lock is lost. The cost is small and fixed per
        page: the ``run_lock`` row read by primary key, and on PostgreSQL one more query, into
        ``pg_locks``, for the lock session's advisory lock (the row is read ``FOR SHARE`` there,
        so a new holder's takeover of the row waits for this page's commit). On SQLite the page's
        ``BEGIN IMMEDIATE`` already keeps any other writer, a taker included, out until the
        commit.
        """
        if self.lost:
            raise self.lost_error()
        if not self.shared:
            self._verify_row(conn)
        if (
            self.lock_backend is not None
            and not conn.execute(
                text(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                    "AND pid = :backend AND ((classid::bigint << 32) | objid::bigint) = :key"
                ),
                {"backend": self.lock_backend, "key": ADVISORY_KEY},
            ).scalar_one()
        ):
            self._lose("its PostgreSQL session no longer holds the advisory lock")
            raise self.lost_error()

    def _verify_row(self, conn: Connection) -> None:
        mine = (
            select(RUN_LOCK.c.id)
            .where(
                RUN_LOCK.c.id == LOCK_ROW_ID,
                RUN_LOCK.c.host == self.host,
                RUN_LOCK.c.pid == self.pid,
                RUN_LOCK.c.acquired_at == self.acquired_at,
            )
            .with_for_update(read=True)
        )
        if conn.execute(mine).first() is None:
            self._lose("the run_lock row no longer names this run")
            raise self.lost_error()

    def _lose(self, reason: str) -> None:
        if self.lost:
            return
        self.lost, self.lost_reason = True, reason
        log.error("lost the run lock (%s); stopping this run", reason)
        if self.on_lost is not None:
            self.on_lost()

    def lost_error(self) -> LockLostError:
        """The error a run that lost its lock ends with."""
        return LockLostError(
            f"lost the run lock on {safe_url(str(self.engine.url))}: {self.lost_reason}. This "
            "run stopped at a page boundary (every committed page is kept); another sync may "
            "be writing the archive now. Run it again: it resumes where this one stopped"
        )

    def start(self) -> None:
        if self.heartbeat_every <= 0:
            return
        self._thread = threading.Thread(target=self._loop, name="run-lock-heartbeat", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.heartbeat_every):
            if not self.beat():
                return

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)


def _locked_error(
    holder: Holder | str | None, url: str, *, postgresql: bool = False
) -> LockHeldError:
    who = holder if isinstance(holder, str) else holder.describe() if holder else "holder unknown"
    if postgresql:
        gone = "PostgreSQL releases the lock as soon as that process's session ends"
    else:
        gone = (
            "the lock is taken over automatically (at once on this host, else "
            f"{int(STALE_AFTER.total_seconds() // 60)} minutes after its last heartbeat)"
        )
    return LockHeldError(
        f"another sync holds the archive {safe_url(url)} ({who}); it stops by itself when done. "
        f"If that process is gone, {gone}"
    )


def _write_row(conn: Connection, held: HeldLock, *, replace: bool) -> None:
    values = {
        "host": held.host,
        "pid": held.pid,
        "command": held.command,
        "acquired_at": held.acquired_at,
        "heartbeat_at": held.acquired_at,
    }
    if replace:
        conn.execute(delete(RUN_LOCK).where(RUN_LOCK.c.id == LOCK_ROW_ID))
    conn.execute(insert(RUN_LOCK).values(id=LOCK_ROW_ID, **values))


def _warn_takeover(old: Holder) -> None:
    log.warning(
        "taking over the run lock left by a process that is gone (%s, last heartbeat %s)",
        old.describe(),
        old.heartbeat_at.isoformat(),
    )


def _acquire_sqlite(
    engine: Engine, held: HeldLock, url_key: str, stale_after: dt.timedelta
) -> None:
    with engine.connect() as conn:
        conn = conn.execution_options(sqlite_immediate=True)
        with conn.begin():
            old = read_holder(conn)
            if old is not None:
                if not is_stale(old, url_key, stale_after=stale_after):
                    raise _locked_error(old, url_key)
                _warn_takeover(old)
            _write_row(conn, held, replace=old is not None)


def _pg_holders(conn: Connection) -> str:
    """Who holds the advisory lock: the ``run_lock`` row's exclusive holder, else the syncs
    sharing it (named by their sessions: :mod:`archiver.storage.liveness`)."""
    row = read_holder(conn)
    sessions = live_sessions(conn, ADVISORY_KEY)
    if row is not None and any(pid == row.pid for _, _, pid in sessions):
        return row.describe()
    if sessions:
        return "; ".join(f"host {h}, pid {p}, command {c}" for c, h, p in sessions)
    return row.describe() if row is not None else "holder unknown"


@contextmanager
def _acquire_postgresql(engine: Engine, held: HeldLock, url_key: str) -> Iterator[None]:
    lock_conn = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    mode = "_shared" if held.shared else ""
    try:
        lock_conn.execute(
            text("SELECT set_config('application_name', :name, false)"),
            {"name": application_name(held.command)},
        )
        got = bool(
            lock_conn.execute(
                text(f"SELECT pg_try_advisory_lock{mode}(:key)"), {"key": ADVISORY_KEY}
            ).scalar_one()
        )
        if not got:
            raise _locked_error(_pg_holders(lock_conn), url_key, postgresql=True)
        held.lock_conn = lock_conn
        held.lock_backend = int(lock_conn.execute(text("SELECT pg_backend_pid()")).scalar_one())
        try:
            if not held.shared:
                with engine.begin() as conn:
                    old = read_holder(conn)
                    if old is not None:
                        _warn_takeover(old)
                    _write_row(conn, held, replace=old is not None)
            yield
        finally:
            try:
                lock_conn.execute(
                    text(f"SELECT pg_advisory_unlock{mode}(:key)"), {"key": ADVISORY_KEY}
                )
            except Exception as exc:  # the session is gone: so is the lock
                log.debug("advisory unlock failed: %s", exc)
    finally:
        lock_conn.close()


def _release_row(engine: Engine, held: HeldLock) -> None:
    try:
        with engine.connect() as conn:
            conn = conn.execution_options(sqlite_immediate=True)
            with conn.begin():
                conn.execute(
                    delete(RUN_LOCK).where(
                        RUN_LOCK.c.id == LOCK_ROW_ID,
                        RUN_LOCK.c.host == held.host,
                        RUN_LOCK.c.pid == held.pid,
                        RUN_LOCK.c.acquired_at == held.acquired_at,
                    )
                )
    except Exception as exc:  # never mask the run's own outcome; a stale row is taken over
        log.warning("could not remove the run lock row: %s", exc)


@contextmanager
def acquire(
    engine: Engine,
    command: str,
    *,
    stale_after: dt.timedelta = STALE_AFTER,
    heartbeat_every: float | None = None,
    on_lost: Callable[[], None] | None = None,
    shared: bool = False,
) -> Iterator[HeldLock]:
    """Hold the archive's run lock for the ``with`` block, or raise LockHeldError at once.

    ``on_lost`` is called (from the heartbeat thread) if the lock was lost meanwhile: another
    process took it over (SQLite: only when this one stopped heart-beating for
    ``stale_after``), or the PostgreSQL session holding it ended. ``HeldLock.lost`` then says
    so and ``HeldLock.lost_error()`` is the error to end the run with.

    ``shared``: on PostgreSQL, other shared holders may hold it at the same time (syncs that
    share the archive by project leases); exclusive holders may not. SQLite ignores it: one
    writer, always.
    """
    url_key = str(engine.url)
    if heartbeat_every is None:
        heartbeat_every = HEARTBEAT_EVERY  # read now, so a test can make it beat faster
    shared = shared and engine.dialect.name == "postgresql"
    held = HeldLock(
        engine, command, heartbeat_every=heartbeat_every, on_lost=on_lost, shared=shared
    )
    with ExitStack() as stack:
        try:
            if engine.dialect.name == "postgresql":
                stack.enter_context(_acquire_postgresql(engine, held, url_key))
            else:
                _acquire_sqlite(engine, held, url_key, stale_after)
        except (OperationalError, ProgrammingError) as exc:
            if "run_lock" in str(exc):
                raise DatabaseError(
                    f"the database {safe_url(url_key)} has no run_lock table (schema not "
                    "created or out of date); run: sentry-archiver db upgrade"
                ) from None
            raise DatabaseError(
                f"cannot take the run lock on {safe_url(url_key)}: {getattr(exc, 'orig', exc)}"
            ) from None
        with _HELD_GUARD:
            _HELD.add(url_key)

        def _release() -> None:
            held.stop()
            if not shared:
                _release_row(engine, held)
            with _HELD_GUARD:
                _HELD.discard(url_key)

        stack.callback(_release)
        close_dead_runs(engine, ADVISORY_KEY if shared else None)
        held.start()
        log.debug("run lock acquired (%s)", held.holder.describe())
        yield held
