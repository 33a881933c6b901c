"""The event detail request of a listed event, and what is kept when its answer is unusable.

A list item comes back from the page workers raw when it needs the event detail endpoint
(``detail = always``, or a server that listed it without its ``entries``). That answer can be
of no use: a body that is not JSON on every retry, JSON that is not an object, an object that
is not this event (no id, or another event's), or a 404 (an event whose body Sentry lost
answers 404 by id, or one that expired since it was listed). Failing the issue for it would
fail it again on every run, and the rest of the issue with it: one bad event would block
every later one. So the event is archived as a malformed list item is, from what the list
gave (its listed copy, ``has_detail`` false), with a ``detail_unusable`` problem saying why;
the run counts it and names it in its summary. A listed copy never replaces a richer copy
already archived (:func:`archiver.storage.encode.rank`).

A failure of the way to the server (connection, timeout, 5xx, 429 beyond the retry budget)
is not the answer's fault and still fails the issue's walk: the next run asks again from
its last committed page.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from archiver.errors import NotFoundError, UnusableAnswer
from archiver.normalize import DecodeProblem, normalize_event_id
from archiver.sentry.client import SentryClient
from archiver.sync.report import SyncReport

log = logging.getLogger("archiver.sync.details")

PROBLEM = "detail_unusable"


@dataclass(frozen=True)
class Detail:
    """What to normalize for a listed event: the detail, or the listed copy and why."""

    payload: Any
    has_detail: bool
    problems: list[DecodeProblem]


def _identity(payload: Any) -> str | None:
    """The id an event is archived under (as :func:`archiver.normalize.normalize_event` keys
    it: the 32-hex ``eventID``, else ``id``), or its id as given when neither is 32-hex."""
    if not isinstance(payload, dict):
        return None
    found = normalize_event_id(payload.get("eventID")) or normalize_event_id(payload.get("id"))
    if found is not None:
        return found
    given = payload.get("eventID") or payload.get("id")
    return str(given) if given else None


def fetch_detail(
    client: SentryClient, org: str, issue_id: int, item: Any, report: SyncReport
) -> Detail:
    """The detail of the listed ``item``, or the item itself when the answer is unusable."""
    listed = _identity(item)
    event_id = item.get("eventID") or item.get("id") if isinstance(item, dict) else None
    if not event_id or listed is None:
        return Detail(item, False, [])  # nothing to ask for: the item is archived as it is
    detail, why = ask_detail(client, org, issue_id, str(event_id), listed)
    if detail is not None:
        report.details_fetched += 1
        return Detail(detail, True, [])
    text = f"the event detail endpoint's answer is unusable: {why}; the listed copy is kept"
    log.warning("issue %s, event %s: %s", issue_id, listed, text)
    report.details_unusable.append(f"issue {issue_id} event {listed}")
    return Detail(item, False, [("$", PROBLEM, text)])


def ask_detail(
    client: SentryClient, org: str, issue_id: int, event_id: str, listed: str
) -> tuple[dict[str, Any] | None, str]:
    """Event ``event_id``'s detail (the organisation-scoped issue event endpoint) if it is
    usable: an object naming the event archived as ``listed``; else None and why not.

    A failure of the way to the server is no answer at all: it raises (see the module)."""
    try:
        detail = client.get_issue_event(org, issue_id, event_id)
    except NotFoundError as exc:
        return None, f"404 ({exc.detail or 'not found'})"
    except UnusableAnswer as exc:
        return None, str(exc)
    answered = _identity(detail)
    if answered == listed:
        return detail, ""
    return None, "it names no event id" if answered is None else f"it is event {answered}"
