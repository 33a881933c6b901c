"""Issue, project and release bodies in Sentry's API shapes (``GroupSerializer``,
``ProjectSummarySerializer``-like project list items, releases as seed 000 shows them).

Built as dicts (they are small and few); the endpoints add what depends on the request (the
window's counts, stats, the base URL).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import vocab
from .data import SimulatedOrg
from .jsontext import iso
from .model import DAY, Issue, Project, Release
from .templates import IssueTemplate


def project_json(org: SimulatedOrg, project: Project) -> dict[str, Any]:
    """The organization projects list item (shape of Sentry's example)."""
    latest = org.releases.get(project.index, [])
    envs = sorted({s.environment for i in org.issues if i.project is project for s in i.own})
    return {
        "id": str(project.id),
        "slug": project.slug,
        "name": project.name,
        "platform": project.platform,
        "dateCreated": iso(project.date_created, 0)[:-4] + "Z",
        "isBookmarked": False,
        "isMember": True,
        "features": ["releases", "minidump", "similarity-indexing"],
        "firstEvent": iso(project.date_created + DAY),
        "firstTransactionEvent": project.platform in ("python", "javascript"),
        "access": ["project:read", "event:read"],
        "hasAccess": True,
        "hasMinifiedStackTrace": project.platform == "javascript",
        "hasMonitors": False,
        "hasProfiles": False,
        "hasReplays": False,
        "hasFeedbacks": False,
        "hasSessions": True,
        "isInternal": False,
        "isPublic": False,
        "avatar": {"avatarType": "letter_avatar", "avatarUuid": None},
        "color": "#3f70bf",
        "status": "active",
        "environments": envs,
        "platforms": [project.platform],
        "team": {"id": str(project.team_id), "name": "Core", "slug": "core"},
        "teams": [{"id": str(project.team_id), "name": "Core", "slug": "core"}],
        "latestRelease": {"version": latest[-1].version} if latest else None,
    }


def _short(version: str) -> str:
    if len(version) == 40 and all(c in "0123456789abcdef" for c in version):
        return version[:12]
    return version.split("@", 1)[-1]


def release_json(org: SimulatedOrg, release: Release) -> dict[str, Any]:
    """A release, in the shape of seed 000's ``release`` (the fixture's own object if any)."""
    if release.fixture is not None:
        return dict(release.fixture)
    project = org.projects[release.project_index]
    siblings = org.releases.get(project.index, [])
    pos = next((i for i, r in enumerate(siblings) if r.version == release.version), 0)
    following = siblings[pos + 1].created if pos + 1 < len(siblings) else org.anchor - 1
    seed = release.seed
    sha = f"{(seed * 2654435761) % 2**160:040x}"
    author = vocab.USER_FIRST[seed % len(vocab.USER_FIRST)].lower()
    return {
        "dateReleased": iso(release.created + 1800, 0),
        "newGroups": seed % 7,
        "commitCount": 1 + seed % 40,
        "url": f"https://deploy.acme.io/{project.slug}/{pos + 1}/" if seed % 3 else None,
        "data": {},
        "lastDeploy": {
            "name": f"{release.version} to production",
            "url": None,
            "environment": "production",
            "dateStarted": None,
            "dateFinished": iso(release.created + 1700, 0),
            "id": str(1_000_000 + seed % 1_000_000),
        }
        if seed % 4
        else None,
        "deployCount": 1 if seed % 4 else 0,
        "dateCreated": iso(release.created, 0),
        "lastEvent": iso(following),
        "version": release.version,
        "firstEvent": iso(release.created + 600),
        "lastCommit": {
            "repository": {
                "status": "active",
                "integrationId": "2933",
                "externalSlug": f"acme/{project.slug}",
                "name": f"acme/{project.slug}",
                "provider": {"id": "integrations:github", "name": "GitHub"},
                "url": f"https://github.com/acme/{project.slug}",
                "id": str(10 + project.index),
                "dateCreated": "2019-03-01T10:00:00.000000Z",
            },
            "releases": [
                {
                    "dateReleased": iso(release.created + 1800, 0),
                    "url": None,
                    "dateCreated": iso(release.created, 0),
                    "version": release.version,
                    "shortVersion": release.version,
                    "ref": "main",
                }
            ],
            "dateCreated": iso(release.created - 3600),
            "message": "fix(checkout): guard against empty carts",
            "id": sha,
        },
        "shortVersion": _short(release.version),
        "authors": [
            {
                "username": f"{author}-{seed % 97}",
                "name": author.title(),
                "email": f"{author}@acme.io",
                "id": str(600_000 + seed % 99_999),
                "isActive": True,
                "has2fa": True,
                "avatarUrl": f"https://secure.gravatar.com/avatar/{sha[:32]}?s=32&d=mm",
                "emails": [
                    {
                        "is_verified": True,
                        "id": str(700_000 + seed % 9_999),
                        "email": f"{author}@acme.io",
                    }
                ],
            }
        ],
        "owner": None,
        "ref": "main" if seed % 2 else None,
        "projects": [{"name": project.name, "slug": project.slug}],
    }


@dataclass(frozen=True)
class IssueCounts:
    """What an issue list row needs from the window (computed by the caller)."""

    count: int
    last_seen: int
    first_seen: int
    user_count: int


def issue_json(
    org: SimulatedOrg,
    issue: Issue,
    template: IssueTemplate,
    *,
    base_url: str,
    counts: IssueCounts,
    stats: dict[str, list[list[int]]],
    detail: bool = False,
) -> dict[str, Any]:
    """An issue as the issue list (``GroupSerializer`` + stream extras) or detail shows it."""
    lifetime_users = max(1, min(issue.times_seen, issue.times_seen // 3 + 1))
    status_details: dict[str, Any] = {}
    if issue.status == "ignored":
        status_details = {"ignoreUntilEscalating": True} if "escalating" in issue.substatus else {}
    elif issue.status == "resolved":
        status_details = {"inRelease": "latest"} if issue.seed % 2 else {}
    body: dict[str, Any] = {
        "id": str(issue.id),
        "shareId": None,
        "shortId": issue.short_id,
        "title": template.title,
        "culprit": template.culprit,
        "permalink": f"{base_url}organizations/{org.slug}/issues/{issue.id}/",
        "logger": template.logger,
        "level": template.level,
        "status": issue.status,
        "statusDetails": status_details,
        "substatus": None if issue.status == "resolved" else issue.substatus,
        "isPublic": False,
        "platform": issue.platform,
        "project": {
            "id": str(issue.project.id),
            "name": issue.project.name,
            "slug": issue.project.slug,
            "platform": issue.project.platform,
        },
        "type": template.event_type if template.event_type != "transaction" else "default",
        "metadata": template.metadata,
        "numComments": issue.seed % 4,
        "assignedTo": None,
        "isBookmarked": False,
        "isSubscribed": False,
        "subscriptionDetails": None,
        "hasSeen": bool(issue.seed % 2),
        "annotations": [],
        "issueType": template.issue_type,
        "issueCategory": template.issue_category,
        "priority": issue.priority,
        "priorityLockedAt": None,
        "isUnhandled": "handled\x1fno" in "\x1f".join(f"{k}\x1f{v}" for k, v in template.tags),
        "count": str(counts.count),
        "userCount": counts.user_count,
        "firstSeen": iso(counts.first_seen, 0) if counts.first_seen else None,
        "lastSeen": iso(counts.last_seen, 0) if counts.last_seen else None,
        "stats": stats,
        "lifetime": {
            "count": str(issue.times_seen),
            "userCount": lifetime_users,
            "firstSeen": iso(issue.first_seen, 0),
            "lastSeen": iso(issue.last_seen, 0),
        },
        "filtered": None,
    }
    if detail:
        release = None
        releases = org.releases.get(issue.project.index, [])
        if releases and template.has_release:
            first = max(
                (r for r in releases if r.created <= issue.first_seen),
                key=lambda r: r.created,
                default=None,
            )
            last = max(
                (r for r in releases if r.created <= issue.last_seen),
                key=lambda r: r.created,
                default=None,
            )
            release = first
            body["lastRelease"] = (
                {
                    "version": last.version,
                    "shortVersion": _short(last.version),
                    "dateCreated": iso(last.created, 0),
                    "dateReleased": None,
                    "ref": None,
                    "url": None,
                }
                if last
                else None
            )
        else:
            body["lastRelease"] = None
        body["firstRelease"] = (
            {
                "version": release.version,
                "shortVersion": _short(release.version),
                "dateCreated": iso(release.created, 0),
                "dateReleased": None,
                "ref": None,
                "url": None,
            }
            if release
            else None
        )
        body.update(
            {
                "activity": [
                    {
                        "id": "0",
                        "type": "first_seen",
                        "dateCreated": iso(issue.first_seen, 0),
                        "data": {},
                        "user": None,
                    }
                ],
                "seenBy": [],
                "userReportCount": 0,
                "participants": [],
                "tags": [
                    {"key": "environment", "name": "Environment", "totalValues": issue.times_seen},
                    {"key": "level", "name": "Level", "totalValues": issue.times_seen},
                ],
                "pluginActions": [],
                "pluginIssues": [],
                "pluginContexts": [],
            }
        )
    return body
