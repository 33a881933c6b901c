"""``sentry-archiver status``: what the archive holds and how its syncs are going.

Per project: events and issues archived, the oldest and newest event, the last successful run
that covered it (with that run's counts), the last error, and whether the backfill (the first
complete walk of every issue) is still in progress. Plus the run lock's holder and the last
runs. Read-only: it never creates or migrates a database. The command is
:mod:`archiver.cli.status`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, Engine, and_, case, func, select
from sqlalchemy.exc import SQLAlchemyError

from archiver.output import plural
from archiver.sentry.body import html_title
from archiver.storage import db
from archiver.storage.leases import leases_now
from archiver.storage.lock import current_holder, shared_holders
from archiver.storage.store import EVENTS, ISSUE_SYNC, ISSUES, PROJECT_SYNC, PROJECTS, RUNS
from archiver.sync.redetail import MAX_ATTEMPTS, kept_counts

# Walk states that still have work to do (see archiver.sync.engine).
OPEN_WALKS = ("pending", "walking", "failed")
RUN_SCAN_LIMIT = 500  # runs read to find each project's last success


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _run_dict(row: Mapping[str, Any]) -> dict[str, Any]:
    errors = row.get("errors")
    return {
        "id": int(row["id"]),
        "command": row["command"],
        "outcome": row["outcome"],
        "started_at": _iso(row["started_at"]),
        "finished_at": _iso(row["finished_at"]),
        "host": row["host"],
        "pid": row["pid"],
        "projects": int(row["projects"] or 0),
        "issues": int(row["issues"] or 0),
        "events_new": int(row["events_new"] or 0),
        "events_updated": int(row["events_updated"] or 0),
        "requests": int(row["requests"] or 0),
        "retries": int(row["retries"] or 0),
        "failed_issues": len(errors) if isinstance(errors, list) else 0,
        "error_message": row["error_message"] and _clean(str(row["error_message"])),
    }


def _clean(message: str) -> str:
    """An error text as status shows it: an HTML page (a proxy's 502, recorded by an older
    version) by its title, never pasted whole; anything else on one line."""
    return html_title(message) or " ".join(message.split())


def _run_error(run: Mapping[str, Any], failed_issues: int | None = None) -> str:
    """A failed run's message, or (partial) how many issues, of one project if given, failed."""
    if run.get("error_message"):
        return _clean(str(run["error_message"]))
    count = run.get("failed_issues") if failed_issues is None else failed_issues
    if count:
        return f"{plural(int(count), 'issue')} could not be archived"
    return str(run.get("outcome"))


def _failed_issues(run: Mapping[str, Any]) -> list[int]:
    """The issue ids a partial run recorded in ``runs.errors``."""
    errors = run.get("errors")
    if not isinstance(errors, list):
        return []
    return [int(e["issue_id"]) for e in errors if isinstance(e, Mapping) and "issue_id" in e]


def _covers(run: Mapping[str, Any], project: Mapping[str, Any]) -> bool:
    """Did this run archive the project (its options name it, or name no project at all)?"""
    options = run.get("options")
    wanted = options.get("projects") if isinstance(options, Mapping) else None
    if not wanted:
        return True
    keys = {str(project["id"]), str(project.get("slug"))}
    return any(str(w) in keys for w in wanted)


