"""A first sync's archive, begun as the ``sync`` command starts, in a forked child.

Why: creating the schema (Alembic's import, eight migrations, about 150 statements) stood
between the sync's start-up and its first page, the sync waiting for it; begun as the command
starts (:func:`archiver.sync.prestart.start_archive_upgrade`), it runs while the sync process
imports the rest and asks the server for the projects.

A bad token must still fail before the database is touched, so nothing is committed before
the sync, past its first request, says so (:func:`archiver.storage.apart.upgrade_apart`):

* PostgreSQL: the child builds the schema at once, in the migration's one transaction, and
  holds it open until that word; without it (the sync is gone, or gave up) it exits, and the
  server rolls it all back. A current archive's child answers at once and exits.
* SQLite: a new file is not created before the word; the child only imports meanwhile. A
  current archive (every nightly run) starts nothing: read here with the standard library.

This module imports neither SQLAlchemy nor Alembic: the sync's own imports come after it,
and a nightly run must not pay for them any earlier. The child is forked before them, from a
process that runs no thread, and closes every descriptor it inherited but its own pipes; it
ignores the terminal's Ctrl-C and SIGTERM (the sync decides how to stop), as the fork
server's child does (:mod:`archiver.storage.apart`).
"""

from __future__ import annotations

import os
import pickle
import signal
import sqlite3
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from urllib.parse import quote

from archiver.storage.revisions import head_revision

GO = b"g"  # the sync's word to the child: commit
POSTGRES_PREFIXES = ("postgres://", "postgresql://", "postgresql+psycopg://")


@dataclass
class Early:
    """The child begun by :func:`begin_upgrade`, as the sync sees it."""

    url: str  # as the command was given it
    pid: int
    go: int  # write end of a pipe: GO, or closed without it
    answer: Connection  # its outcome: None, or the exception it raised


_early: Early | None = None


def begin_upgrade(url: str) -> bool:
    """Begin creating or upgrading the archive at ``url`` in a forked child (True if begun).

    :func:`take` hands it to the run's ``prepare``; :func:`drop_early` (or this process's
    end) abandons it uncommitted. Nothing is begun for a current SQLite archive, for a URL
    that is neither a SQLite file nor PostgreSQL (``prepare`` does as before), where the
    driver is missing (the sync says so), in a process that has imported Alembic or runs
    threads, or without ``fork``.
    """
    global _early
    if _early is not None or not _may_fork():
        return False
    if url.startswith(POSTGRES_PREFIXES):
        try:  # imported for the child too: the sync imports it next anyway
            import psycopg  # noqa: F401
        except ImportError:
            return False
        _early = _fork(url, postgres=True)
    else:
        path = _sqlite_path(url)
        if path is None or (path.exists() and _stored_revision(path) == head_revision()):
            return False
        _early = _fork(url, postgres=False)
    return _early is not None


def take(matches: Callable[[str], bool] = lambda url: True) -> Early | None:
    """The begun child, if its URL ``matches``, for the run's ``prepare`` (it is then no
    longer this module's)."""
    global _early
    early = _early
    if early is None or not matches(early.url):
        return None
    _early = None
    return early


def drop_early() -> None:
    """Abandon a begun child that was not collected: it rolls back and exits."""
    early = take()
    if early is None:
        return
    os.close(early.go)
    early.answer.close()
    os.waitpid(early.pid, 0)  # at once: it ends as soon as it reads the closed pipe


def collect(early: Early) -> tuple[bool, BaseException | None]:
    """(answered, its outcome): the word to commit given, the child's answer awaited.

    Not answered: it died (killed, out of memory); the caller upgrades itself.
    """
    try:
        os.write(early.go, GO)
    except OSError:  # it has answered and gone already, or died
        pass
    finally:
        os.close(early.go)
    try:
        outcome = early.answer.recv()
    except EOFError:
        return False, None
    finally:
        early.answer.close()
    os.waitpid(early.pid, 0)
    return True, outcome


