"""Seeded fault injection: which request meets which fault.

A plan is decided per request from an RNG keyed by ``(seed, request number)``: the same request
sequence meets the same faults on every run. Transport faults (5xx, cut connections, truncated
bodies, latency, 429 bursts) change the answer; data faults (new events, deletion, merge, the
clock moving) change the org just before the request is answered, as they would between two
requests of a real walk.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field

from .config import FaultConfig, ScheduledFault
from .ids import hash64

TRANSPORT_KINDS = frozenset({"error", "cut", "truncate", "slow", "rate_limit"})
QUERY_FAMILIES = frozenset({"organization_issues", "issue_events"})
"""Where Snuba timeouts surface as 400s (``handle_query_errors``)."""
DATA_KINDS = frozenset({"delete_issue", "merge_issue", "add_events", "advance"})


@dataclass
class FaultPlan:
    status: int | None = None
    """Answer with this status instead (5xx or 429)."""
    cut: bool = False
    truncate: bool = False
    delay_ms: float = 0.0
    actions: list[ScheduledFault] = field(default_factory=list)
    """Data faults to apply before answering (issue_id None: the request's issue)."""
    labels: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.status or self.cut or self.truncate or self.delay_ms or self.actions)


class FaultInjector:
    """Turns a :class:`FaultConfig` into per-request plans (thread-safe, deterministic)."""

    def __init__(self, config: FaultConfig) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._burst_left = 0
        self._fired: set[str] = set()

    def plan(self, request_no: int, family: str, family_no: int) -> FaultPlan:
        """The faults of the ``request_no``-th request (the ``family_no``-th of its family)."""
        cfg = self.config
        out = FaultPlan()
        if not cfg.active:
            return out
        for item in cfg.schedule:
            counter = family_no if item.family is not None else request_no
            if item.at == counter and (item.family is None or item.family == family):
                self._apply_scheduled(out, item)
        rng = random.Random(hash64("fault", cfg.seed, request_no))
        rolls = [rng.random() for _ in range(6)]
        eligible = cfg.families is None or family in cfg.families
        self._roll_burst(out, eligible, rolls[0])
        if eligible:
            self._roll_transport(out, rolls)
        if (
            family in QUERY_FAMILIES
            and out.status is None
            and rng.random() < cfg.query_timeout_rate  # a 7th roll: earlier plans unchanged
        ):
            out.status = 400
            out.labels.append("query_timeout")
        self._add_data_faults(out, request_no, family, family_no)
        return out

    def _roll_burst(self, out: FaultPlan, eligible: bool, roll: float) -> None:
        """A 429 while a burst lasts; an eligible request may start a new one."""
        cfg = self.config
        with self._lock:
            if self._burst_left > 0:
                self._burst_left -= 1
                out.status = out.status or 429
                out.labels.append("burst")
            elif eligible and roll < cfg.burst_rate:
                self._burst_left = max(0, cfg.burst_length - 1)
                out.status = out.status or 429
                out.labels.append("burst")

    def _roll_transport(self, out: FaultPlan, rolls: list[float]) -> None:
        """Probabilistic transport faults: an error status, a cut or truncated body, latency."""
        cfg = self.config
        if rolls[1] < cfg.error_rate and out.status is None:
            out.status = cfg.error_statuses[int(rolls[5] * len(cfg.error_statuses))]
            out.labels.append("error")
        if rolls[2] < cfg.cut_rate:
            out.cut = True
            out.labels.append("cut")
        elif rolls[3] < cfg.truncate_rate:
            out.truncate = True
            out.labels.append("truncate")
        if rolls[4] < cfg.slow_rate:
            out.delay_ms += cfg.slow_ms
            out.labels.append("slow")

    def _add_data_faults(
        self, out: FaultPlan, request_no: int, family: str, family_no: int
    ) -> None:
        """Data faults by cadence: new events, one deletion, one merge, the clock moving."""
        cfg = self.config
        if family == "issue_events":
            if cfg.new_events_every and family_no % cfg.new_events_every == 0:
                out.actions.append(
                    ScheduledFault("add_events", family_no, count=cfg.new_events_count)
                )
            self._once(out, "delete", cfg.delete_issue_after, family_no, "delete_issue")
            self._once(out, "merge", cfg.merge_issue_after, family_no, "merge_issue")
        if cfg.advance_every and request_no % cfg.advance_every == 0:
            out.actions.append(ScheduledFault("advance", request_no, seconds=cfg.advance_seconds))

    def _once(self, out: FaultPlan, key: str, after: int, family_no: int, kind: str) -> None:
        if after and family_no >= after:
            with self._lock:
                if key in self._fired:
                    return
                self._fired.add(key)
            out.actions.append(ScheduledFault(kind, family_no))

    def _apply_scheduled(self, out: FaultPlan, item: ScheduledFault) -> None:
        if item.kind == "error":
            out.status = self.config.error_statuses[0]
        elif item.kind == "rate_limit":
            out.status = 429
        elif item.kind == "cut":
            out.cut = True
        elif item.kind == "truncate":
            out.truncate = True
        elif item.kind == "slow":
            out.delay_ms += self.config.slow_ms
        elif item.kind in DATA_KINDS:
            out.actions.append(item)
        else:
            raise ValueError(f"unknown fault kind {item.kind!r}")
        out.labels.append(item.kind)
