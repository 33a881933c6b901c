"""How many requests of one endpoint family the client keeps in flight.

The server's ``X-Sentry-Rate-Limit-ConcurrentLimit`` says how many it allows at once; the
client follows it (up to its ``concurrency`` ceiling), starts with one request alone until the
first answer tells, keeps the ceiling when a server sends no such header (self-hosted), and
halves its target after a concurrency 429 (another client shares the budget). Instant and
deterministic: no threads, the gate is asked with ``try_acquire``.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Callable

import httpx

from archiver.sentry.client import SentryClient
from archiver.sentry.concurrency import ConcurrencyGate, first_in_line
from archiver.sentry.ratelimit import family_of

TOKEN = "sntrys_unit-test-secret-token"
EVENTS = "api/0/organizations/acme/issues/1/events/"


def fill(gate: ConcurrencyGate) -> int:
    """Take every slot the gate gives now (and give them back): how many requests may go."""
    taken = 0
    while gate.try_acquire():
        taken += 1
        assert taken < 1000
    for _ in range(taken):
        gate.release(None)
    return taken


def answered(gate: ConcurrencyGate, headers: dict[str, str], status: int = 200) -> None:
    """One request goes and comes back with ``headers``."""
    assert gate.try_acquire()
    gate.release(httpx.Response(status, headers=headers))


def limit(n: int) -> dict[str, str]:
    return {"X-Sentry-Rate-Limit-ConcurrentLimit": str(n)}


def test_one_request_goes_alone_until_the_first_answer() -> None:
    gate = ConcurrencyGate(ceiling=8)
    assert fill(gate) == 1
    assert gate.try_acquire()
    gate.release(None)  # no answer (a cut connection): still nothing known
    assert fill(gate) == 1


def test_the_servers_limit_is_followed_up_to_the_ceiling() -> None:
    gate = ConcurrencyGate(ceiling=8)
    answered(gate, limit(5))
    assert fill(gate) == 5
    answered(gate, limit(12))
    assert fill(gate) == 8  # the ceiling


def test_a_server_without_the_header_gets_the_ceiling() -> None:
    gate = ConcurrencyGate(ceiling=6)
    answered(gate, {})
    assert fill(gate) == 6


def test_a_proxy_error_without_headers_tells_nothing() -> None:
    gate = ConcurrencyGate(ceiling=6)
    answered(gate, {}, status=502)
    assert fill(gate) == 1


def test_a_lowered_limit_is_followed_and_a_raised_one_too() -> None:
    gate = ConcurrencyGate(ceiling=8)
    answered(gate, limit(5))
    assert fill(gate) == 5
    answered(gate, limit(2))
    assert fill(gate) == 2
    answered(gate, limit(4))
    assert fill(gate) == 4


def test_requests_above_a_lowered_limit_drain_before_another_goes() -> None:
    gate = ConcurrencyGate(ceiling=8)
    answered(gate, limit(4))
    for _ in range(4):
        assert gate.try_acquire()
    gate.release(httpx.Response(200, headers=limit(2)))  # 3 still in flight
    assert not gate.try_acquire()
    gate.release(None)
    gate.release(None)  # 1 in flight
    assert gate.try_acquire()
    assert not gate.try_acquire()


def test_a_concurrency_429_halves_the_target_and_answers_raise_it_again() -> None:
    gate = ConcurrencyGate(ceiling=8)
    answered(gate, limit(6))
    assert fill(gate) == 6
    answered(gate, limit(6), status=429)
    gate.refused()
    assert fill(gate) == 3
    for _ in range(30):
        answered(gate, limit(6))
    assert fill(gate) == 6  # additive increase, back to the server's limit, never above


def test_a_burst_of_429s_halves_once() -> None:
    gate = ConcurrencyGate(ceiling=8)
    answered(gate, limit(8))
    for _ in range(4):  # four requests of one burst refused together
        answered(gate, limit(8), status=429)
        gate.refused()
    assert fill(gate) == 4


class Fake:
    def __init__(self, answers: list[Callable[[httpx.Request], httpx.Response]]) -> None:
        self.answers = answers
        self.now = 1_000_000.0
        self.slept: list[float] = []

    def handler(self, request: httpx.Request) -> httpx.Response:
        return self.answers.pop(0)(request)

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    def client(self) -> SentryClient:
        return SentryClient(
            "https://sentry.example.com/",
            TOKEN,
            transport=httpx.MockTransport(self.handler),
            sleep=self.sleep,
            clock=lambda: self.now,
            rng=random.Random(1),
            concurrency=8,
        )


def window(remaining: int, now: float, concurrent: int = 4) -> dict[str, str]:
    return {
        "X-Sentry-Rate-Limit-Limit": "40",
        "X-Sentry-Rate-Limit-Remaining": str(remaining),
        "X-Sentry-Rate-Limit-Reset": str(int(now) + 30),
        "X-Sentry-Rate-Limit-ConcurrentLimit": str(concurrent),
        "X-Sentry-Rate-Limit-ConcurrentRemaining": "0",
    }


def test_the_client_lowers_its_target_on_a_concurrency_429_and_retries_soon() -> None:
    fake = Fake([])
    too_many = (
        "You are attempting to go above the allowed concurrency for this endpoint. "
        "Concurrency limit is 4"
    )
    fake.answers = [
        lambda _r: httpx.Response(200, json=[], headers=window(38, fake.now)),
        lambda _r: httpx.Response(429, json=too_many, headers=window(37, fake.now)),
        lambda _r: httpx.Response(200, json=[], headers=window(36, fake.now)),
    ]
    with fake.client() as client:
        client.get(EVENTS)
        assert fill(client.limiter.gate(family_of(EVENTS))) == 4
        client.get(EVENTS)
        # not the window's reset 30 s ahead: the window has budget left, only a slot was taken
        assert len(fake.slept) == 1
        assert fake.slept[0] < 5
        assert client.stats.rate_limited_waits == 1
        assert fill(client.limiter.gate(family_of(EVENTS))) == 2


def test_a_thread_first_in_line_takes_the_next_slot_before_earlier_waiters() -> None:
    gate = ConcurrencyGate(1)  # one slot before any answer
    gate.acquire()
    order: list[str] = []

    def take(name: str, first: bool) -> None:
        with first_in_line() if first else contextlib.nullcontext():
            gate.acquire()
        order.append(name)
        gate.release(None)

    plain = threading.Thread(target=take, args=("plain", False))
    plain.start()
    while len(gate._cond._waiters) < 1:  # type: ignore[attr-defined]
        time.sleep(0.005)
    ahead = threading.Thread(target=take, args=("ahead", True))
    ahead.start()
    while len(gate._cond._waiters) < 2:  # type: ignore[attr-defined]
        time.sleep(0.005)
    gate.release(None)
    plain.join(10)
    ahead.join(10)
    assert order == ["ahead", "plain"]
