"""The store's connections and what its commits leave known, for the sync's writer.

On PostgreSQL the writer is a sync's bottleneck, and every statement of a page is a round trip
during which it waits for the server. So what repeats from page to page is done once:

* :meth:`Sessions.pinned`: the writer's transactions share one connection, instead of taking
  one from the pool per page (and the pool's ping with it); that session commits without
  waiting for the disk once (:func:`no_disk_wait`), instead of a ``SET LOCAL`` per page.
* :meth:`Sessions.after_commit`: what a transaction wrote is remembered only once it
  committed (a rolled-back page forgets nothing it did not write).
* :class:`EventIds`: ids for new ``events`` rows are drawn from the sequence in blocks.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError

from archiver.storage.models import EVENTS
from archiver.storage.pgcopy import prepare_session

# The key in a pinned connection's ``info``: its session commits without waiting for the disk.
# The pool clears ``info`` when it replaces a broken connection, so the mark never outlives it.
_NO_DISK_WAIT = "archiver_no_disk_wait"
# events ids drawn from the sequence at a time (a page holds up to 100 events)
EVENT_ID_BLOCK = 1000


class Sessions:
    """A thread's pinned connection, and the callbacks waiting for its transaction's commit."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._local = threading.local()

    @contextmanager
    def transaction(self, *, wait_for_disk: bool) -> Iterator[Connection]:
        """A write transaction (see ``Store.transaction``), then the callbacks registered by
        :meth:`after_commit` during it, if it committed."""
        with self._connection() as conn:
            conn = conn.execution_options(sqlite_immediate=True)
            postgresql = conn.dialect.name == "postgresql"
            if postgresql:
                prepare_session(conn)
                if not wait_for_disk and conn is self._pinned():
                    no_disk_wait(conn)
            self._local.committed = committed = list[Callable[[], None]]()
            try:
                with conn.begin():
                    if postgresql:
                        no_wait = bool(conn.connection.info.get(_NO_DISK_WAIT))
                        if no_wait and wait_for_disk:
                            conn.exec_driver_sql("SET LOCAL synchronous_commit = on")
                        elif not no_wait and not wait_for_disk:
                            conn.exec_driver_sql("SET LOCAL synchronous_commit = off")
                    yield conn
            finally:
                self._local.committed = None
            for remember in committed:
                remember()

    def after_commit(self, remember: Callable[[], None]) -> None:
        """Run ``remember`` once this thread's :meth:`transaction` commits, never if it rolls
        back. Outside one it is dropped: nothing says whether the caller's transaction
        commits, so nothing is remembered."""
        committed = getattr(self._local, "committed", None)
        if committed is not None:
            committed.append(remember)

    @contextmanager
    def pinned(self) -> Iterator[None]:
        """This thread's transactions share one connection until the block ends (PostgreSQL).

        The sync's writer commits a page at a time, and each took a connection from the pool,
        which pings it first: a round trip per page on the writer's critical path. Its
        commits that do not wait for the disk set that once for the pinned session
        (:func:`no_disk_wait`), not per page; the connection goes back to the pool with the
        server's default again. Elsewhere (SQLite, or already pinned) it changes nothing.
        """
        if self.engine.dialect.name != "postgresql" or self._pinned() is not None:
            yield
            return
        with self.engine.connect() as conn:
            self._local.pinned = conn
            try:
                yield
            finally:
                self._local.pinned = None
                disk_wait_again(conn)

    def _pinned(self) -> Connection | None:
        pinned: Connection | None = getattr(self._local, "pinned", None)
        return pinned

    @contextmanager
    def _connection(self) -> Iterator[Connection]:
        pinned = self._pinned()
        if pinned is not None:
            yield pinned
            return
        with self.engine.connect() as conn:
            yield conn


def no_disk_wait(conn: Connection) -> None:
    """The session's commits stop waiting for the disk (``synchronous_commit = off``), set
    outside any transaction (a rolled-back one would undo the ``SET``)."""
    info = conn.connection.info
    if not info.get(_NO_DISK_WAIT):
        conn.exec_driver_sql("SET synchronous_commit = off")
        conn.commit()
        info[_NO_DISK_WAIT] = True


def disk_wait_again(conn: Connection) -> None:
    """Undo :func:`no_disk_wait` before the connection goes back to the pool, or drop the
    connection if that fails: no other transaction may inherit the setting."""
    if conn.invalidated or not conn.connection.info.get(_NO_DISK_WAIT):
        return
    try:
        conn.rollback()
        conn.exec_driver_sql("RESET synchronous_commit")
        conn.commit()
        conn.connection.info.pop(_NO_DISK_WAIT, None)
    except DBAPIError:
        conn.invalidate()


class EventIds:
    """Ids for new ``events`` rows written by COPY (which has no RETURNING).

    Drawn from the table's sequence in blocks of :data:`EVENT_ID_BLOCK`: a round trip every
    few pages, not one per page before its COPY. Drawn ids are this process's alone,
    committed or not, so several processes on one archive never share one; the ids a run
    leaves unused are a gap, as rolled-back inserts leave. Thread-safe.
    """

    def __init__(self) -> None:
        self._ids: deque[int] = deque()
        self._lock = threading.Lock()

    def take(self, conn: Connection, count: int) -> list[int]:
        with self._lock:
            if len(self._ids) < count:
                drawn = conn.exec_driver_sql(
                    "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
                    (
                        conn.dialect.identifier_preparer.format_table(EVENTS),
                        max(count, EVENT_ID_BLOCK),
                    ),
                )
                self._ids.extend(int(pk) for (pk,) in drawn)
            return [self._ids.popleft() for _ in range(count)]
