"""When the client's waits end: on the run's stop, and on the waiting thread's own.

One client serves every walk of a run, and its stop is the run's (a signal). But a walk can
stop without the run: with several syncs on one PostgreSQL archive, a project whose lease
another sync took over is handed over, and only that project's walks stop. Their threads
must not sleep on through a ten-minute ``Retry-After`` meanwhile, so a thread names its own
stop (:meth:`Stops.stopping`) and its waits end on either.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

from archiver.errors import InterruptedRun


class Stops:
    """The run's stop event (None: none) and each thread's own."""

    def __init__(self, run: threading.Event | None) -> None:
        self.run = run
        self._local = threading.local()

    def _own(self) -> threading.Event | None:
        own: threading.Event | None = getattr(self._local, "stop", None)
        return own

    def check(self) -> None:
        """Raise :class:`InterruptedRun` when the run, or this thread's walk, is stopping."""
        own = self._own()
        if (self.run is not None and self.run.is_set()) or (own is not None and own.is_set()):
            raise InterruptedRun("stopped while waiting to retry a request to Sentry")

    def wait(self, seconds: float) -> None:
        """Sleep ``seconds``, cut short by this thread's stop, else by the run's (a thread's
        own stop is a project's, which the run's stop sets as well: :class:`ProjectStop`)."""
        stop = self._own() or self.run
        if stop is None:
            time.sleep(seconds)
        else:
            stop.wait(seconds)

    @contextlib.contextmanager
    def stopping(self, stop: threading.Event) -> Iterator[None]:
        """Within this block, this thread's waits also end once ``stop`` is set."""
        previous = self._own()
        self._local.stop = stop
        try:
            yield
        finally:
            self._local.stop = previous
