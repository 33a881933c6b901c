"""The README's command reference, generated from ``--help`` so the two never disagree.

Everything between ``<!-- help:start -->`` and ``<!-- help:end -->`` is replaced by the
``--help`` of the program and of every command and subcommand, each in a fenced block under
the command line that prints it. ``python scripts/readme_help.py README.md`` rewrites the
README in place; ``tests/cli/test_docs.py`` fails when the README is stale.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import click
from click.testing import CliRunner

from archiver.cli import cli

START = "<!-- help:start -->"
END = "<!-- help:end -->"
# A fixed width, so the reference does not depend on the terminal it was generated in.
WIDTH = 100


def _paths(group: click.Group, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """The program, then every command and subcommand, in ``--help``'s order."""
    yield path
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)  # imported on first use (archiver.cli)
        if isinstance(command, click.Group):
            yield from _paths(command, (*path, name))
        else:
            yield (*path, name)


def help_text(path: tuple[str, ...]) -> str:
    """What ``sentry-archiver PATH --help`` prints."""
    result = CliRunner().invoke(
        cli, [*path, "--help"], prog_name="sentry-archiver", terminal_width=WIDTH
    )
    if result.exit_code != 0:
        raise RuntimeError(f"{' '.join(path)} --help failed: {result.output}")
    return result.output


def reference() -> str:
    """The whole command reference, as Markdown."""
    parts = []
    for path in _paths(cli):
        line = " ".join(("sentry-archiver", *path, "--help"))
        parts.append(f"#### `{' '.join(('sentry-archiver', *path))}`\n\n```text\n$ {line}\n")
        parts.append(help_text(path).rstrip("\n") + "\n```\n")
    return "\n".join(parts)


def render(readme: str) -> str:
    """``readme`` with the text between the markers replaced by the current reference."""
    start = readme.find(START)
    end = readme.find(END)
    if start < 0 or end < start:
        raise ValueError(f"the README has no {START} ... {END} section")
    return readme[: start + len(START)] + "\n" + reference() + readme[end:]


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python scripts/readme_help.py README.md", file=sys.stderr)
        return 2
    path = Path(argv[0])
    old = path.read_text(encoding="utf-8")
    new = render(old)
    if new != old:
        path.write_text(new, encoding="utf-8")
        print(f"{path}: command reference updated")
    else:
        print(f"{path}: command reference already up to date")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    sys.exit(main(sys.argv[1:]))
