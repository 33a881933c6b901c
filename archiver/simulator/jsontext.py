"""JSON assembled as text: Sentry's timestamps, and objects joined from ready fragments.

The event renderers build bodies from pre-serialized pieces instead of ``json.dumps`` of whole
dicts (that is what keeps the simulator fast); these are the two helpers they share with the
issue, project and release bodies.
"""

from __future__ import annotations

import functools
import time

NULL = "null"
"""JSON's null, as a fragment."""


@functools.lru_cache(maxsize=65_536)
def _minute_prefix(minute: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:", time.gmtime(minute * 60))


def iso(seconds: int, micros: int | None = None) -> str:
    """``2024-06-01T12:00:00.123456Z`` (or whole seconds when ``micros`` is None).

    Formats tens of timestamps per event, so the minute prefix is memoised.
    """
    minute, second = divmod(int(seconds), 60)
    prefix = _minute_prefix(minute)
    return f"{prefix}{second:02d}.{micros:06d}Z" if micros is not None else f"{prefix}{second:02d}Z"


def assemble(parts: list[tuple[str, str]]) -> str:
    """A JSON object from ``(key, JSON fragment)`` pairs, in their order (keys need no escaping)."""
    return "{" + ",".join(f'"{k}":{v}' for k, v in parts) + "}"
