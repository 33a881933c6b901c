"""Pure functions from Sentry payloads to rows: no I/O, no database, no SQLAlchemy.

Modules, by concept:

* :mod:`~archiver.normalize.coerce`: payload values to column values (text, numbers,
  booleans, timestamps, JSON), and the record of what had to change (``event_problems``).
* :mod:`~archiver.normalize.event`: one event payload to its ``events`` row and child rows.
* :mod:`~archiver.normalize.entries`: the child rows (tags, exceptions, threads, frames,
  breadcrumbs, request, contexts, other entries, processing errors).
* :mod:`~archiver.normalize.facts`: the derived per-event facts the query views read.
* :mod:`~archiver.normalize.resources`: projects, issues and releases.
* :mod:`~archiver.normalize.lenient`: what can be read of an event too deep to parse, or
  holding bytes that are not UTF-8.
* :mod:`~archiver.normalize.scrub`: personal data hashed out of a payload before it is
  normalized.

Callers import from this package; the modules are its inside.
"""

from archiver.normalize.coerce import (
    INDEXED_MAX,
    NUL_SUBSTITUTE,
    dump_raw,
    normalize_event_id,
    parse_timestamp,
)
from archiver.normalize.event import (
    CHILD_NAMES,
    NormalizedEvent,
    event_second,
    is_hollow,
    normalize_event,
)
from archiver.normalize.facts import event_facts
from archiver.normalize.lenient import DecodeProblem, read_shallow, storable_raw, value_end
from archiver.normalize.resources import normalize_issue, normalize_project, normalize_release
from archiver.normalize.scrub import Scrubber, make_scrubber, normalize_scrubbed

__all__ = [
    "CHILD_NAMES",
    "INDEXED_MAX",
    "NUL_SUBSTITUTE",
    "DecodeProblem",
    "NormalizedEvent",
    "Scrubber",
    "dump_raw",
    "event_facts",
    "event_second",
    "is_hollow",
    "make_scrubber",
    "normalize_event",
    "normalize_event_id",
    "normalize_issue",
    "normalize_project",
    "normalize_release",
    "normalize_scrubbed",
    "parse_timestamp",
    "read_shallow",
    "storable_raw",
    "value_end",
]
