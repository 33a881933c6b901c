"""sentry-archiver: a permanent, queryable copy of a Sentry organization's events."""

import sys

__version__ = "0.1.0"

# httpx's package imports its own command line (``httpx._main``) whenever click, rich and
# pygments are importable, as they are here: about 3 MB of memory in the sync process and in
# every worker process, for a command nobody runs through us. Marking the module as absent
# makes httpx fall back to its stub (it catches the ImportError); importing it explicitly
# would fail, which nothing in this package does.
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
