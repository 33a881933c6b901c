"""Baseline for bench_sync.py: what a hand-written script does.

Fetches the same pages as the archiver (projects, every issue with ``query=``, each issue's
events with ``full=true`` in one window) one after another with one httpx client, and stores
only each event's raw JSON in SQLite, committing per page. No normalization, no concurrency.

It also counts what it fetched, into a one-row table ``fetched``: pages, events and the bytes
of the events' JSON as served (each page body less its brackets and commas: the simulator's
arrays are compact), the "raw JSON bytes" an archive's size is compared with. Counting costs a
``len`` per page, nothing per event, so the baseline's rate is not changed by it.

    python bench/baseline_fetch.py URL TOKEN ORG DB_PATH
"""

from __future__ import annotations

import json
import sqlite3
import sys
from typing import Any

import httpx

from archiver.sentry.pagination import parse_link_header


def pages(client: httpx.Client, path: str, params: dict[str, str]) -> list[list[dict[str, Any]]]:
    out: list[list[dict[str, Any]]] = []
    cursor = None
    while True:
        query = dict(params)
        if cursor:
            query["cursor"] = cursor
        response = client.get(path, params=query)
        response.raise_for_status()
        out.append(response.json())
        nxt = parse_link_header(response.headers.get("link")).get("next")
        if nxt is None or not nxt.results:
            return out
        cursor = nxt.cursor


def main(url: str, token: str, org: str, db_path: str) -> None:
    con = sqlite3.connect(db_path)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("CREATE TABLE IF NOT EXISTS raw (event_id TEXT PRIMARY KEY, body TEXT)")
    pages_seen = events_seen = json_bytes = 0
    window = {"start": "1970-01-01T00:00:00", "end": "2100-01-01T00:00:00"}
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as c:
        projects = [
            p for page in pages(c, f"/api/0/organizations/{org}/projects/", {}) for p in page
        ]
        for project in projects:
            issues = [
                i
                for page in pages(
                    c,
                    f"/api/0/organizations/{org}/issues/",
                    {"project": project["id"], "query": "", "sort": "new", **window},
                )
                for i in page
            ]
            for issue in issues:
                cursor = None
                while True:
                    params = {"full": "true", **window}
                    if cursor:
                        params["cursor"] = cursor
                    path = f"/api/0/organizations/{org}/issues/{issue['id']}/events/"
                    r = c.get(path, params=params)  # the org-scoped route, as the sync's
                    r.raise_for_status()
                    events = r.json()
                    con.executemany(
                        "INSERT OR REPLACE INTO raw VALUES (?, ?)",
                        [(e["eventID"], json.dumps(e)) for e in events],
                    )
                    pages_seen += 1
                    events_seen += len(events)
                    json_bytes += len(r.content) - 2 - max(len(events) - 1, 0)  # [a,b,c]
                    con.commit()
                    nxt = parse_link_header(r.headers.get("link")).get("next")
                    if nxt is None or not nxt.results:
                        break
                    cursor = nxt.cursor
    con.execute("CREATE TABLE fetched (pages INTEGER, events INTEGER, json_bytes INTEGER)")
    con.execute("INSERT INTO fetched VALUES (?, ?, ?)", (pages_seen, events_seen, json_bytes))
    con.commit()
    con.close()


if __name__ == "__main__":
    main(*sys.argv[1:5])
