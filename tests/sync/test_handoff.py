"""The writer's inbox (archiver.sync.handoff): a walk's end wakes a writer waiting for pages."""

from __future__ import annotations

import threading
from typing import Any

from archiver.sync.handoff import Inbox, Shutdown, WalkEnded
from archiver.sync.state import IssueWalk, WalkStatus


def test_a_wake_ends_the_writers_wait_at_once() -> None:
    """The writer waits for the next page; when the last walk ends it must look again at once
    (all walks over: the run is done), not when its wait times out."""
    inbox = Inbox(Shutdown(threading.Event()))
    got: list[Any] = []
    waiter = threading.Thread(target=lambda: got.append(inbox.get(timeout=60)))
    waiter.start()
    inbox.wake()
    waiter.join(timeout=30)
    assert not waiter.is_alive()
    assert got == [None]


def test_a_wake_never_blocks_and_is_never_handed_over() -> None:
    inbox = Inbox(Shutdown(threading.Event()), size=1)
    end = WalkEnded(IssueWalk(1, 1, WalkStatus.DONE), WalkStatus.DONE)
    assert inbox.put(end)
    inbox.wake()  # the inbox is full: the writer is busy anyway
    assert inbox.get(timeout=1) is end
    inbox.wake()
    assert inbox.get(timeout=1) is None
    assert inbox.empty()
