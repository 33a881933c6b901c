"""The README cookbook as data: recipes parsed from the README, run, and their answers printed.

Each recipe is a fenced ```sql block between the ``<!-- cookbook:start -->`` and
``<!-- cookbook:end -->`` markers, followed by a Markdown table: the answer on the demo
archive (``sentry-archiver demo``: seed 42, 2000 events). ``tests/operations/test_cookbook.py``
runs every recipe on SQLite and PostgreSQL and compares with the printed table, so the docs
cannot rot.

The answers are never typed by hand: ``python -m scripts.cookbook README.md`` builds a demo
archive, runs each recipe and rewrites the answer tables in place.

Values are printed the same way whatever the database: NULL as ``NULL``, timestamps as
``YYYY-MM-DD HH:MM:SS`` (UTC, seconds), days as ``YYYY-MM-DD``, whole numbers without decimals
and other numbers with two.
"""

from __future__ import annotations

import datetime as dt
import re
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, text

START = "<!-- cookbook:start -->"
END = "<!-- cookbook:end -->"

_SQL_BLOCK = re.compile(r"```sql\n(.*?)```\n", re.S)
_SQLITE_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d+)?$")


@dataclass
class Recipe:
    title: str
    sql: str
    columns: list[str]
    rows: list[list[str]]
    # Character span of the answer table in the README (to rewrite it).
    table_span: tuple[int, int]


class CookbookError(ValueError):
    pass


def section(readme: str) -> tuple[int, int]:
    """Start and end offsets of the cookbook between its markers."""
    start = readme.find(START)
    end = readme.find(END)
    if start < 0 or end < start:
        raise CookbookError(f"the README has no {START} ... {END} section")
    return start + len(START), end


def parse(readme: str) -> list[Recipe]:
    """Every recipe of the cookbook, with the answer table printed after its SQL."""
    lo, hi = section(readme)
    recipes: list[Recipe] = []
    for match in _SQL_BLOCK.finditer(readme, lo, hi):
        title = _title_before(readme, lo, match.start())
        after = match.end()
        nxt = _SQL_BLOCK.search(readme, after, hi)
        limit = nxt.start() if nxt else hi
        table = re.search(r"(?m)^\|.*\|\n\|[-| :]+\|\n(?:\|.*\|\n)*", readme[after:limit])
        if table is None:
            raise CookbookError(f"recipe {title!r} has no answer table after its SQL")
        heading = readme.find("\n#", after, after + table.start())
        if heading >= 0:
            raise CookbookError(
                f"recipe {title!r}: its answer table must come before the next heading"
            )
        lines = table.group(0).rstrip("\n").split("\n")
        columns = _cells(lines[0])
        rows = [_cells(line) for line in lines[2:]]
        recipes.append(
            Recipe(
                title,
                match.group(1).strip(),
                columns,
                rows,
                (after + table.start(), after + table.end()),
            )
        )
    return recipes


def _title_before(readme: str, lo: int, pos: int) -> str:
    headings = re.findall(r"(?m)^#+ (.*)$", readme[lo:pos])
    return headings[-1].strip() if headings else "(untitled)"


def _cells(line: str) -> list[str]:
    inner = line.strip()[1:-1]
    parts = re.split(r"(?<!\\)\|", inner)
    return [p.strip().replace("\\|", "|") for p in parts]


def cell(value: Any) -> str:
    """One value as the README prints it (the same text from SQLite and PostgreSQL)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.timezone.utc)
        return str(value.strftime("%Y-%m-%d %H:%M:%S"))
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (float, Decimal)):
        if value == int(value):
            return str(int(value))
        return f"{value:.2f}"
    if isinstance(value, str) and _SQLITE_TIMESTAMP.match(value):
        return value[:19]
    return str(value)


def run(conn: Connection, recipe: Recipe) -> tuple[list[str], list[list[str]]]:
    """Run a recipe; its column names and rows as printed text."""
    result = conn.execute(text(recipe.sql.rstrip().rstrip(";")))
    columns = list(result.keys())
    return columns, [[cell(v) for v in row] for row in result]


def render(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table."""

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    out = [line(columns), "|" + "|".join("---" for _ in columns) + "|"]
    out.extend(line(r) for r in rows)
    return "\n".join(out) + "\n"


def update(readme: str, conn: Connection) -> str:
    """The README with every answer table replaced by what the recipe returns now."""
    for recipe in reversed(parse(readme)):  # from the end, so earlier spans stay valid
        columns, rows = run(conn, recipe)
        a, b = recipe.table_span
        readme = readme[:a] + render(columns, rows) + readme[b:]
    return readme


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m scripts.cookbook [README.md]``: regenerate the answers on a demo archive."""
    from archiver.operations.demo import build_demo_archive
    from archiver.storage import db

    args = list(sys.argv[1:] if argv is None else argv)
    path = Path(args[0] if args else "README.md")
    readme = path.read_text(encoding="utf-8")
    parse(readme)  # fail before the slow part
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/cookbook.db"
        build_demo_archive(url)
        engine = db.make_engine(url)
        try:
            with engine.connect() as conn:
                new = update(readme, conn)
        finally:
            engine.dispose()
    if new != readme:
        path.write_text(new, encoding="utf-8")
        print(f"{path}: answers updated ({len(parse(new))} recipes)")
    else:
        print(f"{path}: answers already current ({len(parse(new))} recipes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
