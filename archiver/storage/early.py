"""A first sync's archive, begun as the ``sync`` command starts, in a child process.

Why: creating the schema (Alembic's import, eight migrations, about 150 statements) stood
between the sync's start-up and its first page, the sync waiting for it. Begun as the command
starts (:func:`archiver.sync.prestart.start_archive_upgrade`), the child is forked by the page
workers' fork server as soon as that has imported the workers' modules (SQLAlchemy and the
models among them): it builds the schema on that core while the sync process finishes its
own imports and asks the server for the projects. Forked from the sync process before its
imports instead, the child imported SQLAlchemy a second time on a machine whose two cores
were busy with those imports already, and the sync started later, not sooner.

A bad token must still fail before the database is touched, so nothing is committed before
the sync, past its first request, says so (:func:`archiver.storage.apart.upgrade_apart`):

* PostgreSQL: the child builds the schema at once, in the migration's one transaction, and
  holds it open until that word; without it (the sync is gone, or gave up) it exits, and the
  server rolls it all back. A current archive's child answers at once and exits.
* SQLite: a new file is not created before the word; the child only imports meanwhile. A
  current archive (every nightly run) starts nothing: read here with the standard library.

This module imports neither SQLAlchemy nor Alembic: the sync's own imports come after it. The
child ignores the terminal's Ctrl-C and SIGTERM (the sync decides how to stop), as the fork
server's other upgrade child does (:mod:`archiver.storage.apart`).
"""

from __future__ import annotations

import atexit
import multiprocessing
import os
import pickle
import signal
import sqlite3
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from urllib.parse import quote

from archiver.storage.revisions import head_revision

GO = b"g"  # the sync's word to the child: commit
POSTGRES_PREFIXES = ("postgres://", "postgresql://", "postgresql+psycopg://")


@dataclass
class Early:
    """The child begun by :func:`begin_upgrade`, as the sync sees it."""

    url: str  # as the command was given it
    process: BaseProcess
    starting: threading.Thread  # asks the fork server for it: that waits for the preload
    go: Connection  # GO, or closed without it
    answer: Connection  # its outcome: None, or the exception it raised


_early: Early | None = None


def begin_upgrade(url: str) -> bool:
    """Begin creating or upgrading the archive at ``url`` in a child process (True if begun).

    :func:`take` hands it to the run's ``prepare``; :func:`drop_early` (or this process's
    end) abandons it uncommitted. Nothing is begun for a current SQLite archive, for a URL
    that is neither a SQLite file nor PostgreSQL (``prepare`` does as before), in a process
    that has imported Alembic (it upgrades itself), or where there is no fork server.
    """
    global _early
    if _early is not None or "alembic" in sys.modules:
        return False
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return False
    postgres = url.startswith(POSTGRES_PREFIXES)
    if not postgres:
        path = _sqlite_path(url)
        if path is None or (path.exists() and _stored_revision(path) == head_revision()):
            return False
    context = multiprocessing.get_context("forkserver")
    go_read, go_write = context.Pipe(duplex=False)
    answer_read, answer_write = context.Pipe(duplex=False)
    # the URL through the fork server's socket, never argv
    process = context.Process(
        target=_child, args=(url, go_read, answer_write, postgres), name="archive-upgrade"
    )
    starting = threading.Thread(
        target=_start, args=(process, go_read, answer_write), name="archive-upgrade", daemon=True
    )
    starting.start()
    _early = Early(url, process, starting, go_write, answer_read)
    atexit.register(drop_early)  # before multiprocessing's own exit joins the child
    return True


def _start(process: BaseProcess, go_read: Connection, answer_write: Connection) -> None:
    try:
        process.start()
    except Exception:  # no child (no process, the fork server gone): the sync reads no
        pass  # answer and upgrades itself
    finally:
        go_read.close()  # the child has its own
        answer_write.close()


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
    early.starting.join()
    early.go.close()
    early.answer.close()
    if early.process.pid is not None:
        early.process.join()  # at once: it ends as soon as it reads the closed pipe


def collect(early: Early) -> tuple[bool, BaseException | None, int | None]:
    """(answered, its outcome, its exit code): the word to commit given, its answer awaited.

    Not answered: it died (killed, out of memory) or never started; the caller upgrades itself.
    """
    early.starting.join()
    try:
        early.go.send_bytes(GO)
    except OSError:  # it has answered and gone already, or died
        pass
    finally:
        early.go.close()
    try:
        outcome = early.answer.recv()
        answered = True
    except EOFError:
        outcome, answered = None, False
    finally:
        early.answer.close()
    if early.process.pid is not None:
        early.process.join()
    return answered, outcome, early.process.exitcode


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


def _child(url: str, go_read: Connection, send: Connection, postgres: bool) -> None:
    """In the child: the upgrade up to its commit, which waits for the sync's word."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    go = threading.Event()

    def watch() -> None:
        try:
            word = go_read.recv_bytes()
        except (EOFError, OSError):
            word = b""
        if word != GO:  # the sync is gone or gave up: what was done is rolled back
            os._exit(0)
        go.set()

    threading.Thread(target=watch, name="go", daemon=True).start()
    outcome: BaseException | None = None
    try:
        _upgrade(url, go, at_once=postgres)
    except Exception as exc:
        outcome = exc
    answer(send, outcome)


def _upgrade(url: str, go: threading.Event, *, at_once: bool) -> None:
    from archiver.storage import db

    def commit_when_told() -> None:
        go.wait()

    engine = db.make_engine(url)
    try:
        if not at_once:  # a SQLite file: not even created before the word
            from alembic import command  # noqa: F401  (meanwhile: the slow part)

            go.wait()
        if not db.is_current(engine):  # current (a nightly run on PostgreSQL): answered at once
            db.upgrade(engine, before_commit=commit_when_told)
    finally:
        engine.dispose()


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
