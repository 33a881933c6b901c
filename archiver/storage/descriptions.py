"""What every table, view and column of the archive means, for Datasette and other browsers.

Kept here rather than as SQL comments: a comment is schema (a migration per wording change),
and SQLite has no comments at all. ``archiver.operations.datasette`` turns this into
Datasette's ``metadata.json``; ``tests/operations/test_datasette.py`` fails when a table, view
or column has none.
"""

from __future__ import annotations

TABLES: dict[str, str] = {
    "projects": "Sentry projects.",
    "issues": "Sentry issues (groups of events with the same fingerprint).",
    "releases": "Release objects, fetched once per version.",
    "events": (
        "One row per archived event; its payload exactly as the API sent it is raw_json "
        "(PostgreSQL) or raw_zstd (SQLite): read it from v_event_raw_json."
    ),
    "event_tags": "Tags of each event, in payload order (duplicate keys allowed).",
    "exceptions": (
        "Exceptions of each event; position 0 is the first cause, is_last the one raised."
    ),
    "threads": "Threads of each event.",
    "stacks": "Distinct stacks: each is stored once, however many events have it.",
    "stack_frames": "The frames of each distinct stack, oldest first (vars are per event).",
    "event_stacks": "The stacks of each event (exceptions, threads, stacktrace entries).",
    "frame_vars": "Local variables of the frames of each event's stacks (frames that have any).",
    "breadcrumbs": "Breadcrumbs (what happened before the event), in order.",
    "requests": "The HTTP request an event happened in.",
    "contexts": "Contexts of each event (browser, os, device, runtime, trace...).",
    "event_errors": "Processing errors Sentry recorded for the event.",
    "event_entries": (
        "Every payload entry in order; data kept for types without a table of their own."
    ),
    "event_problems": "What normalization could not do cleanly (the raw JSON is always kept).",
    "sync_projects": "Sync bookmarks: where each project's issue discovery stands.",
    "sync_issues": "Sync bookmarks: where each issue's event walk stands.",
    "runs": "One row per command run (sync, purge...), for audits.",
    "run_lock": "Who holds the archive's run lock.",
    "project_leases": "Which sync process walks which project (PostgreSQL, several syncs).",
    "purges": "Audit of retention purges.",
    "zstd_dictionaries": "zstd dictionaries trained on this archive's events (raw_zstd).",
}

VIEWS: dict[str, str] = {
    "frames": (
        "Stack frames of exceptions, threads and stacktraces, oldest first: one row per "
        "frame of each event (event_stacks, stack_frames and frame_vars joined)."
    ),
    "v_events": "One row per event with its project slug, UTC day and user key.",
    "v_project_daily": "Events, issues and users per project and UTC day.",
    "v_issue_daily": "Events and users per issue and UTC day.",
    "v_exception_types_daily": "Events per type of raised exception, project and UTC day.",
    "v_crash_frames": "The top in-app frame of the raised exception of each event.",
    "v_top_inapp_frames": "In-app crash frames (function, module, file) by number of events.",
    "v_release_errors": "Events, issues and users per release, with first and last seen.",
    "v_environment_events": "Events, issues and users per project and environment.",
    "v_issue_users": "Archived events and distinct users per issue, with first and last seen.",
    "v_event_raw_json": "Each event's payload exactly as the API sent it (JSON text).",
}

# The columns of the frames view and of the tables it joins (the same meaning in each).
_FRAME: dict[str, str] = {
    "stack_kind": "Which stack: exception, thread or stacktrace.",
    "stack_index": "Position of the exception, thread or stacktrace entry.",
    "is_raw": "Frame of the unsymbolicated rawStacktrace.",
    "position": "Position in the stack, oldest first (the crash site is the highest).",
    "raw_function": "Function name before symbolication.",
    "abs_path": "Absolute path.",
    "colno": "Column number.",
    "in_app": "Frame of the application's own code.",
    "package": "Package or binary.",
    "instruction_addr": "Instruction address.",
    "symbol": "Symbol.",
    "symbol_addr": "Symbol address.",
    "trust": "How the frame was found (native stack walking).",
    "context_line": "The source line.",
    "pre_context": "Source lines before (JSON).",
    "post_context": "Source lines after (JSON).",
    "vars": "Local variables (JSON).",
}

