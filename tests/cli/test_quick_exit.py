"""A sync run from the command line ends its process at once when its work is saved.

The entry point (:func:`archiver.cli.main`) ends the process with ``os._exit`` after a sync,
its output flushed, instead of letting the interpreter free the run's heap object by object;
any other command, or a thread still running, ends the ordinary way.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading

import pytest

import archiver.cli as cli_module
from archiver.simulator import SimulatedOrg, SimulatorServer
from tests.helpers import archived, source_args

TOKEN = "quick-exit-token"


class Ended(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


@pytest.fixture
def exits(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The codes ``os._exit`` was called with (it raises instead of ending pytest), each after
    the exit handlers ran (multiprocessing's removes its directory in TMPDIR); pytest's own
    handlers are not run here."""
    codes: list[int] = []
    handlers_ran: list[bool] = []

    def fake_exit(code: int) -> None:
        assert handlers_ran, "os._exit before the exit handlers"
        codes.append(code)
        raise Ended(code)

    monkeypatch.setattr(atexit, "_run_exitfuncs", lambda: handlers_ran.append(True))
    monkeypatch.setattr(os, "_exit", fake_exit)
    monkeypatch.delenv("SENTRY_ARCHIVER_CONFIG", raising=False)
    return codes


def _main(monkeypatch: pytest.MonkeyPatch, *args: str) -> int | None:
    """Run the entry point with ``args``: the code it exited with (None: returned)."""
    monkeypatch.setattr(sys, "argv", ["sentry-archiver", *args])
    try:
        cli_module.main()
    except Ended as ended:
        return ended.code
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    return None


def test_a_sync_ends_its_process_at_once_with_its_output_flushed(
    monkeypatch: pytest.MonkeyPatch,
    exits: list[int],
    db_url: str,
    capfd: pytest.CaptureFixture[str],
) -> None:
    org = SimulatedOrg(seed=3, events=30)
    with SimulatorServer(org, token=TOKEN) as srv:
        args = source_args(srv.url, TOKEN, org, db_url)
        code = _main(monkeypatch, "sync", *args, "--workers", "0")
    assert (code, exits) == (0, [0])
    assert "events new" in capfd.readouterr().out  # the summary was flushed before the end
    assert archived(db_url) == org.truth()


def test_a_failed_sync_ends_at_once_with_its_exit_code(
    monkeypatch: pytest.MonkeyPatch,
    exits: list[int],
    db_url: str,
    capfd: pytest.CaptureFixture[str],
) -> None:
    org = SimulatedOrg(seed=3, events=30)
    with SimulatorServer(org, token=TOKEN) as srv:
        args = source_args(srv.url, "wrong-token", org, db_url)
        code = _main(monkeypatch, "sync", *args, "--workers", "0")
    assert (code, exits) == (4, [4])
    assert "error:" in capfd.readouterr().err


def test_other_commands_end_the_ordinary_way(
    monkeypatch: pytest.MonkeyPatch, exits: list[int]
) -> None:
    assert _main(monkeypatch, "--version") == 0
    assert exits == []


def test_a_thread_still_running_lets_the_process_end_the_ordinary_way(
    monkeypatch: pytest.MonkeyPatch, exits: list[int], db_url: str
) -> None:
    org = SimulatedOrg(seed=3, events=30)
    release = threading.Event()
    straggler = threading.Thread(target=release.wait)  # not a daemon: exit waits for it
    straggler.start()
    try:
        with SimulatorServer(org, token=TOKEN) as srv:
            args = source_args(srv.url, TOKEN, org, db_url)
            code = _main(monkeypatch, "sync", *args, "--workers", "0")
    finally:
        release.set()
        straggler.join()
    assert (code, exits) == (0, [])
