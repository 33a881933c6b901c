"""A page worker's watch on the sync process: the worker ends when the sync is gone."""

from __future__ import annotations

import os
import select
import time


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
