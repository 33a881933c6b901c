"""A local Sentry REST API look-alike: deterministic lazy data, Sentry's paging, errors,
rate limits and seeded faults. Used by the demo, the integration tests and the benchmarks.

    org = SimulatedOrg(seed=1, events=20_000)
    with SimulatorServer(org) as server:
        ...  # GET f"{server.url}api/0/organizations/acme/issues/?query=" with "Bearer sim-token"
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
