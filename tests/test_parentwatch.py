"""A page worker ends once the sync process is gone, even before anyone reaps it.

A worker holds both ends of its pool's pipes, so it never sees them close: it watches the sync
itself. Polled by pid, a sync killed but not yet reaped (a zombie: its parent, a supervisor or
a script, has not waited for it yet) still answered, and a pid reused by another process would
have answered for ever: the worker, and the fork server with it, stayed behind.
"""

from __future__ import annotations

import subprocess
import sys

SLEEPER = [sys.executable, "-c", "import time; time.sleep(600)"]


def _watch(parent: int) -> subprocess.Popen[bytes]:
    code = f"from archiver.parentwatch import exit_with_parent; exit_with_parent({parent}, 0.05)"
    return subprocess.Popen([sys.executable, "-c", code])


def test_the_watch_ends_when_the_sync_is_killed_and_not_yet_reaped():
    sync = subprocess.Popen(SLEEPER)
    watch = _watch(sync.pid)
    try:
        sync.kill()  # not waited for: a zombie until the end of the test
        assert watch.wait(timeout=20) == 0
    finally:
        watch.kill()
        watch.wait()
        sync.wait()


def test_the_watch_goes_on_while_the_sync_runs():
    sync = subprocess.Popen(SLEEPER)
    watch = _watch(sync.pid)
    try:
        try:
            watch.wait(timeout=1)
        except subprocess.TimeoutExpired:
            pass
        assert watch.poll() is None
    finally:
        watch.kill()
        watch.wait()
        sync.kill()
        sync.wait()


def test_the_dictionary_training_child_watches_the_sync_too():
    """Its result (a dictionary of ~100 KB) is bigger than a pipe's buffer: with the sync
    killed meanwhile, the child blocked sending it, for ever, and kept the fork server."""
    from archiver.storage import rawjson

    with rawjson.training_pool() as pool:
        threads = pool.submit(_thread_names).result(timeout=60)
    assert "parent-watch" in threads


def _thread_names() -> list[str]:
    import threading

    return [t.name for t in threading.enumerate()]
