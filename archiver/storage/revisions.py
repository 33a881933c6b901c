"""Where the Alembic scripts are and which revisions they define, read from their text.

Kept apart from :mod:`archiver.storage.db` so that a process can tell whether an archive is
current before it imports SQLAlchemy (the ``sync`` command's first moments,
:mod:`archiver.storage.early`): only the standard library and :mod:`archiver.errors` here.
"""

from __future__ import annotations

import re
from pathlib import Path

from archiver.errors import DatabaseError


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


_REVISION = re.compile(r"^revision(?:\s*:\s*str)?\s*=\s*['\"](\w+)['\"]", re.MULTILINE)
_DOWN_REVISION = re.compile(
    r"^down_revision(?:\s*:[^=]+)?\s*=\s*(?:None|['\"](\w+)['\"])", re.MULTILINE
)


def known_revisions() -> tuple[set[str], str | None]:
    """Every revision the scripts define, and the head: read from their text (no Alembic import).

    Our history is one straight line: the head is the revision nobody names as its
    ``down_revision``. tests/storage/test_migrations.py checks that Alembic agrees.
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
    return revisions, (heads.pop() if heads else None)


def head_revision() -> str | None:
    """The newest migration's revision."""
    return known_revisions()[1]
