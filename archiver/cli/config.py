"""``sentry-archiver config show``: the effective configuration, secrets redacted.

Takes the same options, environment variables and ``--config`` file as ``sync`` and prints what
a run would use, as TOML in the config file's own layout (so it can be pasted into one) or as
JSON. The auth token and the scrub key are shown only as ``***`` (or as unset), and a
password in the database URL or the Sentry URL is hidden as well.
"""

from __future__ import annotations

import json
import math
from typing import Any

import click

from archiver.cli.options import remote_options, sync_options
from archiver.config import FILE_KEYS, Settings, settings_from_options
from archiver.storage.db import safe_url


def effective_sections(settings: Settings) -> dict[str, dict[str, Any]]:
    """The redacted settings grouped like the TOML file (section -> key -> value)."""
    values = settings.redacted()
    if values.get("db"):
        values["db"] = safe_url(str(values["db"]))
    return {
        section: {key: values.get(field) for key, field in keys.items()}
        for section, keys in FILE_KEYS.items()
    }


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else json.dumps(str(value))
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)


def to_toml(settings: Settings) -> str:
    lines = [
        "# sentry-archiver: effective configuration",
        "# (command-line options > environment > config file > defaults; secrets redacted)",
        f"# config file: {settings.config_file or 'none'}",
    ]
    for section, values in effective_sections(settings).items():
        lines.append("")
        lines.append(f"[{section}]")
        for key, value in values.items():
            if value is None:
                lines.append(f"# {key} = (not set)")
            else:
                lines.append(f"{key} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def to_json(settings: Settings) -> str:
    data: dict[str, Any] = {"config_file": settings.config_file}
    data.update(effective_sections(settings))
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


@click.group("config")
def config_group() -> None:
    """Inspect the configuration.

    \b
    Examples:
      sentry-archiver config show
    """


@config_group.command("show")
@click.option("--json", "as_json", is_flag=True, help="JSON instead of TOML.")
@remote_options()
@sync_options
def config_show(as_json: bool, **options: object) -> None:
    """Print the effective configuration (token and scrub key redacted).

    Takes the same options, environment variables and --config file as `sync`.

    \b
    Examples:
      sentry-archiver config show
      sentry-archiver config show --config /etc/sentry-archiver.toml --json
    """
    settings = settings_from_options(options)
    click.echo(to_json(settings) if as_json else to_toml(settings), nl=False)