# Columns with the same meaning wherever they appear.
COMMON: dict[str, str] = {
    "event_pk": "The event (events.id).",
    "position": "Order within the event (0 first).",
    "raw_json": "The API payload exactly as received (JSON text).",
    "archived_at": "When this row was first archived (UTC).",
    "updated_at": "When this row last changed (UTC).",
    "project_id": "Sentry project id (projects.id).",
    "issue_id": "Sentry issue id (issues.id).",
    "project_slug": "Project slug.",
    "day": "UTC calendar day (YYYY-MM-DD).",
    "events": "Number of events.",
    "stack_key": (
        "The stack (stacks.stack_key): the first 16 bytes of the SHA-256 of its frames' values."
    ),
    "issues": "Number of distinct issues.",
    "users": "Distinct users (by id, else email, else username, else IP address).",
    "first_seen": "Earliest event (UTC).",
    "last_seen": "Latest event (UTC).",
    "date_created": "When the event happened (UTC).",
    "exception_type": "Type of the raised (last) exception.",
    "data": "The entry's data (JSON).",
    "type": "Type.",
    "message": "Message.",
    "name": "Name.",
    "level": "Level (error, warning, info...).",
    "title": "Title.",
    "host": "Host name of the process.",
    "pid": "Process id.",
    "command": "Command that ran.",
    "started_at": "Start (UTC).",
    "finished_at": "End (UTC).",
    "outcome": "Outcome (running, success, partial, failed, interrupted).",
    "projects": "Projects concerned.",
    "thread_id": "Thread id.",
    "function": "Function name.",
    "module": "Module.",
    "filename": "File name.",
    "lineno": "Line number.",
    "environment": "Environment (production, staging...).",
    "release": "Release version.",
    "version": "Version.",
    "status": "Status.",
    "platform": "Platform (python, javascript...).",
    "culprit": "Where Sentry thinks the error happened.",
    "logger": "Logger name.",
    "metadata": "Sentry's metadata (JSON): type, value, filename, function...",
    "id": "Primary key.",
}

