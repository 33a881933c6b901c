"""``db check``'s count of rows without their event reads each table once, never a product.

Each count must be an anti-join on the parent's primary key (PostgreSQL: an ``Anti Join``
node; SQLite: a search of the parent by its primary key per child row), or an archive of
millions of child rows would take minutes. ``tests/cli/test_cli_db.py`` checks the counts.
"""

from __future__ import annotations

import re

from sqlalchemy import Engine, text

from archiver.storage.orphans import LINKS, count_query


def test_every_count_is_an_anti_join_on_the_parents_key(engine: Engine) -> None:
    with engine.connect() as conn:
        for link in LINKS:
            sql = str(count_query(link).compile(dialect=engine.dialect))
            if engine.dialect.name == "postgresql":
                plan = "\n".join(r[0] for r in conn.execute(text(f"EXPLAIN {sql}")))
                assert "Anti Join" in plan, (link.name, plan)
                assert "SubPlan" not in plan, (link.name, plan)
            else:
                plan = "\n".join(r[-1] for r in conn.execute(text(f"EXPLAIN QUERY PLAN {sql}")))
                parent = re.escape(link.parent.name)
                assert re.search(rf"SEARCH {parent} USING (INTEGER )?PRIMARY KEY", plan), (
                    link.name,
                    plan,
                )
