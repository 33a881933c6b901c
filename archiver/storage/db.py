"""Database engines and schema migrations.

One place decides how a URL becomes an engine (SQLite pragmas, the psycopg 3 driver) and where
the Alembic migrations live, so the CLI, the tests and the benchmarks all see the same database.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError

from archiver.errors import DatabaseError
from archiver.storage.models import Base

if TYPE_CHECKING:
    from alembic.config import Config

# Alembic is imported only where a migration runs or is compared: the import is slow and
# large, and every sync and status opens an archive that is nearly always current.

DEFAULT_DB_URL = "sqlite:///sentry-archive.db"
SQLITE_BUSY_TIMEOUT_MS = 30_000
# A new archive's page size, and each connection's page cache (in KiB). A page of 100 events
# dirties thousands of pages (most of them leaves of the secondary indexes, whose keys arrive
# in no order), and SQLite's default 2 MB cache spilled them to the WAL before the commit,
# writing the same pages again and again. Larger pages and a larger cache cut those writes
# (bench/bench_writer.py under `strace -c` measures it; the README's performance section has
# the figures); a larger cache than this wrote no less and only cost memory. The page size
# applies to archives created from now on (SQLite fixes it when a database file is first
# written); the cache to every connection, so older archives gain that part.
SQLITE_PAGE_SIZE = 16_384
SQLITE_CACHE_KIB = 8_192


def migrations_dir() -> Path:
    """Where the Alembic scripts are.

    A wheel ships the top-level ``migrations/`` folder as ``archiver/_migrations``; a source
    checkout (or an editable install) has it beside the package.
    """
    package = Path(__file__).resolve().parent.parent  # archiver/
    for candidate in (package / "_migrations", package.parent / "migrations"):
        if (candidate / "env.py").is_file():
            return candidate
    raise DatabaseError(
        f"cannot find the database migrations (looked in {package / '_migrations'} and "
        f"{package.parent / 'migrations'}); the installation is incomplete"
    )


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


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine; SQLite gets WAL, a busy timeout, foreign keys and explicit BEGINs."""
    url = normalize_url(url)
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise DatabaseError(f"not a database URL: {url!r} ({exc})") from None
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:" and not database.startswith("file:"):
            parent = Path(database).expanduser().resolve().parent
            if not parent.is_dir():
                raise DatabaseError(f"cannot create the SQLite database: {parent} does not exist")
        kwargs.setdefault("connect_args", {}).setdefault("timeout", SQLITE_BUSY_TIMEOUT_MS / 1000)
        engine = create_engine(url, **kwargs)
        _configure_sqlite(engine)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    try:
        return create_engine(url, **kwargs)
    except ModuleNotFoundError as exc:
        raise DatabaseError(
            f"the driver for {parsed.get_backend_name()} is not installed ({exc.name}); "
            "for PostgreSQL install the extra: pip install 'sentry-archiver[postgres]'"
        ) from None