COLUMNS: dict[str, dict[str, str]] = {
    "projects": {
        "id": "Sentry project id.",
        "organization_slug": "Organization slug.",
        "slug": "Project slug.",
        "date_created": "When the project was created (UTC).",
    },
    "issues": {
        "id": "Sentry issue id.",
        "short_id": "Short id shown in Sentry (BACKEND-5).",
        "substatus": "Substatus (ongoing, regressed, archived_until_escalating...).",
        "issue_type": "Issue type (error...).",
        "issue_category": "Issue category.",
        "priority": "Priority (high, medium, low).",
        "first_seen": "First event, according to Sentry (UTC).",
        "last_seen": "Last event, according to Sentry (UTC).",
        "times_seen": "Sentry's lifetime event count.",
        "user_count": "Sentry's count of affected users.",
        "permalink": "Link to the issue in Sentry.",
        "merged_into_id": "Set when Sentry answered with another issue: merged into that one.",
        "gone_at": "Set when Sentry answered 404 for this issue: deleted (UTC).",
    },
    "releases": {
        "version": "Release version (events.release).",
        "short_version": "Short version.",
        "ref": "VCS reference.",
        "url": "Release URL.",
        "date_created": "When the release was created (UTC).",
        "date_released": "When the release was released (UTC).",
        "first_event": "First event in this release, according to Sentry (UTC).",
        "last_event": "Last event in this release, according to Sentry (UTC).",
        "new_groups": "Issues first seen in this release.",
        "commit_count": "Commits.",
        "deploy_count": "Deploys.",
        "authors": "Commit authors (JSON).",
        "last_deploy": "Last deploy (JSON).",
    },
    "events": {
        "id": "Surrogate key (child tables' event_pk).",
        "event_id": "Sentry's 32-hex event id; unique with project_id.",
        "legacy_id": "The payload's id when it is not the hex event id.",
        "type": "Event type (error, default...).",
        "location": "Location.",
        "transaction_name": "Transaction.",
        "dist": "Distribution.",
        "date_received": "When Sentry received the event (UTC).",
        "sdk_name": "SDK name.",
        "sdk_version": "SDK version.",
        "user_id": "User id.",
        "user_email": "User email.",
        "user_username": "User name (login).",
        "user_ip_address": "User IP address.",
        "user_name": "User display name.",
        "user_geo": "User geography (JSON).",
        "user_data": "Other user data (JSON).",
        "size": "Payload size in bytes, according to Sentry.",
        "fingerprints": "Grouping fingerprints (JSON).",
        "contexts": "Contexts (JSON); also in the contexts table.",
        "extra": "Extra data sent by the SDK (JSON).",
        "has_detail": "The payload came from a detail endpoint.",
        "is_full": "The payload carried entries (a full event).",
        "problem_count": "Rows in event_problems.",
        "scrubbed": "Values replaced at archive time (JSON: method, paths).",
        "raw_json": "The API payload exactly as received (JSON text); NULL when in raw_zstd.",
        "raw_zstd": (
            "SQLite: the payload as one zstd frame (with dictionary raw_dict_id); read it with "
            "sentry_raw_json(raw_zstd, raw_dict_id) or from v_event_raw_json."
        ),
        "raw_dict_id": "The zstd_dictionaries row raw_zstd was compressed with (NULL: none).",
        "raw_sha256": "SHA-256 of the payload's text (UTF-8).",
        "day": "UTC calendar day of date_created (what the views group by).",
        "user_key": (
            "The user, like Sentry's sentry:user tag: id:..., email:..., username:... or ip:..."
        ),
        "exception_position": "Position of the raised exception (exceptions.position; NULL: none).",
        "exception_type": "Type of the raised (last) exception.",
        "crash_position": "Position of the top in-app frame of the raised exception's stack "
        "(frames.position; NULL: no in-app frame).",
        "crash_function": "Function of the top in-app frame (where your code crashed).",
        "crash_module": "Module of the top in-app frame.",
        "crash_filename": "File name of the top in-app frame.",
        "crash_lineno": "Line number of the top in-app frame.",
    },
    "event_tags": {"key": "Tag key.", "value": "Tag value."},
    "exceptions": {
        "position": "Position in the chain (0: the first cause).",
        "type": "Exception type.",
        "value": "Exception message.",
        "module": "Module of the exception type.",
        "mechanism_type": "How it was captured (generic, excepthook, onerror...).",
        "handled": "Whether the application handled it.",
        "synthetic": "Whether the type was synthesized by the SDK.",
        "mechanism": "The capture mechanism (JSON).",
        "is_last": "The exception finally raised (the last of the chain).",
    },
    "threads": {
        "current": "The thread that captured the event.",
        "crashed": "The thread that crashed.",
        "state": "Thread state.",
    },
    "frames": _FRAME,
    "stack_frames": _FRAME,
    "event_stacks": _FRAME,
    "frame_vars": _FRAME,
    "stacks": {"frame_count": "Number of frames of the stack (rows of stack_frames)."},
    "breadcrumbs": {
        "timestamp": "When (UTC).",
        "category": "Category (http, navigation, query...).",
        "breadcrumb_event_id": "Event id the breadcrumb refers to.",
    },
    "requests": {
        "method": "HTTP method.",
        "url": "URL.",
        "query_string": "Query string (URL-encoded).",
        "query": "Query in its original shape (JSON).",
        "fragment": "Fragment.",
        "data": "Body (JSON).",
        "headers": "Headers (JSON).",
        "cookies": "Cookies (JSON).",
        "env": "Server environment (JSON).",
        "inferred_content_type": "Body content type.",
    },
    "contexts": {"key": "Context key (browser, os...).", "data": "The whole context (JSON)."},
    "event_errors": {"data": "Details (JSON)."},
    "event_entries": {"type": "Entry type (exception, message, request...)."},
    "event_problems": {
        "path": "Where in the payload.",
        "problem": (
            "malformed, nul_replaced, invalid_unicode, truncated, missing_event_id, too_deep, "
            "invalid_utf8 or detail_unusable."
        ),
        "detail": "Details.",
        "attempts": (
            "detail_unusable: how often later runs asked again for the detail and it was still "
            "unusable; at 5 they ask no more (the event stays as listed)."
        ),
    },
    "sync_projects": {
        "project_id": "The project.",
        "issues_synced_until": "Issues seen before this instant have been discovered (UTC).",
        "discovery_end": "Pinned window end of the discovery in progress (UTC).",
        "discovery_cursor": "Next cursor of the discovery in progress.",
        "backfill_complete": "The first full backfill finished.",
    },
    "sync_issues": {
        "issue_id": "The issue.",
        "status": "Walk status.",
        "synced_until": "Every event of this issue before this instant is archived (UTC).",
        "walk_start": "Pinned window start of the walk in progress (UTC).",
        "walk_end": "Pinned window end of the walk in progress (UTC).",
        "walk_cursor": "Next cursor of the walk in progress.",
        "walk_events": "Events seen by the walk in progress.",
        "last_error": "Last error of this issue's walk.",
    },
    "runs": {
        "server_url": "Sentry server.",
        "organization_slug": "Organization.",
        "projects": "Projects synced.",
        "issues": "Issues walked.",
        "events_new": "Events archived for the first time.",
        "events_updated": "Events whose payload changed.",
        "requests": "HTTP requests made.",
        "retries": "Requests retried.",
        "errors": "Errors (JSON).",
        "error_message": "Why the run failed.",
        "options": "Options of the run (JSON, never the token).",
    },
    "run_lock": {
        "id": "Always 1.",
        "acquired_at": "When the lock was taken (UTC).",
        "heartbeat_at": "Last heartbeat of the holder (UTC).",
    },
    "project_leases": {
        "project_id": "The leased project.",
        "holder": "The holding process and run: host, pid, run id.",
        "host": "Host of the holding process.",
        "pid": "Process id of the holding process.",
        "run_id": "The holder's run (runs.id).",
        "acquired_at": "When the holder claimed the lease (UTC, database clock).",
        "renewed_at": "Last renewal by the holder (UTC, database clock).",
        "expires_at": "The lease is free after this (UTC, database clock); released: in the past.",
        "finished_at": "When a run last completed this project's walks (UTC); NULL: never.",
    },
    "purges": {
        "cutoff": "Events created before this were purged (UTC).",
        "projects": "Projects purged (JSON; NULL: all).",
        "dry_run": "Only counted, nothing deleted.",
        "events_deleted": "Events deleted.",
    },
    "zstd_dictionaries": {
        "created_at": "When it was trained (UTC).",
        "samples": "How many events it was trained on.",
        "data": "The dictionary (zstd's format).",
    },
    "v_events": {
        "event_pk": "The event (events.id).",
        "event_id": "Sentry's 32-hex event id.",
        "user_key": (
            "The user, like Sentry's sentry:user tag: id:..., email:..., username:... or ip:..."
        ),
    },
    "v_issue_daily": {
        "first_seen": "First event of the issue that day (UTC).",
        "last_seen": "Last event of the issue that day (UTC).",
    },
    "v_crash_frames": {"lineno": "Line number of the top in-app frame."},
    "v_event_raw_json": {"event_id": "Sentry's 32-hex event id."},
    "v_issue_users": {"short_id": "Short id shown in Sentry.", "title": "Issue title."},
}

# Column shown for a row that another table points at (Datasette's label_column).
LABELS: dict[str, str] = {"projects": "slug", "issues": "short_id", "releases": "version"}


def describe(table: str, column: str) -> str | None:
    """The description of a column, or None when there is none."""
    return COLUMNS.get(table, {}).get(column) or COMMON.get(column)
