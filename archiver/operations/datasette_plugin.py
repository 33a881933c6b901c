"""A Datasette plugin: ``sentry_raw_json(raw_zstd, raw_dict_id)`` on Datasette's connections.

A SQLite archive keeps each event's raw JSON zstd-compressed (:mod:`archiver.storage.rawjson`);
the view ``v_event_raw_json`` reads it through that function, which SQLite does not have.
Installed with sentry-archiver (entry point ``datasette``), Datasette loads this module and
registers the function on every connection it opens, so the view and the function work there
as in the archiver. pluggy is Datasette's own dependency: nothing here runs without it.
"""

from __future__ import annotations

import sqlite3

import pluggy

from archiver.storage import rawjson

hookimpl = pluggy.HookimplMarker("datasette")


@hookimpl
def prepare_connection(conn: sqlite3.Connection) -> None:
    rawjson.register(conn)
