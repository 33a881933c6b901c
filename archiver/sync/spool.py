"""A run's spool: page bodies and their encoded events wait in files, not in the sync process.

Why files: a page of 100 full events can be 12 MB of JSON, and while it travels (read from
the socket, handed to a worker process, its rows handed back, waiting for the writer) it
existed two or three times over in the sync process, so peak memory followed the largest
pages of the organisation rather than anything the user controls. Spooled, a fetch thread
streams the body to a file chunk by chunk, the worker reads it from there and writes each
encoded event to a second file, and the writer reads those back a batch at a time. The bytes
in the spool are bounded by the sync's in-flight budget (pages fetched but not committed).

Each run spools in a directory of its own, ``sentry-archiver-spool-<pid>-<random>`` under the
system's temporary directory (``TMPDIR``), removed when the run ends. A run killed with
SIGKILL cannot remove its own; the next run removes every spool directory whose process is
gone. The spool holds nothing the archive needs: a page that was not committed is fetched
again on resume.
"""

from __future__ import annotations

import itertools
import logging
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from archiver.errors import ArchiverError

log = logging.getLogger("archiver.sync.spool")

PREFIX = "sentry-archiver-spool-"


@dataclass(frozen=True)
class PageFiles:
    """Where one page's body and its encoded events are spooled."""

    body: str
    rows: str

    def discard(self) -> None:
        for path in (self.body, self.rows):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: not ours to judge
        return True
    return True


def remove_stale(parent: str | os.PathLike[str] | None = None) -> list[Path]:
    """Remove spool directories left by runs whose process is gone (killed with SIGKILL)."""
    removed: list[Path] = []
    root = Path(parent if parent is not None else tempfile.gettempdir())
    try:
        candidates = list(root.glob(PREFIX + "*"))
    except OSError:
        return removed
    for path in candidates:
        pid_text = path.name[len(PREFIX) :].split("-", 1)[0]
        if not pid_text.isdigit() or not path.is_dir() or _alive(int(pid_text)):
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
        log.info("removed the spool of an earlier run that was killed: %s", path)
    return removed


class Spool:
    """A run's spool directory; thread-safe; a context manager that removes it."""

    def __init__(self, parent: str | os.PathLike[str] | None = None) -> None:
        remove_stale(parent)
        try:
            self.path = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=parent))
        except OSError as exc:
            where = parent if parent is not None else tempfile.gettempdir()
            raise ArchiverError(
                f"cannot create the sync's spool directory in {where} ({exc.strerror}); set "
                "TMPDIR to a writable directory with room for about 50 MB"
            ) from None
        self._counter = itertools.count()
        self._lock = threading.Lock()

    def page(self) -> PageFiles:
        with self._lock:
            n = next(self._counter)
        return PageFiles(str(self.path / f"{n}.body"), str(self.path / f"{n}.rows"))

    def close(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    def __enter__(self) -> Spool:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
