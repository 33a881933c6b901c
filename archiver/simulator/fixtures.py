"""The seed payloads (Sentry's own documented examples) as events of the simulated org.

The seed documents were extracted into ``fixtures/*.json`` (by another part of the project);
whatever full events they hold are served verbatim, except for the fields that must fit the
simulated org (id, eventID, groupID, projectID, dateCreated, dateReceived). That way a client
that copes with the simulator has coped with the exact shapes Sentry documents.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FIXTURES_DIR = Path(__file__).with_name("fixtures")

DETAIL_ONLY_KEYS = (
    "release",
    "userReport",
    "nextEventID",
    "previousEventID",
    "sdkUpdates",
    "resolvedWith",
)
"""Keys the detail endpoints add; a stored event body never carries them."""

PLATFORM_ALIASES = {"cocoa": "cocoa", "objc": "cocoa", "swift": "cocoa", "node": "node"}


@dataclass(frozen=True)
class FixtureEvent:
    """One full event body from a fixture file, ready to be re-identified per event."""

    name: str
    body: dict[str, Any]
    release: dict[str, Any] | None

    @property
    def platform(self) -> str:
        value = self.body.get("platform")
        return PLATFORM_ALIASES.get(str(value), str(value)) if value else "python"


def _events_in(value: Any, depth: int = 0) -> list[tuple[dict[str, Any], dict[str, Any] | None]]:
    """Full events found in a fixture document, wherever they sit (lists, lookups, wrappers).

    An event is a dict with a list of ``entries`` and an ``eventID`` or ``id``; the search does
    not descend into events, so a wrapper such as ``{"link": ..., "body": [...]}`` or the event-ID
    lookup's ``{"event": {...}}`` both work.
    """
    if depth > 6:
        return []
    if isinstance(value, list):
        return [found for item in value for found in _events_in(item, depth + 1)]
    if not isinstance(value, dict):
        return []
    if isinstance(value.get("entries"), list) and ("eventID" in value or "id" in value):
        release = value.get("release")
        body = {k: v for k, v in value.items() if k not in DETAIL_ONLY_KEYS}
        return [(body, release if isinstance(release, dict) and release.get("version") else None)]
    return [found for item in value.values() for found in _events_in(item, depth + 1)]


def load_fixture_events(directory: Path | None = None) -> list[FixtureEvent]:
    """Every full event in the fixture directory, in file-name order (stable), or none."""
    folder = directory or FIXTURES_DIR
    if not folder.is_dir():
        return []
    events: list[FixtureEvent] = []
    for path in sorted(folder.glob("*.json")):
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # a fixture being written right now, or not JSON: not ours to judge
        for n, (body, release) in enumerate(_events_in(document)):
            events.append(FixtureEvent(f"{path.stem}#{n}", body, release))
    return events
