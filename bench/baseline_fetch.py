"""Baseline for bench_sync.py: what a hand-written script does.

Fetches the same pages as the archiver (projects, every issue with ``query=``, each issue's
events with ``full=true`` in one window) one after another with one httpx client, and stores
only each event's raw JSON in SQLite, committing per page. No normalization, no concurrency.

    python bench/baseline_fetch.py URL TOKEN ORG DB_PATH
"""

from __future__ import annotations

import json
import sqlite3
import sys

import httpx

from archiver.sentry.pagination import parse_link_header


def pages(client: httpx.Client, path: str, params: dict[str, str]) -> list[list[dict]]:
    out = []
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
                    con.executemany(
                        "INSERT OR REPLACE INTO raw VALUES (?, ?)",
                        [(e["eventID"], json.dumps(e)) for e in r.json()],
                    )
                    con.commit()
                    nxt = parse_link_header(r.headers.get("link")).get("next")
                    if nxt is None or not nxt.results:
                        break
                    cursor = nxt.cursor
    con.close()


if __name__ == "__main__":
    main(*sys.argv[1:5])
