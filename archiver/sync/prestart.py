"""Starting the page workers' fork server at once, while the sync process starts up itself.

The archive's creation (a first sync's schema) begins then as well, in a child of its own
(:func:`start_archive_upgrade`).

Why: a page worker is forked from a server process that imports the normalization code first
(about as long as the sync process's own imports). Started when the first page arrived, that
import stood between the first page and its rows while the walks waited; started as the
command begins, it runs on the other core while this process imports, upgrades the archive
and discovers issues.
"""

from __future__ import annotations

import multiprocessing
from multiprocessing import forkserver
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from archiver.config import Settings

# What the fork server imports before it forks a worker (:mod:`archiver.sync.workers`).
WORKER_MODULES = ["archiver.sync.workers"]


def start_fork_server(workers: int) -> bool:
    """Start the fork server of ``workers`` page workers now (True if started or running).

    Nothing to do without workers, or where there is no fork server (``spawn`` elsewhere).
    """
    if workers <= 0 or "forkserver" not in multiprocessing.get_all_start_methods():
        return False
    multiprocessing.get_context("forkserver").set_forkserver_preload(WORKER_MODULES)
    forkserver.ensure_running()
    return True


def start_archive_upgrade(settings: Settings) -> bool:
    """Begin creating or upgrading the run's archive now, in a child of the workers' fork
    server (True if begun): its statements overlap this process's start-up; the run's
    ``prepare`` collects it (:mod:`archiver.storage.early`, which imports neither SQLAlchemy
    nor Alembic). Nothing without workers (no fork server has SQLAlchemy imported for the
    child: importing it again on a busy core cost more than it saved), nor for a run that
    lacks what it needs to start (it fails at once)."""
    if settings.workers <= 0 or not settings.token or not settings.org:
        return False
    from archiver.storage import early

    return early.begin_upgrade(settings.db)