def _may_fork() -> bool:
    return (
        hasattr(os, "fork")
        and "alembic" not in sys.modules
        and threading.active_count() == 1
        and threading.current_thread() is threading.main_thread()
    )


def _sqlite_path(url: str) -> Path | None:
    """The file of a plain ``sqlite:///`` URL; None for anything else (``prepare`` decides)."""
    prefix = "sqlite:///"
    rest = url[len(prefix) :] if url.startswith(prefix) else ""
    if not rest or rest.startswith((":memory:", "file:")) or any(c in rest for c in "?%"):
        return None
    return Path(rest).expanduser().resolve()


def _stored_revision(path: Path) -> str | None:
    """The revision an existing SQLite archive records, read without writing anything (None
    where it cannot be read: then the child decides)."""
    try:
        connection = sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error:
        return None
    try:
        rows = connection.execute("SELECT version_num FROM alembic_version").fetchall()
    except sqlite3.Error:
        return None
    finally:
        connection.close()
    return str(rows[0][0]) if len(rows) == 1 else None


def _fork(url: str, *, postgres: bool) -> Early | None:
    go_read, go_write = os.pipe()
    answer_read, answer_write = os.pipe()
    # no Ctrl-C between the fork and the child's own handlers; this process's waits till after
    signals = {signal.SIGINT, signal.SIGTERM}
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    try:
        pid = os.fork()
    except OSError:
        pid = -1
    if pid == 0:
        code = 1
        try:
            for signum in signals:
                signal.signal(signum, signal.SIG_IGN)
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            _close_fds_but(go_read, answer_write)
            _child(url, go_read, Connection(answer_write, readable=False), postgres)
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
    return Early(url, pid, go_write, Connection(answer_read, writable=False))


def _close_fds_but(*keep: int) -> None:
    """Close what the child inherited beyond the standard streams and its pipes (the fork
    server's and the resource tracker's among them: they end when the sync does)."""
    low = 3
    for fd in sorted(keep):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, os.sysconf("SC_OPEN_MAX"))


def _child(url: str, go_read: int, send: Connection, postgres: bool) -> None:
    """In the child: the upgrade up to its commit, which waits for the sync's word."""
    go = threading.Event()

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
        if postgres and _current_postgres(url):
            outcome = None  # every nightly run: answered at once, nothing imported
        else:
            _upgrade(url, go, at_once=postgres)
    except Exception as exc:
        outcome = exc
    answer(send, outcome)


def answer(send: Connection, outcome: BaseException | None) -> None:
    """Send a child's outcome to the sync (an error that cannot be pickled, as its text)."""
    try:
        pickle.dumps(outcome)
    except Exception:
        from archiver.errors import DatabaseError

        outcome = DatabaseError(f"the schema upgrade failed: {type(outcome).__name__}: {outcome}")
    try:
        send.send(outcome)
    except OSError:  # the sync is gone: nobody to tell
        pass
    send.close()


def _current_postgres(url: str) -> bool:
    """Whether a PostgreSQL archive is current, asked with the driver alone (False where that
    fails: the upgrade's own connection then says why, as the sync always said it)."""
    import psycopg

    conninfo = url.replace("postgresql+psycopg://", "postgresql://", 1)
    try:
        with psycopg.connect(conninfo) as connection:
            found = connection.execute("SELECT to_regclass('alembic_version')").fetchone()
            if found is None or found[0] is None:
                return False
            rows = connection.execute("SELECT version_num FROM alembic_version").fetchall()
    except psycopg.Error:
        return False
    return len(rows) == 1 and rows[0][0] == head_revision()


def _upgrade(url: str, go: threading.Event, *, at_once: bool) -> None:
    from alembic import command  # noqa: F401  (imported meanwhile: the slow part)

    from archiver.storage import db

    def commit_when_told() -> None:
        go.wait()

    engine = db.make_engine(url)
    try:
        if not at_once:  # a SQLite file: not even created before the word
            go.wait()
        if not db.is_current(engine):
            db.upgrade(engine, before_commit=commit_when_told)
    finally:
        engine.dispose()