def _configure_sqlite(engine: Engine) -> None:
    """WAL so readers never block the writer; transactions begun by us, not by pysqlite.

    pysqlite's own transaction handling defers BEGIN and cannot say IMMEDIATE; taking it over
    (the recipe in SQLAlchemy's SQLite docs) lets the single writer take the write lock at the
    start of each page's transaction (``Store.transaction``) instead of failing half-way.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # Before anything is written (journal_mode = WAL writes the header): a no-op on an
        # existing database, whose page size is fixed.
        cursor.execute(f"PRAGMA page_size = {SQLITE_PAGE_SIZE}")
        cursor.execute(f"PRAGMA cache_size = -{SQLITE_CACHE_KIB}")
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        immediate = connection.get_execution_options().get("sqlite_immediate", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


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


_REVISION = re.compile(r"^revision(?:\s*:\s*str)?\s*=\s*['\"](\w+)['\"]", re.MULTILINE)
_DOWN_REVISION = re.compile(
    r"^down_revision(?:\s*:[^=]+)?\s*=\s*(?:None|['\"](\w+)['\"])", re.MULTILINE
)


def head_revision() -> str | None:
    """The newest migration's revision, read from the scripts' text (no Alembic import).

    Our history is one straight line: the head is the revision nobody names as its
    ``down_revision``. tests/test_migrations.py checks that Alembic agrees.
    """
    revisions: set[str] = set()
    parents: set[str] = set()
    for script in (migrations_dir() / "versions").glob("*.py"):
        source = script.read_text(encoding="utf-8")
        revision, down = _REVISION.search(source), _DOWN_REVISION.search(source)
        if revision is None or down is None:
            continue
        revisions.add(revision.group(1))
        if down.group(1):
            parents.add(down.group(1))
    heads = revisions - parents
    if len(heads) > 1:
        raise DatabaseError(f"the migrations have several heads: {sorted(heads)}")
    return heads.pop() if heads else None


@contextmanager
def _connected(engine: Engine) -> Iterator[Connection]:
    """A transaction on the engine; an unreachable database becomes a clear DatabaseError."""
    try:
        connection_cm = engine.begin()
        connection = connection_cm.__enter__()
    except OperationalError as exc:
        raise DatabaseError(
            f"cannot open the database {safe_url(str(engine.url))}: {exc.orig}"
        ) from None
    try:
        yield connection
    except BaseException as exc:
        if not connection_cm.__exit__(type(exc), exc, exc.__traceback__):
            raise
    else:
        connection_cm.__exit__(None, None, None)


def upgrade(engine: Engine, revision: str = "head") -> None:
    with _connected(engine) as connection:
        if revision == "head" and _stored_revision(connection) == head_revision():
            return  # current: nothing to run, no need for Alembic
        from alembic import command

        command.upgrade(alembic_config(connection), revision)


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

    Alembic's own table is left alone, and so are indexes the models create only on other
    dialects (``Index(...).ddl_if(dialect=...)``): Alembic ignores ``ddl_if`` and would
    report them missing.
    """

    def include(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        if type_ == "table" and name == "alembic_version":
            return False
        only = getattr(getattr(obj, "_ddl_if", None), "dialect", None)
        if type_ == "index" and not reflected and only is not None:
            return dialect in ((only,) if isinstance(only, str) else tuple(only))
        return True

    return include


def open_archive(
    db_url: str, *, missing: str = "run: sentry-archiver sync (or db upgrade)"
) -> Engine:
    """An engine on an existing archive at the current schema; never creates a database.

    For commands that read or prune an archive (status, purge, export, datasette-metadata):
    a mistyped SQLite path must be an error, not a new empty file. ``missing`` ends the
    message when the file is not there.
    """
    url = normalize_url(db_url)
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise DatabaseError(f"not a database URL: {db_url!r} ({exc})") from None
    if parsed.get_backend_name() == "sqlite":
        path = parsed.database
        if (
            path
            and path != ":memory:"
            and not path.startswith("file:")
            and not Path(path).expanduser().is_file()
        ):
            raise DatabaseError(
                f"no archive at {safe_url(db_url)} (the file does not exist); {missing}"
            )
    engine = make_engine(url)
    try:
        require_current(engine)
    except BaseException:
        engine.dispose()
        raise
    return engine


def require_current(engine: Engine) -> None:
    """Refuse to work on a database whose schema is behind (or ahead of) this version."""
    current = current_revision(engine)
    head = head_revision()
    if current != head:
        if current is None and not inspect_has_tables(engine):
            raise DatabaseError(
                f"the database {safe_url(str(engine.url))} has no archive schema yet; "
                "run: sentry-archiver db upgrade"
            )
        raise DatabaseError(
            f"the database schema is at revision {current or 'none'} but this version of "
            f"sentry-archiver needs {head}; run: sentry-archiver db upgrade"
        )


def inspect_has_tables(engine: Engine) -> bool:
    with _connected(engine) as connection:
        return bool(inspect(connection).get_table_names())