def collect_status(engine: Engine) -> dict[str, Any]:
    """The whole status as plain data (the ``--json`` output)."""
    with engine.connect() as conn:
        projects = [
            dict(r._mapping)
            for r in conn.execute(
                select(PROJECTS.c.id, PROJECTS.c.slug, PROJECTS.c.name).order_by(
                    PROJECTS.c.slug, PROJECTS.c.id
                )
            )
        ]
        events = _by_project(
            conn,
            select(
                EVENTS.c.project_id,
                func.count().label("events"),
                func.min(EVENTS.c.date_created).label("oldest"),
                func.max(EVENTS.c.date_created).label("newest"),
            ).group_by(EVENTS.c.project_id),
        )
        issues = _by_project(
            conn,
            select(ISSUES.c.project_id, func.count().label("issues")).group_by(ISSUES.c.project_id),
        )
        discovery = _by_project(
            conn,
            select(
                PROJECT_SYNC.c.project_id,
                PROJECT_SYNC.c.issues_synced_until,
                PROJECT_SYNC.c.discovery_end,
            ),
        )
        open_walk = ISSUE_SYNC.c.status.in_(OPEN_WALKS)
        walks = _by_project(
            conn,
            select(
                ISSUE_SYNC.c.project_id,
                func.sum(case((open_walk, 1), else_=0)).label("pending"),
                func.sum(
                    case((and_(open_walk, ISSUE_SYNC.c.synced_until.is_(None)), 1), else_=0)
                ).label("never_walked"),
                func.sum(case((ISSUE_SYNC.c.status == "failed", 1), else_=0)).label("failed"),
            ).group_by(ISSUE_SYNC.c.project_id),
        )
        issue_projects = {
            int(i): int(p) for i, p in conn.execute(select(ISSUES.c.id, ISSUES.c.project_id))
        }
        failed_walks: dict[int, dict[str, Any]] = {}
        for r in conn.execute(
            select(
                ISSUE_SYNC.c.project_id,
                ISSUE_SYNC.c.issue_id,
                ISSUE_SYNC.c.last_error,
                ISSUE_SYNC.c.updated_at,
            )
            .where(ISSUE_SYNC.c.status == "failed")
            .order_by(ISSUE_SYNC.c.updated_at.desc())
        ):
            failed_walks.setdefault(
                int(r.project_id),
                {
                    "at": r.updated_at,
                    "issue_id": int(r.issue_id),
                    "message": _clean(r.last_error or "failed"),
                },
            )
        kept, given_up = kept_counts(conn)
        runs = [
            dict(r._mapping)
            for r in conn.execute(
                select(RUNS)
                .where(RUNS.c.command == "sync")
                .order_by(RUNS.c.started_at.desc(), RUNS.c.id.desc())
                .limit(RUN_SCAN_LIMIT)
            )
        ]
    holder = current_holder(engine)
    syncs = shared_holders(engine)  # PostgreSQL: the syncs sharing the archive
    try:
        leases = leases_now(engine)  # and which project each of them walks now
    except SQLAlchemyError:  # an archive not upgraded yet has no project_leases table
        leases = []

    run_dicts = [(_run_dict(r), r) for r in runs]
    last_run = run_dicts[0][0] if run_dicts else None
    last_success = next((d for d, _ in run_dicts if d["outcome"] == "success"), None)
    last_failure = next((d for d, _ in run_dicts if d["outcome"] in ("failed", "partial")), None)

    out_projects: list[dict[str, Any]] = []
    for p in projects:
        pid = int(p["id"])
        ev, iss, disc, wk = (
            events.get(pid, {}),
            issues.get(pid, {}),
            discovery.get(pid),
            walks.get(pid, {}),
        )
        covering = [(d, r) for d, r in run_dicts if _covers(r, p)]
        success = next((d for d, _ in covering if d["outcome"] == "success"), None)
        error = _project_error(covering, success, failed_walks.get(pid), pid, issue_projects)
        discovered = disc is not None and disc.get("issues_synced_until") is not None
        backfill = not discovered or int(wk.get("never_walked") or 0) > 0
        out_projects.append(
            {
                "id": pid,
                "slug": p["slug"],
                "name": p["name"],
                "events": int(ev.get("events") or 0),
                "issues": int(iss.get("issues") or 0),
                "oldest_event": _iso(ev.get("oldest")),
                "newest_event": _iso(ev.get("newest")),
                "last_success": _brief(success),
                "last_error": error,
                "backfill_in_progress": backfill,
                "issues_pending": int(wk.get("pending") or 0),
                "issues_failed": int(wk.get("failed") or 0),
            }
        )
    return {
        "database": db.safe_url(str(engine.url)),
        "schema_revision": db.current_revision(engine),
        "lock": holder.as_dict() if holder else None,
        "syncs": [] if holder else syncs,
        "leases": leases,
        "last_run": last_run,
        "last_success": last_success,
        "last_failure": last_failure,
        "totals": {
            "projects": len(out_projects),
            "events": sum(p["events"] for p in out_projects),
            "issues": sum(p["issues"] for p in out_projects),
        },
        # events kept as listed (detail unusable), of them given up (archiver.sync.redetail)
        "kept_as_listed": {"events": kept, "given_up": given_up},
        "projects": out_projects,
    }


