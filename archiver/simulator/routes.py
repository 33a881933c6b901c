"""Which endpoint a path addresses: the API's URL patterns, one endpoint family each.

The families are the unit of rate limiting, scopes and request counters (see :mod:`.config`).
"""

from __future__ import annotations

import re
from urllib.parse import unquote

ORGLESS = r"^/api/0/(?:issues|groups)/(?P<issue>[^/]+)/"
"""Organisation-less group URLs (deprecated; Correction 1): see ``SimulatorConfig.orgless_urls``."""
ORG_ISSUE = r"^/api/0/organizations/(?P<org>[^/]+)/issues/(?P<issue>[^/]+)/"

ROUTES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(pattern))
    for name, pattern in (
        ("organization_index", r"^/api/0/organizations/$"),
        ("organization_details", r"^/api/0/organizations/(?P<org>[^/]+)/$"),
        ("organization_projects", r"^/api/0/organizations/(?P<org>[^/]+)/projects/$"),
        ("organization_issues", r"^/api/0/organizations/(?P<org>[^/]+)/issues/$"),
        ("issue_details", ORG_ISSUE + "$"),
        ("issue_details", ORGLESS + "$"),
        ("issue_events", ORG_ISSUE + "events/$"),
        ("issue_events", ORGLESS + "events/$"),
        ("issue_event_details", ORG_ISSUE + r"events/(?P<event>[^/]+)/$"),
        ("issue_event_details", ORGLESS + r"events/(?P<event>[^/]+)/$"),
        ("project_details", r"^/api/0/projects/(?P<org>[^/]+)/(?P<project>[^/]+)/$"),
        ("project_issues", r"^/api/0/projects/(?P<org>[^/]+)/(?P<project>[^/]+)/issues/$"),
        ("project_events", r"^/api/0/projects/(?P<org>[^/]+)/(?P<project>[^/]+)/events/$"),
        (
            "project_event_details",
            r"^/api/0/projects/(?P<org>[^/]+)/(?P<project>[^/]+)/events/(?P<event>[^/]+)/$",
        ),
        ("eventids", r"^/api/0/organizations/(?P<org>[^/]+)/eventids/(?P<event>[^/]+)/$"),
        ("releases", r"^/api/0/organizations/(?P<org>[^/]+)/releases/(?P<version>[^/]+)/$"),
    )
)


def route(path: str) -> tuple[str, dict[str, str]] | None:
    """The endpoint family and decoded route parameters of a raw path, or None."""
    for name, pattern in ROUTES:
        match = pattern.match(path)
        if match:
            return name, {k: unquote(v) for k, v in match.groupdict().items()}
    return None
