"""Creating or upgrading the archive's schema in a child process (the sync's first run).

Why: Alembic, its operations and the migration scripts stay in a process's memory once
imported, memory that a sync creating its archive carried through the whole backfill
(its peak RSS, the README's issue-17 memory figures). The child imports them and exits; the
sync keeps only what it needs. Where nothing is to be done (the archive is current, every
nightly run) nothing is started: that check reads ``alembic_version`` without Alembic.

The ``sync`` command begins it as it starts (:mod:`archiver.storage.early`): then this
only says to commit and collects the answer. Elsewhere (the scheduler, a run that could not
begin it) the child is forked by the fork server the page workers use; where none can run, the
upgrade runs here instead. A process that has imported Alembic already (a test run, the
scheduler after its first run) gains nothing from a child and upgrades itself.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import sys
from multiprocessing.connection import Connection

from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from archiver.storage import db, early

log = logging.getLogger("archiver.storage.apart")


def upgrade_apart(engine: Engine) -> None:
    """:func:`archiver.storage.db.upgrade` to the head, in a child process when one is due.

    Its errors (an archive newer than this version, a database of another application, ...)
    are raised here as the child raised them. The child is a process of its own, not a
    pool's worker: it ends when the upgrade does, even if this process was killed meanwhile.
    """
    url = engine.url.render_as_string(hide_password=False)  # through a pipe, never argv
    begun = early.take(lambda given: _same_url(given, url))
    if begun is not None:  # by the `sync` command as it started
        answered, outcome, code = early.collect(begun)
        if not answered:
            _fell_back(engine, code)
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
    early.answer(send, outcome)


def _same_url(given: str, url: str) -> bool:
    try:
        return make_url(db.normalize_url(given)).render_as_string(hide_password=False) == url
    except ArgumentError:
        return False


def _fell_back(engine: Engine, code: int | None) -> None:
    """The early child died without an answer: upgrade here, as when the other one does."""
    log.warning(
        "the schema upgrade's process ended without an answer (exit code %s); "
        "upgrading in this process",
        code,
    )
    db.upgrade(engine)
