"""``sentry-archiver datasette-metadata``: a ``metadata.json`` for Datasette to explain the archive.

Datasette (an optional extra: ``pip install 'sentry-archiver[datasette]'``) browses the SQLite
archive as it is: foreign keys are declared, so event rows link to their project and issue.
This adds what SQLite cannot store: a description of every table, view and column (from
:mod:`archiver.storage.descriptions`), and the column to show for linked rows::

    sentry-archiver datasette-metadata --db sqlite:///sentry-archive.db -o metadata.json
    datasette sentry-archive.db --metadata metadata.json
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, inspect
from sqlalchemy.engine import make_url

from archiver.storage import db, descriptions
from archiver.storage.models import Base


def database_name(db_url: str) -> str:
    """Datasette names a database after its file (``sentry-archive.db`` -> ``sentry-archive``)."""
    url = make_url(db.normalize_url(db_url))
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        return Path(url.database).stem
    return url.database or "sentry-archive"


def _columns(table: str, names: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name in names:
        text = descriptions.describe(table, name)
        if text:
            out[name] = text
    return out


def build_metadata(engine: Engine, name: str) -> dict[str, Any]:
    """Datasette metadata for every table of the models and every view of the database.

    ``engine`` is an archive at the current schema (``db.open_archive`` checks that).
    """
    tables: dict[str, Any] = {}
    for table in Base.metadata.sorted_tables:
        entry: dict[str, Any] = {
            "description": descriptions.TABLES.get(table.name, ""),
            "columns": _columns(table.name, [c.name for c in table.columns]),
        }
        if table.name in descriptions.LABELS:
            entry["label_column"] = descriptions.LABELS[table.name]
        tables[table.name] = entry
    with engine.connect() as conn:
        insp = inspect(conn)
        for view in sorted(insp.get_view_names()):
            tables[view] = {
                "description": descriptions.VIEWS.get(view, ""),
                "columns": _columns(view, [c["name"] for c in insp.get_columns(view)]),
            }
    return {
        "title": "Sentry archive",
        "description": "Error events archived from Sentry by sentry-archiver. Views named v_... "
        "answer common questions; see the README's cookbook.",
        "databases": {name: {"tables": tables}},
    }
