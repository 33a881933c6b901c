"""Running it every night: JSON log lines a shipper and an alert rule can rely on."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from archiver.cli import cli
from archiver.errors import ExitCode
from archiver.simulator import SimulatedOrg, SimulatorServer
from tests.helpers import simulated, source_args

TOKEN = "sim-ux-token"


org, server = simulated(TOKEN, seed=3, events=200)


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every non-empty line must be one JSON object (nothing else may reach the log)."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def sync_json(server: SimulatorServer, org: SimulatedOrg, db: Path, token: str) -> Any:
    return CliRunner().invoke(
        cli,
        [
            "sync",
            *source_args(server.url, token, org, f"sqlite:///{db}"),
            "--log-format",
            "json",
        ],
    )


def test_json_clean_run_ends_with_an_info_summary(tmp_path, org, server):
    result = sync_json(server, org, tmp_path / "a.db", TOKEN)
    assert result.exit_code == 0, result.output
    lines = json_lines(result.output)
    summary = lines[-1]
    assert summary["level"] == "info", lines
    assert summary["outcome"] == "success"
    counts = summary["counts"]
    for key in ("duration_s", "requests", "retries", "issues_gone", "issues_merged"):
        assert key in counts, counts
    assert counts["requests"] > 0
    assert counts["events_new"] > 0
    assert not any(line["level"] == "warning" for line in lines), lines


def test_json_fatal_error_is_a_json_line(tmp_path, org, server):
    result = sync_json(server, org, tmp_path / "b.db", "wrong-token-value")
    assert result.exit_code == ExitCode.AUTH, result.output
    lines = json_lines(result.output)
    assert lines[-1]["level"] == "error"
    assert lines[-1]["outcome"] == "failed"
    assert "wrong-token-value" not in result.output


def test_an_interrupted_sync_says_so_once(tmp_path, org, server, monkeypatch):
    """The CLI prints the interruption once, not again as an ``error:`` line."""
    import archiver.sync.runner as runner
    from archiver.errors import InterruptedRun

    def interrupted(*args: Any, **kwargs: Any) -> Any:
        raise InterruptedRun("stopped on request; progress up to the last committed page is saved")

    monkeypatch.setattr(runner, "execute_sync", interrupted)
    db_url = f"sqlite:///{tmp_path / 'a.db'}"
    result = CliRunner().invoke(cli, ["sync", *source_args(server.url, "t", org, db_url)])
    assert result.exit_code == ExitCode.INTERRUPTED, result.output
    assert result.stderr == (
        "interrupted: stopped on request; progress up to the last committed page is saved\n"
    )
