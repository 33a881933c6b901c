"""Creating or upgrading the archive's schema in a child process (the sync's first run).

Why: Alembic, its operations and the migration scripts stay in a process's memory once
imported, about 8 MB that a sync creating its archive carried through the whole backfill
(its peak RSS, the README's issue-17 memory figures). The child imports them and exits; the
sync keeps only what it needs. Where nothing is to be done (the archive is current, every
nightly run) nothing is started: that check reads ``alembic_version`` without Alembic.

The child is forked by the fork server the page workers use (started as the command begins,
see :mod:`archiver.sync.prestart`); where none can run, the upgrade runs here instead. A
process that has imported Alembic already (a test run, the scheduler after its first run)
gains nothing from a child and upgrades itself.
"""

from __future__ import annotations

import logging
import multiprocessing
import sys
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from sqlalchemy import Engine

from archiver.storage import db

log = logging.getLogger("archiver.storage.apart")


def upgrade_apart(engine: Engine) -> None:
    """:func:`archiver.storage.db.upgrade` to the head, in a child process when one is due.

    Its errors (an archive newer than this version, a database of another application, ...)
    are raised here as the child raised them.
    """
    if db.is_current(engine):
        return
    if "alembic" in sys.modules or "forkserver" not in multiprocessing.get_all_start_methods():
        db.upgrade(engine)
        return
    url = engine.url.render_as_string(hide_password=False)
    try:
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("forkserver")) as pool:
            future = pool.submit(_upgrade, url)
            future.result()
    except (BrokenProcessPool, OSError) as exc:
        log.debug("no child process for the schema upgrade (%s); upgrading here", exc)
        db.upgrade(engine)


def _upgrade(url: str) -> None:
    """In the child: the same upgrade on an engine of its own (a pool is not shared)."""
    engine = db.make_engine(url)
    try:
        db.upgrade(engine)
    finally:
        engine.dispose()
