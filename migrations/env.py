"""Alembic environment: runs migrations on the connection the tool hands over, or on a URL."""

from __future__ import annotations

import os
from typing import Any

from alembic import context
from sqlalchemy.types import TypeDecorator

from archiver.storage.db import include_object_for, make_engine, normalize_url
from archiver.storage.models import Base

config = context.config
target_metadata = Base.metadata


def render_item(type_: str, obj: Any, autogen_context: Any) -> str | bool:
    """Render our TypeDecorators as their plain implementation.

    Migrations must not import the application's models (they would change under old
    migrations); the decorator only converts values, the column type is its ``impl``.
    """
    if type_ == "type" and isinstance(obj, TypeDecorator):
        autogen_context.imports.add("import sqlalchemy as sa")
        return f"sa.{obj.impl!r}"
    return False


def _configure(connection: Any) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        render_as_batch=connection.dialect.name == "sqlite",
        render_item=render_item,
        include_object=include_object_for(connection.dialect.name),
    )


def run_migrations() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    url = os.environ.get("SENTRY_ARCHIVER_DB") or config.get_main_option("sqlalchemy.url")
    engine = make_engine(normalize_url(url or "sqlite:///sentry-archive.db"))
    with engine.begin() as connection:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported; run against a database")
run_migrations()
