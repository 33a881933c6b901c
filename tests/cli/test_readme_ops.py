"""The README's operations section: what it shows must work as shown."""

from __future__ import annotations

import configparser
import re
import shlex
from pathlib import Path

import click
from apscheduler.triggers.cron import CronTrigger

from archiver.cli import cli
from archiver.config import FILE_KEYS, load_settings, read_config_file
from archiver.errors import ExitCode

README = Path(__file__).resolve().parents[2] / "README.md"


def section() -> str:
    text = README.read_text()
    start = text.index("<!-- operations:start -->")
    end = text.index("<!-- operations:end -->")
    return text[start:end]


def blocks(lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", section(), flags=re.S | re.M)


def parse_cli(args: list[str]) -> click.Context:
    """Parse (and validate) a command line the way the CLI would, without running it."""
    command: click.Command = cli
    name = "sentry-archiver"
    while isinstance(command, click.Group):
        sub = command.get_command(click.Context(command), args[0])
        assert sub is not None, f"unknown command {args[0]!r}"
        command, name, args = sub, args[0], args[1:]
    return command.make_context(name, list(args))


def cli_args(line: str) -> list[str]:
    words = shlex.split(line)
    index = next(i for i, w in enumerate(words) if w.endswith("sentry-archiver"))
    return words[index + 1 :]


def test_exit_code_table_matches_the_enum():
    rows = re.findall(r"^\| (\d+) \| `(\w+)` \| (.+) \|$", section(), flags=re.M)
    assert {(int(code), name) for code, name, _ in rows} == {(int(c), c.name) for c in ExitCode}
    assert len(rows) == len(ExitCode)


def test_toml_example_is_a_valid_complete_config(tmp_path):
    (example,) = blocks("toml")
    path = tmp_path / "example.toml"
    path.write_text(example)
    sections = set(re.findall(r"^\[(\w+)\]", example, flags=re.M))
    assert sections == set(FILE_KEYS), "the example must show every section"
    read_config_file(path)  # unknown keys would fail here
    s = load_settings({}, config_file=str(path), environ={})
    assert s.org == "my-org"
    assert s.projects == ("backend", "frontend")
    assert s.db.startswith("postgresql://")
    assert s.schedule_cron == "0 3 * * *"
    CronTrigger.from_crontab(s.schedule_cron)
    assert s.retention_minimum is not None
    assert s.scrub


def test_crontab_line_is_valid():
    (block,) = blocks("crontab")
    lines = [ln for ln in block.splitlines() if ln.strip() and not ln.startswith("#")]
    assert len(lines) == 1
    fields = lines[0].split(None, 5)
    CronTrigger.from_crontab(" ".join(fields[:5]))
    command = fields[5].split("&&")[-1]
    ctx = parse_cli(cli_args(command))
    assert ctx.command.name == "sync"
    assert ctx.params["quiet"] is True


def test_systemd_units_are_well_formed_and_their_commands_parse():
    units = {}
    for block in blocks("ini"):
        first, body = block.split("\n", 1)
        name = first.removeprefix("# ").rsplit("/", 1)[-1]
        parser = configparser.ConfigParser(strict=True, interpolation=None)
        parser.optionxform = str  # type: ignore[assignment,method-assign]
        parser.read_string(body)
        units[name] = parser
    assert set(units) == {
        "sentry-archiver.service",
        "sentry-archiver.timer",
        "sentry-archiver-scheduler.service",
    }
    oneshot = units["sentry-archiver.service"]
    assert oneshot["Service"]["Type"] == "oneshot"
    assert parse_cli(cli_args(oneshot["Service"]["ExecStart"])).command.name == "sync"
    assert str(int(ExitCode.PARTIAL)) in oneshot["Service"]["SuccessExitStatus"].split()
    # `systemctl stop` sends SIGTERM, which the sync answers with exit 130: not a failure
    assert oneshot["Service"]["KillSignal"] == "SIGTERM"
    assert str(int(ExitCode.INTERRUPTED)) in oneshot["Service"]["SuccessExitStatus"].split()
    timer = units["sentry-archiver.timer"]
    assert timer["Timer"]["OnCalendar"]
    assert timer["Install"]["WantedBy"] == "timers.target"
    daemon = units["sentry-archiver-scheduler.service"]
    assert daemon["Service"]["KillSignal"] == "SIGTERM"
    ctx = parse_cli(cli_args(daemon["Service"]["ExecStart"]))
    assert ctx.command.name == "schedule"


def test_every_command_shown_parses():
    commands = re.findall(r"`(sentry-archiver [^`]+)`", section())
    for block in blocks("sh"):
        commands += [ln for ln in block.splitlines() if ln.startswith("sentry-archiver ")]
    assert len(commands) >= 5
    for line in commands:
        line = line.split("|")[0]
        parse_cli(cli_args(line))
