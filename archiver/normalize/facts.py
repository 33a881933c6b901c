"""Derived per-event facts: what the query views read, computed once at write time.

The views group and count events by day, user, raised exception and crash frame. Computing
those from the child tables on every query meant reading wide rows; keeping them on ``events``
(migration 0004) lets the views answer from narrow covering indexes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from archiver.normalize.coerce import INDEXED_MAX


def event_facts(
    event: Mapping[str, Any], children: Mapping[str, list[dict[str, Any]]]
) -> dict[str, Any]:
    """The per-event facts the query views read, kept on ``events`` (migration 0004).

    Derived from the event row and its child rows only, exactly as the views used to compute
    them on every query (migration 0004 backfills older events with the same rules in SQL):

    * ``day``: the UTC calendar day of ``date_created``;
    * ``user_key``: Sentry's ``sentry:user``: ``id:``, else ``email:``, else ``username:``,
      else ``ip:`` and the value (None when the event names no user);
    * ``exception_position``, ``exception_type``: the raised exception (the last of the
      chain: the ``is_last`` row; the highest position if a payload has several);
    * ``crash_position``, ``crash_function``, ``crash_module``, ``crash_filename``,
      ``crash_lineno``: the top in-app frame of the raised exception's stack (the in-app,
      non-raw frame with the highest position), None when it has none.

    Text that goes into indexes is cut to ``INDEXED_MAX`` characters; the full values stay in
    the user columns and in ``frames``.
    """
    created = event.get("date_created")
    user_key = None
    for prefix, column in (
        ("id:", "user_id"),
        ("email:", "user_email"),
        ("username:", "user_username"),
        ("ip:", "user_ip_address"),
    ):
        if event.get(column) is not None:
            user_key = (prefix + event[column])[:INDEXED_MAX]
            break
    raised = None
    for exc in children.get("exceptions", ()):
        if exc.get("is_last") and (raised is None or exc["position"] > raised["position"]):
            raised = exc
    crash = None
    if raised is not None:
        for frame in children.get("frames", ()):
            if (
                frame["stack_kind"] == "exception"
                and frame["stack_index"] == raised["position"]
                and not frame["is_raw"]
                and frame.get("in_app") is True
                and (crash is None or frame["position"] > crash["position"])
            ):
                crash = frame

    def cut(value: str | None) -> str | None:
        return None if value is None else value[:INDEXED_MAX]

    return {
        "day": None if created is None else _utc_day(created),
        "user_key": user_key,
        "exception_position": None if raised is None else raised["position"],
        "exception_type": None if raised is None else cut(raised.get("type")),
        "crash_position": None if crash is None else crash["position"],
        "crash_function": None if crash is None else cut(crash.get("function")),
        "crash_module": None if crash is None else cut(crash.get("module")),
        "crash_filename": None if crash is None else cut(crash.get("filename")),
        "crash_lineno": None if crash is None else crash.get("lineno"),
    }


def _utc_day(when: dt.datetime) -> dt.date:
    """The UTC calendar day; a naive datetime is UTC already (as UTCDateTime columns take it)."""
    return (when if when.tzinfo is None else when.astimezone(dt.timezone.utc)).date()
