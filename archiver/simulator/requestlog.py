"""What the server was asked and how it answered: counters and a bounded log for tests."""

from __future__ import annotations

import threading
from collections import Counter, deque
from dataclasses import dataclass
from urllib.parse import parse_qsl


@dataclass(frozen=True)
class LoggedRequest:
    number: int
    method: str
    path: str
    query: str
    family: str | None
    status: int
    faults: tuple[str, ...]

    @property
    def offset(self) -> int | None:
        """The offset the request's ``cursor`` asked for (0 without one; None if unreadable)."""
        cursor = dict(parse_qsl(self.query)).get("cursor") or "0:0:0"
        bits = cursor.split(":")
        try:
            return int(bits[1]) if len(bits) == 3 else None
        except ValueError:
            return None


class RequestLog:
    """Thread-safe counters (total, per family, per status) and the last ``size`` requests."""

    def __init__(self, size: int = 10_000) -> None:
        self._lock = threading.Lock()
        self._entries: deque[LoggedRequest] = deque(maxlen=size)
        self._counter = 0
        self._family_counter: Counter[str] = Counter()
        self.by_family: Counter[str] = Counter()
        self.by_status: Counter[int] = Counter()
        self.total = 0

    def next_numbers(self, family: str | None) -> tuple[int, int]:
        """Allocate (request number, number within its family), both 1-based."""
        with self._lock:
            self._counter += 1
            if family is None:
                return self._counter, 0
            self._family_counter[family] += 1
            return self._counter, self._family_counter[family]

    def record(self, entry: LoggedRequest) -> None:
        with self._lock:
            self._entries.append(entry)
            self.total += 1
            self.by_status[entry.status] += 1
            if entry.family is not None:
                self.by_family[entry.family] += 1

    def entries(self) -> list[LoggedRequest]:
        with self._lock:
            return list(self._entries)

    def reset(self) -> None:
        with self._lock:
            self._entries.clear()
            self.by_family.clear()
            self.by_status.clear()
            self.total = 0
