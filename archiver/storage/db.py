"""Database engines and schema migrations.

One place decides how a URL becomes an engine (SQLite pragmas, the psycopg 3 driver) and where
the Alembic migrations live, so the CLI, the tests and the benchmarks all see the same database.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.exc import DatabaseError as SQLAlchemyDatabaseError

from archiver.errors import DatabaseError
from archiver.storage import rawjson
from archiver.storage.files import check_sqlite_file, check_writable, read_only_uri
from archiver.storage.models import Base
from archiver.storage.revisions import head_revision as head_revision
from archiver.storage.revisions import known_revisions as known_revisions
from archiver.storage.revisions import migrations_dir as migrations_dir

if TYPE_CHECKING:
    from alembic.config import Config

# Alembic is imported only where a migration runs or is compared: the import is slow and
# large, and every sync and status opens an archive that is nearly always current.

DEFAULT_DB_URL = "sqlite:///sentry-archive.db"
# PostgreSQL advisory lock key serializing migrations (the run lock has its own key).
MIGRATION_KEY = 0x5E47_A2C1_7E2D_0002
SQLITE_BUSY_TIMEOUT_MS = 30_000
# A new archive's page size, and each connection's page cache (in KiB). A page of 100 events
# dirties thousands of pages (most of them leaves of the secondary indexes, whose keys arrive
# in no order), and SQLite's default 2 MB cache spilled them to the WAL before the commit,
# writing the same pages again and again. Larger pages and a larger cache cut those writes
# (bench/bench_writer.py under `strace -c` measures it; the README's performance section has
# the figures); a larger cache than this wrote no less and only cost memory. Since stacks are
# stored once and raw JSON compressed, a page dirties far fewer pages, and 4 MB keeps the
# sync process's peak memory flat (the README's issue-17 figures). The page size applies to
# archives created from now on (SQLite fixes it when a database file is first written); the
# cache to every connection, so older archives gain that part.
SQLITE_PAGE_SIZE = 16_384
SQLITE_CACHE_KIB = 4_096
# Connections open at once on one SQLite archive (SQLAlchemy's default pool allows as many).
SQLITE_MAX_CONNECTIONS = 15


def normalize_url(url: str) -> str:
    """Accept the URL spellings people paste, and pick the psycopg 3 driver for PostgreSQL."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def safe_url(url: str) -> str:
    """The URL with any password hidden, for messages."""
    try:
        return make_url(normalize_url(url)).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparsable database URL>"


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL (None for PostgreSQL, in-memory and ``file:`` URI databases)."""
    try:
        parsed = make_url(normalize_url(url))
    except ArgumentError:
        return None
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database:
        return None
    if database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database).expanduser().resolve()


def make_engine(url: str, *, readonly: bool = False, **kwargs: Any) -> Engine:
    """Create an engine; SQLite gets WAL, a busy timeout, foreign keys and explicit BEGINs.

    ``readonly`` is for commands that only read an existing archive: if its file or directory
    is not writable it is opened read-only instead of failing. Otherwise a SQLite archive must
    be writable, and an error says whether the file or its directory is not.
    """
    url = normalize_url(url)
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise DatabaseError(f"not a database URL: {url!r} ({exc})") from None
    if parsed.get_backend_name() == "sqlite":
        path = sqlite_file(url)
        uri = None
        if path is not None:
            if not path.parent.is_dir():
                raise DatabaseError(
                    f"cannot create the SQLite database: {path.parent} does not exist"
                )
            if path.exists():
                check_sqlite_file(path)
            uri = read_only_uri(path) if readonly else None
            if uri is None:
                check_writable(path)
        kwargs.setdefault("connect_args", {}).setdefault("timeout", SQLITE_BUSY_TIMEOUT_MS / 1000)
        if path is not None:
            # One idle connection kept, others closed when given back: each holds its own page
            # cache and prepared statements, and the writer is handed whichever is idle, so a
            # long sync filled every connection the pool kept (the README's issue-17 figures).
            kwargs.setdefault("pool_size", 1)
            kwargs.setdefault("max_overflow", SQLITE_MAX_CONNECTIONS - 1)
        engine = create_engine(url, **kwargs)
        _configure_sqlite(engine, path, uri)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    try:
        return create_engine(url, **kwargs)
    except ModuleNotFoundError as exc:
        raise DatabaseError(
            f"the driver for {parsed.get_backend_name()} is not installed ({exc.name}); "
            "for PostgreSQL install the extra: pip install 'sentry-archiver[postgres]'"
        ) from None


def _configure_sqlite(engine: Engine, path: Path | None, uri: str | None) -> None:
    """WAL so readers never block the writer; transactions begun by us, not by pysqlite.

    pysqlite's own transaction handling defers BEGIN and cannot say IMMEDIATE; taking it over
    (the recipe in SQLAlchemy's SQLite docs) lets the single writer take the write lock at the
    start of each page's transaction (``Store.transaction``) instead of failing half-way.

    A new archive holds personal data: its file is created readable by its owner only before
    SQLite opens it (SQLite gives the ``-wal`` and ``-shm`` files the database file's mode).
    A read-only archive is opened through ``uri`` and left exactly as it is.
    """

    @event.listens_for(engine, "do_connect")
    def _on_do_connect(_dialect: Any, _record: Any, cargs: list[Any], cparams: Any) -> None:
        if uri is not None:
            cargs[:] = [uri]
            cparams["uri"] = True
        elif path is not None and not path.exists():
            try:
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            except FileExistsError:
                pass  # another process created it meanwhile: its mode stands

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        if uri is None:
            # Before anything is written (journal_mode = WAL writes the header): a no-op on an
            # existing database, whose page size is fixed.
            cursor.execute(f"PRAGMA page_size = {SQLITE_PAGE_SIZE}")
        cursor.execute(f"PRAGMA cache_size = -{SQLITE_CACHE_KIB}")
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys = ON")
        rawjson.register(dbapi_connection)  # sentry_raw_json(raw_zstd, raw_dict_id)
        if uri is None:
            _use_wal(cursor)
            cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        immediate = connection.get_execution_options().get("sqlite_immediate", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _use_wal(cursor: Any) -> None:
    """Put the archive in WAL mode, waiting for another process that holds it meanwhile.

    An archive already in WAL mode needs no lock for this (only a read of the mode). Switching
    a new one takes an exclusive lock, and SQLite answers "database is locked" at once, without
    its busy handler, while another process creates the same new archive: two syncs started
    together on a new archive. Waiting as long as the busy timeout lets the second one go on.
    """
    if str(cursor.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal":
        return
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


# --------------------------------------------------------------------------- migrations


def alembic_config(connection: Connection | None = None, url: str | None = None) -> Config:
    """An Alembic config pointing at our scripts, bound to a connection or a URL."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    if url is not None:
        cfg.set_main_option("sqlalchemy.url", normalize_url(url).replace("%", "%%"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


@contextmanager
def _connected(engine: Engine, *, exclusive: bool = False) -> Iterator[Connection]:
    """A transaction on the engine; an unusable database becomes a clear DatabaseError.

    ``exclusive`` serializes the transaction with every other exclusive one (a migration):
    SQLite's write lock from its first statement (``BEGIN IMMEDIATE``: a second process waits
    instead of failing with "database is locked" half-way), a transaction-scoped advisory lock
    on PostgreSQL (two processes creating ``alembic_version`` at once fail with a
    UniqueViolation otherwise).
    """
    url = safe_url(str(engine.url))
    try:
        connection = engine.connect()
    except SQLAlchemyDatabaseError as exc:
        raise DatabaseError(f"cannot open the database {url}: {exc.orig}") from None
    try:
        try:
            if exclusive:
                connection.execution_options(sqlite_immediate=True)
            connection.begin()
            if exclusive and connection.dialect.name == "postgresql":
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_KEY}
                )
        except SQLAlchemyDatabaseError as exc:
            raise DatabaseError(f"cannot open the database {url}: {exc.orig}") from None
        try:
            yield connection
            connection.commit()
        except SQLAlchemyDatabaseError as exc:
            raise DatabaseError(f"database {url}: {exc.orig}") from None
    finally:
        connection.close()  # rolls back what was not committed


def is_current(engine: Engine) -> bool:
    """Whether the archive's schema is at this version's newest revision (read without
    importing Alembic)."""
    with _connected(engine) as connection:
        return _stored_revision(connection) == head_revision()


def upgrade(
    engine: Engine,
    revision: str = "head",
    *,
    adopt: bool = False,
    before_commit: Callable[[], None] | None = None,
) -> None:
    """Create the archive's schema or bring it up to date; one process at a time.

    A database that has tables but no ``alembic_version`` belongs to another application: it
    is refused unless ``adopt`` (``db upgrade --adopt``) says to add the archive's tables to it.
    ``before_commit`` runs once the migrations ran, their transaction still open (a sync's
    early upgrade waits there for the word to commit: :mod:`archiver.storage.apart`).
    """
    with _connected(engine, exclusive=True) as connection:
        stored = _stored_revision(connection)
        known, head = known_revisions()
        if stored is not None and stored not in known:
            raise _newer_error(engine, stored, head)
        if revision == "head" and stored == head:
            return  # current: nothing to run, no need for Alembic
        if stored is None and not adopt:
            tables = inspect(connection).get_table_names()
            if tables and "alembic_version" not in tables:  # an empty one: downgraded to base
                raise _foreign_error(engine, tables)
        from alembic import command

        command.upgrade(alembic_config(connection), revision)
        if before_commit is not None:
            before_commit()


def _newer_error(engine: Engine, stored: str, head: str | None) -> DatabaseError:
    return DatabaseError(
        f"the archive {safe_url(str(engine.url))} is at schema revision {stored}, newer than "
        f"this version of sentry-archiver knows (its newest is {head}): a newer "
        "sentry-archiver wrote it; upgrade sentry-archiver to use it"
    )


def _foreign_error(engine: Engine, tables: list[str]) -> DatabaseError:
    shown = ", ".join(sorted(tables)[:5]) + (", ..." if len(tables) > 5 else "")
    return DatabaseError(
        f"the database {safe_url(str(engine.url))} is not a sentry-archiver archive: it holds "
        f"tables of another application ({shown}) and no alembic_version. Give the archive a "
        "database of its own, or add the archive's tables to this one with: "
        "sentry-archiver db upgrade --adopt"
    )


def downgrade(engine: Engine, revision: str) -> None:
    from alembic import command

    with _connected(engine) as connection:
        command.downgrade(alembic_config(connection), revision)


def current_revision(engine: Engine) -> str | None:
    with _connected(engine) as connection:
        return _stored_revision(connection)


def _stored_revision(connection: Connection) -> str | None:
    """The revision in ``alembic_version`` (None for a database without one)."""
    if not inspect(connection).has_table("alembic_version"):
        return None
    rows = connection.execute(text("SELECT version_num FROM alembic_version")).all()
    if len(rows) > 1:  # several heads: Alembic's own error says what is wrong
        from alembic.runtime.migration import MigrationContext

        return MigrationContext.configure(connection).get_current_revision()
    return str(rows[0][0]) if rows else None


def schema_diff(engine: Engine) -> list[Any]:
    """Differences between the models and the database (empty when they agree)."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    with _connected(engine) as connection:
        context = MigrationContext.configure(
            connection,
            opts={
                "compare_type": True,
                "include_object": include_object_for(connection.dialect.name),
            },
        )
        return list(compare_metadata(context, Base.metadata))


def include_object_for(dialect: str) -> Callable[[Any, str | None, str, bool, Any], bool]:
    """Alembic's ``include_object`` hook for a database of this dialect.

    Alembic's own table is left alone, and so are indexes and foreign keys the models create
    only on other dialects (``Index(...).ddl_if(dialect=...)``, and the per-event foreign keys
    of :func:`~archiver.storage.base.sqlite_only_fk`): Alembic ignores ``ddl_if`` and would
    report them missing. One the database has and the models do not create there is drift.
    """

    def include(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        if type_ == "table" and name == "alembic_version":
            return False
        only = getattr(getattr(obj, "_ddl_if", None), "dialect", None)
        conditional = type_ in ("index", "foreign_key_constraint")
        if conditional and not reflected and only is not None:
            return dialect in ((only,) if isinstance(only, str) else tuple(only))
        return True

    return include


def open_existing(
    db_url: str,
    *,
    readonly: bool = True,
    missing: str = "run: sentry-archiver sync (or db upgrade)",
) -> Engine:
    """An engine on a database that exists; never creates one (a SQLite file must be there).

    A mistyped SQLite path must be an error, not a new empty file. ``missing`` ends the
    message when the file is not there; ``readonly`` (see :func:`make_engine`) lets a command
    that only reads open an archive it cannot write.
    """
    url = normalize_url(db_url)
    try:
        make_url(url)
    except ArgumentError as exc:
        raise DatabaseError(f"not a database URL: {db_url!r} ({exc})") from None
    path = sqlite_file(url)
    if path is not None and not path.is_file():
        raise DatabaseError(
            f"no archive at {safe_url(db_url)} (the file does not exist); {missing}"
        )
    return make_engine(url, readonly=readonly)


def open_archive(
    db_url: str,
    *,
    readonly: bool = False,
    missing: str = "run: sentry-archiver sync (or db upgrade)",
) -> Engine:
    """An engine on an existing archive at the current schema; never creates a database.

    For commands that read or prune an archive (status, purge, export, datasette-metadata);
    those that only read pass ``readonly``.
    """
    engine = open_existing(db_url, readonly=readonly, missing=missing)
    try:
        require_current(engine)
    except BaseException:
        engine.dispose()
        raise
    return engine


def require_current(engine: Engine) -> None:
    """Refuse to work on a database whose schema is behind (or ahead of) this version."""
    current = current_revision(engine)
    known, head = known_revisions()
    if current == head:
        return
    if current is not None and current not in known:
        raise _newer_error(engine, current, head)
    if current is None:
        tables = table_names(engine)
        if tables and "alembic_version" not in tables:
            raise _foreign_error(engine, tables)
        raise DatabaseError(
            f"the database {safe_url(str(engine.url))} has no archive schema yet; "
            "run: sentry-archiver db upgrade"
        )
    raise DatabaseError(
        f"the database schema is at revision {current} but this version of "
        f"sentry-archiver needs {head}; run: sentry-archiver db upgrade"
    )


def table_names(engine: Engine) -> list[str]:
    with _connected(engine) as connection:
        return list(inspect(connection).get_table_names())


def inspect_has_tables(engine: Engine) -> bool:
    return bool(table_names(engine))
