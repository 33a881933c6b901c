"""A child process's watch on the sync process: the child ends when the sync is gone.

The children of a ``ProcessPoolExecutor`` (the page workers, the zstd dictionary's training)
hold both ends of their pool's pipes, so they never see them close when the sync is killed: a
worker waits for work for ever, and one with a result bigger than the pipe's buffer blocks
sending it. Each starts :func:`watch_parent` first (the pool's ``initializer``).
"""

from __future__ import annotations

import os
import select
import threading
import time


def watch_parent(parent: int) -> None:
    """Start the thread that ends this process once ``parent`` is gone."""
    threading.Thread(
        target=exit_with_parent, args=(parent,), daemon=True, name="parent-watch"
    ).start()


def exit_with_parent(parent: int, interval: float = 0.5) -> None:
    """End this worker once the sync process is gone (killed with SIGKILL, say).

    A pool's workers would otherwise wait forever for work: they hold their own end of the
    task queue's pipe, so they never see it close. Watched through a pidfd where Linux has
    them: it is readable once the sync has exited, reaped or not, and never names another
    process. Polling the pid instead took a sync killed but not yet reaped (a zombie) for a
    live one, and would take a reused pid for it: the fallback where there is no pidfd.
    """
    try:
        pidfd = os.pidfd_open(parent)
    except ProcessLookupError:
        os._exit(0)
    except (AttributeError, OSError):  # no pidfd (not Linux, an old kernel): poll the pid
        pidfd = None
    if pidfd is not None:
        select.select([pidfd], [], [])
        os._exit(0)
    while True:
        time.sleep(interval)
        try:
            os.kill(parent, 0)
        except ProcessLookupError:
            os._exit(0)
        except PermissionError:  # pragma: no cover - the pid was reused by another user
            os._exit(0)
