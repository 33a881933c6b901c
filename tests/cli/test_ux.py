"""Running it every night: JSON log lines a shipper and an alert rule can rely on."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from archiver.cli import cli
from archiver.errors import ExitCode
from archiver.simulator import SimulatedOrg, SimulatorServer

TOKEN = "sim-ux-token"


@pytest.fixture
def org() -> SimulatedOrg:
    return SimulatedOrg(seed=3, events=200)


@pytest.fixture
def server(org: SimulatedOrg) -> Iterator[SimulatorServer]:
    with SimulatorServer(org, token=TOKEN) as srv:
        yield srv


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every non-empty line must be one JSON object (nothing else may reach the log)."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def sync_json(server: SimulatorServer, org: SimulatedOrg, db: Path, token: str) -> Any:
    return CliRunner().invoke(
        cli,
        [
            "sync",
            "--url",
            server.url,
            "--auth-token",
            token,
            "--org",
            org.slug,
            "--db",
            f"sqlite:///{db}",
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
