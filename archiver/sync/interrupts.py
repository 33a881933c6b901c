"""A second Ctrl-C: at once, but at a point where it cannot leave a lock held.

The second SIGINT stops the run without waiting for the current page. Raised by the signal
handler, its KeyboardInterrupt would land at whatever bytecode the main thread is running:
inside a Python-level ``Condition.__enter__`` (a ThreadPoolExecutor's ``submit``, a queue's
``get``, the writer's lanes) it leaves that condition's lock held (the CPython hazard of
asynchronous exceptions in ``with``, bpo-29988), and the walk threads the run then joins
block on it forever.

So while the main thread runs the writer (:func:`deferred`), the handler only records the
interrupt (:func:`interrupt`) and the writer raises it at its next look at the inbox
(:func:`check`): a tenth of a second at most, or the end of the page it is committing.
Elsewhere (discovery's requests, the locks) it is raised at once, as before.

The state is the process's, like the signal handler itself, and only the main thread (where
Python runs signal handlers) defers.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

_depth = 0
_pending = False


def _main() -> bool:
    return threading.current_thread() is threading.main_thread()


def deferring() -> bool:
    """Whether an interrupt now would be recorded rather than raised."""
    return _depth > 0 and _main()


def interrupt() -> None:
    """The second Ctrl-C (from the signal handler): raised now, or recorded for :func:`check`."""
    global _pending
    if not deferring():
        raise KeyboardInterrupt
    _pending = True


def check() -> None:
    """Raise the interrupt recorded in this region, if any (the writer's safe point)."""
    global _pending
    if _pending and _main():
        _pending = False
        raise KeyboardInterrupt


@contextmanager
def deferred() -> Iterator[None]:
    """Record interrupts instead of raising them, in the main thread, for the block's time.

    An interrupt still recorded when the block ends is raised then, unless the block already
    ends with an exception (which is the run's end anyway)."""
    global _depth, _pending
    if not _main():
        yield
        return
    _depth += 1
    try:
        yield
    except BaseException:
        _depth -= 1
        if _depth == 0:
            _pending = False
        raise
    _depth -= 1
    if _depth == 0:
        check()
