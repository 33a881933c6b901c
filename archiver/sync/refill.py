"""More walks for a running walk: the next project's issues, asked for when the walks run low.

Why: on a shared PostgreSQL archive a sync walks the projects it leases, and a project's walk
ends with its biggest issues walked alone, page after page, while the other walk threads have
nothing to do. Started only after those tails, the next project's discovery and walks left a
core idle at the end of every project (the README's issue-17 figures). So while the walks are
going, a thread of its own asks for more (:data:`More`: in the engine, claim the next free
project's lease and discover its issues) whenever fewer than ``low`` walks are left, and
starts them in the same pool, under the same writer.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future

from archiver.errors import InterruptedRun
from archiver.sync.handoff import Shutdown
from archiver.sync.state import IssueWalk

log = logging.getLogger("archiver.sync.refill")

# More walks, or None when there is nothing more to ask for (no project left to claim).
More = Callable[[], list[IssueWalk] | None]


class Refill:
    """Keeps at least ``low`` walks going while :data:`More` has walks to give.

    ``start`` adds a walk to the pool and returns its future. ``futures`` are the writer's
    (it writes until all of them are done, this one's own included): the walks started here
    are appended to them before this one ends. Its errors end the run (``shutdown.fail``),
    except a stop request, which only ends the asking.
    """

    def __init__(
        self,
        more: More,
        start: Callable[[IssueWalk], Future[None]],
        futures: list[Future[None]],
        shutdown: Shutdown,
        low: int,
    ) -> None:
        self.more = more
        self.start = start
        self.futures = futures
        self.walks = list(futures)  # the walks only (the writer's list gets this one's too)
        for future in self.walks:
            future.add_done_callback(self.walk_ended)
        self.shutdown = shutdown
        self.low = low
        self._changed = threading.Condition()

    def walk_ended(self, _future: Future[None]) -> None:
        """A walk's done callback: maybe few enough are left to ask for more."""
        with self._changed:
            self._changed.notify_all()

    def _left(self) -> int:
        return sum(1 for f in self.walks if not f.done())

    def _wait_until_low(self) -> bool:
        """True once fewer than ``low`` walks are left; False when the run is stopping."""
        with self._changed:
            while not self.shutdown.requested and self._left() >= self.low:
                self._changed.wait(timeout=0.5)
        return not self.shutdown.requested

    def run(self) -> None:
        """Ask and start, until nothing more comes or the run stops (in a thread of its own)."""
        try:
            while self._wait_until_low():
                walks = self.more()
                if walks is None:
                    return
                for walk in walks:
                    if self.shutdown.requested:
                        return
                    future = self.start(walk)
                    self.walks.append(future)
                    future.add_done_callback(self.walk_ended)
                    self.futures.append(future)
        except InterruptedRun:
            return  # the run's stop: the walks in hand end as it says
        except BaseException as exc:
            log.debug("asking for more walks failed: %s", exc)
            self.shutdown.fail(exc)
            raise
