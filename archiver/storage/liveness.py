"""Which processes are alive: runs left ``running`` by killed processes, sync sessions.

Kept apart from :mod:`archiver.storage.lock` so the lock and the project leases
(:mod:`archiver.storage.leases`) share it. On PostgreSQL a sync process names its lock
session ``sentry-archiver sync HOST PID`` (``application_name``): the server itself then says
which syncs are alive, on any machine, and a SIGKILLed one vanishes with its session.
"""

from __future__ import annotations

import logging
import os
import socket

from sqlalchemy import Connection, Engine, select, text, update

from archiver.storage.base import utcnow
from archiver.storage.models import RUNS

log = logging.getLogger("archiver.storage.lock")

# Commands whose ``runs`` row is ``running`` only while they hold the lock: once another
# process holds it, such a row was left by a process that died without recording its end.
LOCKED_COMMANDS = ("sync",)
APP_PREFIX = "sentry-archiver "


def pid_alive(pid: int) -> bool:
    """Is there a process with this pid on this machine (one we may not signal counts)?"""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def application_name(command: str) -> str:
    """The lock session's name: ``sentry-archiver COMMAND HOST PID`` (PostgreSQL keeps 63
    bytes: a very long host name is cut in the middle, the pid stays)."""
    host = socket.gethostname()
    tail = f" {os.getpid()}"
    head = f"{APP_PREFIX}{command} "
    room = 63 - len(head) - len(tail)
    return head + host[:room] + tail


def live_sessions(conn: Connection, key: int) -> list[tuple[str, str, int]]:
    """(command, host, pid) of every session holding the advisory lock ``key`` (PostgreSQL).

    The host may be cut (see :func:`application_name`); sessions of other programs are left
    out.
    """
    rows = conn.execute(
        text(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.database = (SELECT oid FROM "
            "pg_database WHERE datname = current_database()) "
            "AND ((l.classid::bigint << 32) | l.objid::bigint) = :key"
        ),
        {"key": key},
    ).all()
    found: list[tuple[str, str, int]] = []
    for (name,) in rows:
        parts = str(name or "").split(" ")
        if len(parts) == 4 and f"{parts[0]} " == APP_PREFIX and parts[3].isdigit():
            found.append((parts[1], parts[2], int(parts[3])))
    return found


def close_dead_runs(engine: Engine, key: int | None = None) -> int:
    """Mark ``interrupted`` the runs that died without recording their end; how many.

    A run killed by SIGKILL (or the OOM killer, or a lost machine) stays ``running`` in
    ``runs`` for ever, and ``status`` would show it as running. Called by the lock's new
    holder: a sync's row is dead once the lock is someone else's, unless (PostgreSQL, ``key``
    given: several syncs share the archive) its process's lock session is still there; any
    other command's only if its process, on this host, is gone. Bookkeeping only: a failure
    is logged, not raised.
    """
    try:
        with engine.connect() as conn:
            conn = conn.execution_options(sqlite_immediate=True)
            with conn.begin():
                alive = set()
                if key is not None and conn.dialect.name == "postgresql":
                    alive = {(host, pid) for _, host, pid in live_sessions(conn, key)}
                rows = conn.execute(
                    select(RUNS.c.id, RUNS.c.command, RUNS.c.host, RUNS.c.pid).where(
                        RUNS.c.outcome == "running"
                    )
                ).all()
                here = socket.gethostname()
                dead = [
                    row.id
                    for row in rows
                    if (
                        row.command in LOCKED_COMMANDS
                        and not any(
                            row.pid == pid and str(row.host or "").startswith(host)
                            for host, pid in alive
                        )
                    )
                    or (row.host == here and row.pid is not None and not pid_alive(row.pid))
                ]
                if dead:
                    conn.execute(
                        update(RUNS)
                        .where(RUNS.c.id.in_(dead), RUNS.c.outcome == "running")
                        .values(
                            outcome="interrupted",
                            finished_at=utcnow(),
                            error_message="the process ended without recording how (killed: "
                            "SIGKILL, out of memory, or its machine lost); marked by the next "
                            "run that took the run lock",
                        )
                    )
    except Exception as exc:
        log.warning("could not mark the runs of killed processes: %s", exc)
        return 0
    if dead:
        log.warning("%d earlier run(s) had been killed; now recorded as interrupted", len(dead))
    return len(dead)
