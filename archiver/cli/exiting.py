"""Ending a ``sync`` process at once when its work is saved, not object by object.

Why: at its end a sync process holds tens of MB of Python objects (the imported libraries,
their caches, the heap the walk froze), and the interpreter's finalization frees them one at a
time: a few tenths of a second of one core after the last page is committed, nearly all of a
backfill's tail (the README's performance section has the figure). By then everything the
run leaves behind is saved: the archive committed and closed, the spool removed, the run lock
released, the page workers joined. So the entry point runs the exit handlers (logging's
flush, multiprocessing's clean-up of its directory in TMPDIR), flushes the output and ends the
process with ``os._exit``, when the command asked for it and no other thread still runs (one
could be writing something: then the interpreter's ordinary exit waits for it).
"""

from __future__ import annotations

import atexit
import os
import sys
import threading

_allowed = threading.Event()


def allow() -> None:
    """The command's work needs nothing of the interpreter's own exit (sync)."""
    _allowed.set()


def reset() -> None:
    _allowed.clear()


def end_now(exc: SystemExit) -> None:
    """End the process with ``exc``'s code at once, if allowed and safe; else return."""
    code = exc.code
    if code is None:
        code = 0
    if not _allowed.is_set() or not isinstance(code, int) or _other_threads():
        return
    # What an ordinary exit runs first: logging's flush, multiprocessing's clean-up (the fork
    # server's directory in TMPDIR) and any other handler; only the freeing is skipped.
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can be said
            pass
    os._exit(code)


def _other_threads() -> bool:
    main = threading.main_thread()
    return any(t is not main and not t.daemon and t.is_alive() for t in threading.enumerate())
