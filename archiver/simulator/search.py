"""The subset of Sentry's issue search syntax the simulator understands.

Supported: ``is:unresolved|resolved|ignored|archived|unassigned|assigned``,
``issue.priority:high`` or ``issue.priority:[high, medium]``, ``level:``, ``environment:``,
``issue.category:``, ``firstSeen:``/``lastSeen:`` with ``> >= < <=`` and an ISO date or a
relative ``-24h``/``-14d``, free text (matched against the title), and a query that is one
event ID (a direct hit). Anything else is refused with a 400 rather than silently ignored, so a
client never believes a filter was applied when it was not.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

from .ids import normalize_event_id

TOKEN = re.compile(
    r'(?P<neg>!)?(?P<key>[A-Za-z_][\w.]*):(?P<value>\[[^\]]*\]|"(?:[^"\\]|\\.)*"|\S+)'
    r'|"(?P<quoted>(?:[^"\\]|\\.)*)"'
    r"|(?P<word>\S+)"
)
RELATIVE = re.compile(r"^-(\d+)([smhdw])$")
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
STATUS_ALIASES = {
    "unresolved": "unresolved",
    "resolved": "resolved",
    "ignored": "ignored",
    "archived": "ignored",
}


class QueryError(ValueError):
    """The search query cannot be understood (400)."""


@dataclass
class IssueQuery:
    statuses: set[str] | None = None
    priorities: set[str] | None = None
    levels: set[str] | None = None
    categories: set[str] | None = None
    environments: list[str] = field(default_factory=list)
    first_seen: list[tuple[str, float]] = field(default_factory=list)
    last_seen: list[tuple[str, float]] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    assigned: bool | None = None
    event_id: str | None = None


def parse_datetime(value: str) -> float:
    """Sentry's ``parse_datetime_string``: ISO 8601 (naive means UTC) to epoch seconds."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise QueryError(f"{value} is not a valid ISO8601 date query") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return moment.timestamp()


def _values(raw: str) -> list[str]:
    if raw.startswith("[") and raw.endswith("]"):
        return [v.strip().strip('"') for v in raw[1:-1].split(",") if v.strip()]
    return [raw.strip('"')]


def _date_filter(raw: str, now: float) -> tuple[str, float]:
    op = ""
    for candidate in (">=", "<=", ">", "<"):
        if raw.startswith(candidate):
            op, raw = candidate, raw[len(candidate) :]
            break
    rel = RELATIVE.match(raw)
    if rel:
        moment = now - int(rel.group(1)) * UNITS[rel.group(2)]
        return (op or ">="), moment
    return (op or "="), parse_datetime(raw)


def parse_issue_query(text: str, now: float) -> IssueQuery:
    """Parse an issue search query (see the module docstring for what is understood)."""
    query = IssueQuery()
    stripped = text.strip()
    if not stripped:
        return query
    event_id = normalize_event_id(stripped)
    if event_id is not None and " " not in stripped:
        query.event_id = event_id
        return query
    for match in TOKEN.finditer(stripped):
        if match.group("word") is not None:
            query.text.append(match.group("word"))
        elif match.group("quoted") is not None:
            query.text.append(match.group("quoted"))
        elif match.group("neg"):
            raise QueryError(
                f"Negated search on {match.group('key')!r} is not supported by the simulator"
            )
        else:
            _apply_filter(query, match.group("key"), match.group("value"), now)
    return query


def _apply_filter(query: IssueQuery, key: str, raw: str, now: float) -> None:
    """Add one ``key:value`` filter to the query; 400 for a key the simulator cannot apply."""
    values = _values(raw)
    if key == "is":
        _apply_is(query, values)
    elif key == "issue.priority":
        bad = [v for v in values if v not in ("high", "medium", "low")]
        if bad:
            raise QueryError(f"Invalid priority value: {bad[0]}")
        query.priorities = (query.priorities or set()) | set(values)
    elif key == "level":
        query.levels = (query.levels or set()) | set(values)
    elif key == "issue.category":
        query.categories = (query.categories or set()) | set(values)
    elif key == "environment":
        query.environments.extend(values)
    elif key in ("firstSeen", "lastSeen", "age"):
        target = query.first_seen if key in ("firstSeen", "age") else query.last_seen
        target.append(_date_filter(raw, now))
    else:
        raise QueryError(f"The simulator does not support searching on {key!r}")


def _apply_is(query: IssueQuery, values: list[str]) -> None:
    """``is:``: a status (``archived`` is ``ignored``) or ``assigned``/``unassigned``."""
    for value in values:
        if value in STATUS_ALIASES:
            query.statuses = (query.statuses or set()) | {STATUS_ALIASES[value]}
        elif value in ("unassigned", "assigned"):
            query.assigned = value == "assigned"
        else:
            raise QueryError(
                f'Invalid value for "is" search, valid values are {sorted(STATUS_ALIASES)}'
            )


def date_matches(value: float, filters: list[tuple[str, float]]) -> bool:
    for op, bound in filters:
        ok = {
            ">": value > bound,
            ">=": value >= bound,
            "<": value < bound,
            "<=": value <= bound,
            "=": int(value) == int(bound),
        }[op]
        if not ok:
            return False
    return True
