"""Creating or upgrading the archive's schema in a child process (the sync's first run).

Why: Alembic, its operations and the migration scripts stay in a process's memory once
imported, memory that a sync creating its archive carried through the whole backfill
(its peak RSS, the README's issue-17 memory figures). The child imports them and exits; the
sync keeps only what it needs. Where nothing is to be done (the archive is current, every
nightly run) nothing is started: that check reads ``alembic_version`` without Alembic.

The ``sync`` command begins it as it starts (:func:`begin_upgrade`, from
:mod:`archiver.sync.prestart`): a child forked then builds a new PostgreSQL archive's schema
while the command imports the rest and asks the server for the projects, and holds its
transaction open until the sync, past its first request, says to commit (:func:`upgrade_apart`)
or is gone (a bad token: nothing is written, as before). A SQLite file is not created before
that word (the child only imports meanwhile). Elsewhere (the scheduler, a run that could not
begin it) the child is forked by the fork server the page workers use; where none can run, the
upgrade runs here instead. A process that has imported Alembic already (a test run, the
scheduler after its first run) gains nothing from a child and upgrades itself.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import pickle
import signal
import sys
import threading
from dataclasses import dataclass
from multiprocessing.connection import Connection

from sqlalchemy import Engine

from archiver.errors import ArchiverError, DatabaseError
from archiver.storage import db

log = logging.getLogger("archiver.storage.apart")

GO = b"g"  # the sync's word to the early child: commit


@dataclass
class _Early:
    """The child begun by :func:`begin_upgrade`, as its parent sees it."""

    url: str  # the engine's URL, password included: which archive it upgrades
    pid: int
    go: int  # write end of a pipe: GO, or closed without it (gone, or gave up)
    answer: Connection  # its outcome: None or the exception it raised


_early: _Early | None = None


def begin_upgrade(url: str) -> bool:
    """Begin creating or upgrading the archive at ``url`` in a forked child (True if begun).

    :func:`upgrade_apart` on an engine of the same URL collects it; :func:`drop_early` (or
    this process's end) abandons it uncommitted. Nothing is begun for a current SQLite archive,
    where the URL fails (the sync reports it, as before), for an in-memory database, in a
    process that has imported Alembic or runs threads (a fork copies no thread), or without
    ``fork``. A PostgreSQL archive's child decides itself (it checks, answers, exits): asking
    here would wait for the server before the sync's imports.
    """
    global _early
    if _early is not None or not _may_fork():
        return False
    try:
        engine = db.make_engine(url)
    except ArchiverError:
        return False
    try:
        key = engine.url.render_as_string(hide_password=False)
        sqlite = engine.dialect.name == "sqlite"
        if sqlite:
            path = db.sqlite_file(url)
            if path is None or (path.exists() and db.is_current(engine)):
                return False
    except ArchiverError:
        return False
    finally:
        engine.dispose()  # the child opens its own connections
    _early = _fork(key, url, connect_at_once=not sqlite)
    return _early is not None


def _may_fork() -> bool:
    return (
        hasattr(os, "fork")
        and "alembic" not in sys.modules
        and threading.active_count() == 1
        and threading.current_thread() is threading.main_thread()
    )


def drop_early() -> None:
    """Abandon an early upgrade that was not collected: its child rolls back and exits."""
    global _early
    early, _early = _early, None
    if early is None:
        return
    os.close(early.go)
    early.answer.close()
    os.waitpid(early.pid, 0)  # at once: it ends as soon as it reads the closed pipe


def _fork(key: str, url: str, *, connect_at_once: bool) -> _Early | None:
    go_read, go_write = os.pipe()
    answer_read, answer_write = os.pipe()
    # no Ctrl-C between the fork and the child's own handlers; this process's waits for later
    signals = {signal.SIGINT, signal.SIGTERM}
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    try:
        pid = os.fork()
    except OSError as exc:
        log.debug("no child process for the early schema upgrade (%s)", exc)
        pid = -1
    if pid == 0:
        code = 1
        try:
            for signum in signals:
                signal.signal(signum, signal.SIG_IGN)
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            _close_fds_but(go_read, answer_write)
            _early_child(url, go_read, Connection(answer_write, readable=False), connect_at_once)
            code = 0
        finally:
            os._exit(code)
    signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    os.close(go_read)
    os.close(answer_write)
    if pid < 0:
        os.close(go_write)
        os.close(answer_read)
        return None
    return _Early(key, pid, go_write, Connection(answer_read, writable=False))


def _close_fds_but(*keep: int) -> None:
    """Close what the child inherited beyond the standard streams and its pipes: the fork
    server's and the resource tracker's pipes among them, which end when the sync does."""
    low = 3
    for fd in sorted(keep):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, os.sysconf("SC_OPEN_MAX"))


def _early_child(url: str, go_read: int, send: Connection, connect_at_once: bool) -> None:
    """In the early child: the upgrade up to its commit, which waits for the sync's word."""
    go = threading.Event()

    def commit_when_told() -> None:
        go.wait()

    def watch() -> None:
        try:
            word = os.read(go_read, 1)
        except OSError:
            word = b""
        if word != GO:  # the sync is gone or gave up: what was done is rolled back
            os._exit(0)
        go.set()

    threading.Thread(target=watch, name="go", daemon=True).start()
    outcome: BaseException | None = None
    try:
        from alembic import command  # noqa: F401  (imported meanwhile: the slow part here)

        engine = db.make_engine(url)
        try:
            if not connect_at_once:
                go.wait()
            if not db.is_current(engine):  # current (every nightly run): answered at once
                db.upgrade(engine, before_commit=commit_when_told)
        finally:
            engine.dispose()
    except Exception as exc:
        outcome = exc
    _answer(send, outcome)


def _collect(early: _Early) -> tuple[bool, BaseException | None]:
    """(answered, its outcome): the word to commit given, the child's answer awaited."""
    try:
        os.write(early.go, GO)
    except OSError:  # it has answered and gone already (or died)
        pass
    finally:
        os.close(early.go)
    try:
        outcome = early.answer.recv()
    except EOFError:
        _, status = os.waitpid(early.pid, 0)
        log.warning(
            "the schema upgrade's process ended without an answer (exit code %s); "
            "upgrading in this process",
            os.waitstatus_to_exitcode(status),
        )
        return False, None
    finally:
        early.answer.close()
    os.waitpid(early.pid, 0)
    return True, outcome


def upgrade_apart(engine: Engine) -> None:
    """:func:`archiver.storage.db.upgrade` to the head, in a child process when one is due.

    Its errors (an archive newer than this version, a database of another application, ...)
    are raised here as the child raised them. The child is a process of its own, not a
    pool's worker: it ends when the upgrade does, even if this process was killed meanwhile.
    """
    global _early
    if _early is not None and _early.url == engine.url.render_as_string(hide_password=False):
        early, _early = _early, None
        answered, outcome = _collect(early)
        if not answered:
            db.upgrade(engine)
        elif outcome is not None:
            raise outcome
        return
    if db.is_current(engine):
        return
    if "alembic" in sys.modules or "forkserver" not in multiprocessing.get_all_start_methods():
        db.upgrade(engine)
        return
    context = multiprocessing.get_context("forkserver")
    answer, send = context.Pipe(duplex=False)
    url = engine.url.render_as_string(hide_password=False)  # through the pipe, not argv
    child = context.Process(target=_upgrade, args=(url, send), name="archive-upgrade")
    try:
        child.start()
    except OSError as exc:
        log.debug("no child process for the schema upgrade (%s); upgrading here", exc)
        db.upgrade(engine)
        return
    send.close()
    try:
        outcome = answer.recv()
    except EOFError:  # it died without an answer (killed, out of memory): try here
        child.join()
        log.warning(
            "the schema upgrade's process ended without an answer (exit code %s); "
            "upgrading in this process",
            child.exitcode,
        )
        db.upgrade(engine)
        return
    finally:
        answer.close()
    child.join()
    if isinstance(outcome, BaseException):
        raise outcome


def _upgrade(url: str, send: Connection) -> None:
    """In the child: the same upgrade on an engine of its own; its error sent back."""
    # A terminal's Ctrl-C reaches the whole process group: the sync decides how to stop,
    # once the upgrade (one transaction per step) is done.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    outcome: BaseException | None = None
    engine = db.make_engine(url)
    try:
        db.upgrade(engine)
    except Exception as exc:
        outcome = exc
    finally:
        engine.dispose()
    _answer(send, outcome)


def _answer(send: Connection, outcome: BaseException | None) -> None:
    try:
        pickle.dumps(outcome)
    except Exception:
        outcome = DatabaseError(f"the schema upgrade failed: {type(outcome).__name__}: {outcome}")
    try:
        send.send(outcome)
    except OSError:  # the sync is gone: nobody to tell
        pass
    send.close()
