"""A second Ctrl-C stops the run at once, but never inside a thread primitive's ``with``.

Raised by the signal handler, a KeyboardInterrupt lands at any bytecode of the main thread;
landing inside a Python-level ``Condition.__enter__`` (a ThreadPoolExecutor's submit, a
queue's get) it left that lock held, and the walk threads joined on the way out blocked on it
forever (seen as a hung ``test_ctrl_c_twice...[postgresql]``, 2 or 3 runs in 40). While the
writer runs, the handler only records the interrupt; the writer raises it at its next look
at the inbox (a tenth of a second at most, or one page's commit).
"""

from __future__ import annotations

import os
import signal
import threading

import pytest

from archiver.sync import interrupts
from archiver.sync.runner import stop_on_signals


def _sigint() -> None:
    os.kill(os.getpid(), signal.SIGINT)


def test_second_ctrl_c_outside_the_writer_raises_at_once():
    stop = threading.Event()
    with stop_on_signals(stop):
        _sigint()
        assert stop.is_set()
        with pytest.raises(KeyboardInterrupt):
            _sigint()


def test_second_ctrl_c_while_the_writer_runs_waits_for_its_check():
    stop = threading.Event()
    reached = []

    def region() -> None:
        with interrupts.deferred():
            _sigint()
            _sigint()  # recorded, not raised here
            reached.append("after both signals")
            interrupts.check()
            reached.append("after the check")

    with stop_on_signals(stop), pytest.raises(KeyboardInterrupt):
        region()
    assert reached == ["after both signals"]
    assert stop.is_set()


def test_an_interrupt_recorded_in_a_region_is_raised_when_it_ends_unchecked():
    stop = threading.Event()
    ended = []

    def region() -> None:
        with interrupts.deferred():
            _sigint()
            _sigint()
            ended.append("the block")
        ended.append("the region")

    with stop_on_signals(stop), pytest.raises(KeyboardInterrupt):
        region()
    assert ended == ["the block"]


def test_a_region_ending_with_an_error_keeps_that_error_and_forgets_the_interrupt():
    stop = threading.Event()

    def region() -> None:
        with interrupts.deferred():
            _sigint()
            _sigint()
            raise ValueError("the writer's own error")

    with stop_on_signals(stop):
        with pytest.raises(ValueError, match="the writer's own error"):
            region()
        interrupts.check()  # nothing left over for a later region


def test_regions_nest_and_only_the_main_thread_defers():
    seen: list[bool] = []

    def other() -> None:
        with interrupts.deferred():
            seen.append(interrupts.deferring())

    with interrupts.deferred():
        with interrupts.deferred():
            assert interrupts.deferring()
        assert interrupts.deferring()
        thread = threading.Thread(target=other)
        thread.start()
        thread.join()
    assert not interrupts.deferring()
    assert seen == [False]


def test_the_writer_loop_raises_a_recorded_interrupt(monkeypatch):
    """The writer's wait for pages is where a recorded interrupt becomes an exception."""
    from concurrent.futures import Future

    from archiver.sync.handoff import Inbox, Shutdown
    from archiver.sync.writer import Writer

    writer = Writer.__new__(Writer)
    writer.inbox = Inbox(Shutdown(threading.Event()))
    never: Future[None] = Future()  # a walk that never ends: only the interrupt ends the loop
    stop = threading.Event()

    def region() -> None:
        with interrupts.deferred():
            _sigint()
            _sigint()
            writer._run([never], None)

    with stop_on_signals(stop), pytest.raises(KeyboardInterrupt):
        region()
