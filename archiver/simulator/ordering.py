"""How an event list orders ties, ``sample=1`` and what deep offsets cost (Sentry's Snuba).

* Events of one second have no defined order: ClickHouse returns rows with equal sort keys in
  arbitrary order, differently from one query to the next. :class:`ListOrders` gives every
  request its own tie order, from an RNG keyed by ``(tie_seed, request number)``, so a test
  run is reproducible while no two requests agree.
* ``sample=1`` orders by ``column_hash(id)``: a stable hash of the event id, the same on every
  request.
* Every page is a fresh query that reads and drops the rows before its offset: a delay per
  skipped row, and past ``max_offset`` a 500, like a Snuba query timeout.
"""

from __future__ import annotations

import hashlib
import itertools
import threading
import time
from collections.abc import Callable

from .config import SimulatorConfig
from .wire import ErrorAnswer


def sample_hash(event_id: str) -> int:
    """The stable order of ``sample=1`` (a stand-in for ClickHouse's ``cityHash64(id)``)."""
    return int.from_bytes(hashlib.blake2b(event_id.encode(), digest_size=8).digest(), "big")


class ListOrders:
    """Per-request tie orders and the cost of offsets, for one server's event lists."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self._numbers = itertools.count(1)
        self._lock = threading.Lock()

    def tie_key(self) -> Callable[[str], bytes] | None:
        """A fresh tie order for one request (None: ties by event id, as before)."""
        if not self.config.shuffle_ties:
            return None
        with self._lock:
            number = next(self._numbers)
        salt = f"{self.config.tie_seed}:{number}:".encode()

        def key(event_id: str) -> bytes:
            return hashlib.blake2b(salt + event_id.encode(), digest_size=8).digest()

        return key

    def pay_for_offset(self, offset: int) -> None:
        """Cost of reaching ``offset``: a delay per skipped row, a 500 past the maximum."""
        limit = self.config.max_offset
        if limit is not None and offset > limit:
            raise ErrorAnswer(500, {"detail": "Internal Error", "errorId": "0" * 32})
        if self.config.offset_row_delay > 0 and offset > 0:
            time.sleep(offset * self.config.offset_row_delay)
