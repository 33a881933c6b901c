"""Per-event rows left without their event (or stack): what ``db check`` counts.

PostgreSQL has no foreign keys on the per-event tables (:func:`archiver.storage.base
.sqlite_only_fk`, migration 0008): the archiver writes an event's rows with it and deletes
them with it, but a ``DELETE FROM events`` of someone's own leaves them behind. On SQLite the
constraints cascade, but only on connections that turn them on (``PRAGMA foreign_keys``, off
by default in the ``sqlite3`` shell), so an archive can hold such rows there too.

Each check is one anti-join, ``NOT EXISTS`` on the parent's primary key: the child table is
read once (its primary key starts with ``event_pk``) and each row looks its parent up by key,
so the cost grows with the child rows, never with their product.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, Select, Table, exists, func, select

from archiver.storage.models import EVENT_CHILD_TABLES, EVENTS
from archiver.storage.stacks import EVENT_STACKS, STACKS


@dataclass(frozen=True)
class Link:
    """A child table's column that must name a row of its parent."""

    child: Table
    column: str
    parent: Table
    key: str

    @property
    def name(self) -> str:
        """The table, and its parent when that is not ``events``."""
        if self.parent is EVENTS:
            return self.child.name
        return f"{self.child.name} -> {self.parent.name}"

    @property
    def gone(self) -> str:
        """What such a row has lost."""
        return "event" if self.parent is EVENTS else self.parent.name.rstrip("s")

    def delete_sql(self) -> str:
        """The statement that deletes such rows (as the cascade would have on SQLite)."""
        child, parent = self.child.name, self.parent.name
        return (
            f"DELETE FROM {child} WHERE NOT EXISTS (SELECT 1 FROM {parent} p "
            f"WHERE p.{self.key} = {child}.{self.column});"
        )


LINKS: tuple[Link, ...] = (
    *(Link(t, "event_pk", EVENTS, "id") for t in EVENT_CHILD_TABLES),
    Link(EVENT_STACKS, "stack_key", STACKS, "stack_key"),
)
"""Every link the archiver keeps itself on PostgreSQL."""


def count_query(link: Link) -> Select[int]:
    """``SELECT count(*)`` of the rows of ``link.child`` whose parent is gone."""
    key = link.parent.c[link.key]
    return (
        select(func.count())
        .select_from(link.child)
        .where(~exists().where(key == link.child.c[link.column]))
    )


def find_orphans(conn: Connection) -> dict[str, int]:
    """The rows whose event (or, ``event_stacks``, stack) the archive does not hold, counted
    per :attr:`Link.name`; only those with some."""
    found: dict[str, int] = {}
    for link in LINKS:
        n = int(conn.execute(count_query(link)).scalar_one())
        if n:
            found[link.name] = n
    return found


def describe(found: dict[str, int]) -> list[str]:
    """What ``db check`` prints about ``found``: a line per table, then how to delete them."""
    links = {link.name: link for link in LINKS}
    lines = [
        f"orphans: {name}: {n:,} row{'s' if n != 1 else ''} whose {links[name].gone} is gone"
        for name, n in found.items()
    ]
    lines.append(
        "no command deletes them; these statements do (in this order, one transaction), "
        "as ON DELETE CASCADE would have:"
    )
    lines.extend(f"  {links[name].delete_sql()}" for name in found)
    return lines
