"""A local Sentry REST API look-alike: deterministic lazy data, Sentry's paging, errors,
rate limits and seeded faults. Used by the demo, the integration tests and the benchmarks.

    org = SimulatedOrg(seed=1, events=20_000)
    with SimulatorServer(org) as server:
        ...  # GET f"{server.url}api/0/organizations/acme/issues/?query=" with "Bearer sim-token"

Modules, from the socket inward:

- ``server``: threads, sockets, auth, rate limits and faults around each request.
- ``routes``: which endpoint family a path addresses.
- ``endpoints``: ``SentryApi``, the dispatch, and the organisation, project, release endpoints;
  ``issue_endpoints`` (issue search, issue details) and ``event_endpoints`` (event lists,
  single events, the event-ID lookup) beside it; ``endpointbase``: the request parsing they
  share.
- ``search`` (issue query syntax), ``paging`` (cursors, Link headers), ``ordering`` (tie order,
  ``sample=1``, offset cost), ``ratelimit``, ``faults``, ``requestlog``, ``wire`` (the plain
  request and response values, and ``ErrorAnswer``).
- ``payloads``: ``EventRenderer`` (event bodies, cached); ``eventparts``: what an event ID's
  bits decide; ``resources``: issue, project and release bodies; ``jsontext``: timestamps and
  object assembly.
- ``data``: ``SimulatedOrg`` (lookups, pages, truth, mutations); ``model``: its records;
  ``generate``: the org built from its seed; ``timeline`` (events as segments), ``ids`` (event
  IDs that encode their coordinates), ``clock``, ``fixtures`` (seed events from files).
- ``templates`` and ``vocab``: data tables the generators draw from.
- ``config``: how the server answers (``SimulatorConfig``, ``FaultConfig``, rate limits).
"""

from .clock import Clock, FrozenClock, SystemClock
from .config import FaultConfig, RateLimit, ScheduledFault, SimulatorConfig, rate_limit_preset
from .data import EventRef, Issue, Project, Release, SimulatedOrg
from .server import SimulatorServer

__all__ = [
    "Clock",
    "EventRef",
    "FaultConfig",
    "FrozenClock",
    "Issue",
    "Project",
    "RateLimit",
    "Release",
    "ScheduledFault",
    "SimulatedOrg",
    "SimulatorConfig",
    "SimulatorServer",
    "SystemClock",
    "rate_limit_preset",
]
