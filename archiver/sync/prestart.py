"""Starting the page workers' fork server at once, while the sync process starts up itself.

Why: a page worker is forked from a server process that imports the normalization code first
(about as long as the sync process's own imports). Started when the first page arrived, that
import stood between the first page and its rows while the walks waited; started as the
command begins, it runs on the other core while this process imports, upgrades the archive
and discovers issues.
"""

from __future__ import annotations

import multiprocessing
from multiprocessing import forkserver

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