def _brief(run: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A run as shown per project (its counts are the whole run's)."""
    if run is None:
        return None
    keys = ("id", "finished_at", "projects", "issues", "events_new", "events_updated", "requests")
    return {k: run[k] for k in keys}


def _by_project(conn: Connection, query: Any) -> dict[int, dict[str, Any]]:
    return {int(r._mapping["project_id"]): dict(r._mapping) for r in conn.execute(query)}


def _project_error(
    covering: list[tuple[dict[str, Any], dict[str, Any]]],
    success: dict[str, Any] | None,
    failed_walk: dict[str, Any] | None,
    project_id: int,
    issue_projects: Mapping[int, int],
) -> dict[str, Any] | None:
    """The newest problem: a failed issue walk, or a covering run that failed or was partial.

    A partial run counts for a project only if one of its failed issues is the project's
    (``issue_projects``: issue id -> project id), with that project's count: its other
    projects were archived completely.
    """
    candidates: list[dict[str, Any]] = []
    if failed_walk is not None:
        candidates.append(
            {
                "at": failed_walk["at"],
                "issue_id": failed_walk["issue_id"],
                "run_id": None,
                "message": failed_walk["message"],
            }
        )
    for d, r in covering:
        if d["outcome"] in ("failed", "partial"):
            failed = _failed_issues(r)
            mine = [i for i in failed if issue_projects.get(i) == project_id]
            if failed and not mine and not d["error_message"]:
                continue  # a partial run whose failures were all in other projects
            candidates.append(
                {
                    "at": r["finished_at"] or r["started_at"],
                    "issue_id": None,
                    "run_id": d["id"],
                    "message": _run_error(d, len(mine) if failed else None),
                }
            )
            break
    if success is not None and success["finished_at"]:
        # a run failure older than the last success is history, not the current state
        since = dt.datetime.fromisoformat(success["finished_at"])
        candidates = [c for c in candidates if c["issue_id"] is not None or c["at"] > since]
    if not candidates:
        return None
    newest = max(candidates, key=lambda c: c["at"])
    return {**newest, "at": _iso(newest["at"])}


# --------------------------------------------------------------------------- text output


def _short(value: str | None, zone: bool = True) -> str:
    """A stored time to the minute, in UTC and saying so (``zone``), unless a column header
    already says it: the stored offset varies by backend, and a bare time reads as local."""
    if not value:
        return "-"
    when = dt.datetime.fromisoformat(value)
    if when.tzinfo is None:  # SQLite keeps UTC without an offset
        when = when.replace(tzinfo=dt.timezone.utc)
    text = when.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M")
    return f"{text} UTC" if zone else text


def _table(columns: list[str], rows: list[list[str]], right: set[int]) -> list[str]:
    cells = [columns, *rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]

    def line(r: list[str]) -> str:
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ).rstrip()

    return [line(columns), "  ".join("-" * w for w in widths), *(line(r) for r in rows)]


def _run_line(label: str, run: Mapping[str, Any] | None) -> str:
    if run is None:
        return f"{label}: none"
    when = _short(run["finished_at"] or run["started_at"])
    text = (
        f"{label}: #{run['id']} {run['outcome']} at {when} (projects {run['projects']}, "
        f"issues {run['issues']}, events new {run['events_new']}, updated "
        f"{run['events_updated']}, requests {run['requests']})"
    )
    if run["outcome"] in ("failed", "partial"):
        text += f": {_run_error(run)}"
    return text


def format_status(status: Mapping[str, Any]) -> str:
    lock = status["lock"]
    syncs = status.get("syncs", [])
    lines = [
        f"archive:  {status['database']} (schema {status['schema_revision'] or 'none'})",
        "lock:     "
        + (
            f"held by host {lock['host']}, pid {lock['pid']}, command "
            f"{lock['command']}, since {_short(lock['acquired_at'])}"
            if lock
            else "shared by "
            + "; ".join(f"{s['command']} on host {s['host']}, pid {s['pid']}" for s in syncs)
            if syncs
            else "free"
        ),
        *(
            f"lease:    project {x['project'] or x['project_id']} walked by host {x['host']}, "
            f"pid {x['pid']} (run #{x['run_id']}), until {_short(x['expires_at'])}"
            for x in status.get("leases", [])
        ),
        "totals:   " + ", ".join(f"{k} {v:,}" for k, v in status["totals"].items()),
        _run_line("last run", status["last_run"]),
        _run_line("last successful run", status["last_success"]),
    ]
    failure = status["last_failure"]
    if failure is not None and failure is not status["last_run"]:
        lines.append(_run_line("last failed run", failure))
    kept = status["kept_as_listed"]
    if kept["events"]:
        lines.append(
            f"kept as listed: {plural(kept['events'], 'event')} (detail unusable), "
            f"{kept['given_up']:,} given up after {MAX_ATTEMPTS} attempts"
        )
    if not status["projects"]:
        lines.append("\nno projects archived yet: run sentry-archiver sync")
        return "\n".join(lines)
    rows = []
    for p in status["projects"]:
        error = p["last_error"]
        error_text = "-"
        if error:
            where = f"issue {error['issue_id']}" if error["issue_id"] else f"run #{error['run_id']}"
            error_text = f"{_short(error['at'])} {where}: {error['message']}"
        backfill = "in progress" if p["backfill_in_progress"] else "done"
        if p["issues_pending"]:
            backfill += f" ({plural(p['issues_pending'], 'issue')} to walk)"
        rows.append(
            [
                p["slug"] or str(p["id"]),
                f"{p['events']:,}",
                f"{p['issues']:,}",
                _short(p["oldest_event"], zone=False),
                _short(p["newest_event"], zone=False),
                _short(p["last_success"]["finished_at"], zone=False)
                if p["last_success"]
                else "never",
                backfill,
                error_text,
            ]
        )
    lines.append("")
    lines.extend(
        _table(
            [
                "project",
                "events",
                "issues",
                "oldest event (UTC)",
                "newest event (UTC)",
                "last success (UTC)",
                "backfill",
                "last error",
            ],
            rows,
            right={1, 2},
        )
    )
    return "\n".join(lines)
