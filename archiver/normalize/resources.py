"""Rows of the discovery objects: projects, issues and releases.

These have no problem table: values are made storable (NUL and lone surrogates replaced, numbers
coerced) without a record, and the raw JSON keeps the original.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from archiver.normalize.coerce import Problems, clean_plain, dump_raw, parse_timestamp


def _scrub_text(value: Any) -> str | None:
    """Text for discovery objects (no problem table there): NUL and surrogates replaced."""
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    return clean_plain(text)


def _clean_json(value: Any) -> Any:
    """A JSON value made storable, the problems it had dropped (there is nowhere to keep them)."""
    return Problems().json(value, "$")


def normalize_project(payload: Mapping[str, Any], organization_slug: str) -> dict[str, Any]:
    """A ``projects`` row from the organization projects list."""
    return {
        "id": int(payload["id"]),
        "organization_slug": _scrub_text(organization_slug),
        "slug": _scrub_text(payload.get("slug")),
        "name": _scrub_text(payload.get("name")),
        "platform": _scrub_text(payload.get("platform")) or None,
        "date_created": parse_timestamp(payload.get("dateCreated")),
        "raw_json": dump_raw(payload),
    }


def normalize_issue(payload: Mapping[str, Any], *, project_id: int | None = None) -> dict[str, Any]:
    """An ``issues`` row. Counts and first/last seen come from ``lifetime`` when present.

    With a date window, Sentry's issue search reports ``count``, ``userCount``, ``firstSeen``
    and ``lastSeen`` for that window only; ``lifetime`` carries the issue's totals.
    """
    project = payload.get("project")
    pid = project.get("id") if isinstance(project, dict) else None
    pid = int(pid) if pid is not None else project_id
    if pid is None:
        raise ValueError("the issue names no project and none was given")
    lifetime = payload.get("lifetime")
    totals = lifetime if isinstance(lifetime, dict) else {}

    def pick(key: str) -> Any:
        value = totals.get(key)
        return value if value is not None else payload.get(key)

    p = Problems()
    return {
        "id": int(payload["id"]),
        "project_id": int(pid),
        "short_id": _scrub_text(payload.get("shortId")),
        "title": _scrub_text(payload.get("title")),
        "culprit": _scrub_text(payload.get("culprit")),
        "level": _scrub_text(payload.get("level")),
        "status": _scrub_text(payload.get("status")),
        "substatus": _scrub_text(payload.get("substatus")),
        "issue_type": _scrub_text(payload.get("issueType")),
        "issue_category": _scrub_text(payload.get("issueCategory")),
        "priority": _scrub_text(payload.get("priority")),
        "logger": _scrub_text(payload.get("logger")),
        "first_seen": parse_timestamp(pick("firstSeen")),
        "last_seen": parse_timestamp(pick("lastSeen")),
        "times_seen": p.int_(pick("count"), "count"),
        "user_count": p.int_(pick("userCount"), "userCount"),
        "permalink": _scrub_text(payload.get("permalink")),
        "metadata": _clean_json(payload.get("metadata")),
        "merged_into_id": None,
        "gone_at": None,
        "raw_json": dump_raw(payload),
    }


def normalize_release(payload: Mapping[str, Any]) -> dict[str, Any]:
    """A ``releases`` row from a release object."""
    p = Problems()
    return {
        "version": _scrub_text(payload.get("version")) or "",
        "short_version": _scrub_text(payload.get("shortVersion")),
        "ref": _scrub_text(payload.get("ref")),
        "url": _scrub_text(payload.get("url")),
        "date_created": parse_timestamp(payload.get("dateCreated")),
        "date_released": parse_timestamp(payload.get("dateReleased")),
        "first_event": parse_timestamp(payload.get("firstEvent")),
        "last_event": parse_timestamp(payload.get("lastEvent")),
        "new_groups": p.int_(payload.get("newGroups"), "newGroups"),
        "commit_count": p.int_(payload.get("commitCount"), "commitCount"),
        "deploy_count": p.int_(payload.get("deployCount"), "deployCount"),
        "authors": _clean_json(payload.get("authors")),
        "last_deploy": _clean_json(payload.get("lastDeploy")),
        "raw_json": dump_raw(payload),
    }
