"""The terminal display, seen in a real terminal (tmux): log lines never run into it.

A sync against the simulator's fault mode (5xx answers that recover on retry, an issue
deleted mid-run) runs in a tmux pane; the pane's whole history is read back afterwards. Each
log line starts its own row (nothing of the progress display glued in front of it), the
retries that recovered are counted rather than logged one WARNING each, and the summary
counts them.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from archiver.simulator import SimulatedOrg, SimulatorServer
from archiver.simulator.config import FaultConfig, SimulatorConfig

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "sim-display-token"

pytestmark = [
    pytest.mark.slow,  # a real sync in a tmux pane
    pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux"),
]


def _tmux(socket: str, *args: str, timeout: float = 30) -> str:
    done = subprocess.run(
        ["tmux", "-L", socket, *args], capture_output=True, text=True, timeout=timeout
    )
    return done.stdout


def run_in_tmux(tmp_path: Path, argv: list[str]) -> str:
    """Run ``argv`` in a 110x30 tmux pane; return the pane's history once it has ended."""
    socket = f"ux-display-{os.getpid()}"
    done = tmp_path / "exit-code"
    command = " ".join([f"cd {tmp_path} && PYTHONPATH={ROOT}", sys.executable, "-m", "archiver"])
    command += " " + " ".join(argv)
    script = f"{command}; echo $? > {done}; tmux -L {socket} wait-for -S finished; sleep 60"
    try:
        _tmux(socket, "new-session", "-d", "-x", "110", "-y", "30", "-s", "ux", script)
        _tmux(socket, "wait-for", "finished", timeout=180)
        screen = _tmux(socket, "capture-pane", "-p", "-J", "-t", "ux", "-S", "-2000")
    finally:
        _tmux(socket, "kill-server")
    return f"exit {done.read_text().strip()}\n{screen}"


def test_a_sync_in_a_terminal_keeps_log_lines_apart_from_the_display(tmp_path):
    org = SimulatedOrg(seed=11, events=3000)
    faults = FaultConfig(
        seed=4,
        error_rate=0.08,
        error_statuses=(500, 502),
        slow_rate=0.3,
        slow_ms=60,
        delete_issue_after=6,
    )
    with SimulatorServer(org, token=TOKEN, config=SimulatorConfig(faults=faults)) as srv:
        screen = run_in_tmux(
            tmp_path,
            [
                *("sync", "--url", srv.url, "--auth-token", TOKEN, "--org", org.slug),
                *("--db", f"sqlite:///{tmp_path / 'a.db'}", "--concurrency", "2"),
            ],
        )
    lines = [line.rstrip() for line in screen.splitlines()]
    assert lines[0] == "exit 0", screen
    logged = [line for line in lines if re.search(r"\b(WARNING|ERROR|INFO)\b", line)]
    assert logged, f"the deleted issue should be logged:\n{screen}"
    for line in logged:  # a log line starts its row: no progress text in front of it
        assert re.match(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", line), screen
    assert not any("retrying in" in line for line in lines), screen  # counted, not listed
    summary = next((line for line in lines if line.startswith("requests ")), "")
    retries = re.search(r"\(retries (\d+)\)", summary)
    assert retries, screen
    assert int(retries.group(1)) > 0, screen
    assert not any("ETA" in line for line in lines), screen  # the display leaves no trace


def test_retries_that_recover_are_listed_only_with_v(tmp_path):
    from click.testing import CliRunner

    from archiver.cli import cli

    org = SimulatedOrg(seed=11, events=600)
    faults = FaultConfig(seed=4, error_rate=0.15, error_statuses=(500,))
    with SimulatorServer(org, token=TOKEN, config=SimulatorConfig(faults=faults)) as srv:
        base = ["sync", "--url", srv.url, "--auth-token", TOKEN, "--org", org.slug]
        quiet = CliRunner().invoke(cli, [*base, "--db", f"sqlite:///{tmp_path / 'a.db'}"])
        verbose = CliRunner().invoke(cli, [*base, "--db", f"sqlite:///{tmp_path / 'b.db'}", "-v"])
    assert quiet.exit_code == 0, quiet.output
    assert verbose.exit_code == 0, verbose.output
    assert "retrying in" not in quiet.output
    assert re.search(r"\(retries [1-9]\d*\)", quiet.output), quiet.output
    assert "INFO archiver.sentry.client" in verbose.output
    assert "retrying in" in verbose.output


def test_no_display_off_a_terminal(tmp_path):
    from archiver.output import TerminalDisplay

    with (tmp_path / "log").open("w") as stream, TerminalDisplay(stream) as display:
        assert display.console is None
        display.update(projects=1, issues_done=1, issues_total=2, events=3, seconds=1.0, retries=0)
    assert (tmp_path / "log").read_text() == ""
