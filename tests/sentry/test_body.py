"""What :func:`archiver.sentry.body.receive` records of an answer streamed to a file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx

from archiver.sentry.body import BodyFile, receive


def test_a_streamed_body_records_the_servers_time_to_answer_not_the_bodys(
    tmp_path: Path,
) -> None:
    """The clock is read as the request leaves and when its headers are in; reading the body
    afterwards (here: each chunk moves the clock 10 s on) is not the server's waiting time."""
    now = [100.0]

    def clock() -> float:
        return now[0]

    def answer(request: httpx.Request) -> httpx.Response:
        now[0] += 0.4  # the server thinks
        return httpx.Response(200, content=_Chunks([b"[", b"]"], now))

    with httpx.Client(transport=httpx.MockTransport(answer), base_url="http://sentry") as http:
        _, body = receive(
            http, http.build_request("GET", "/x"), str(tmp_path / "body"), clock=clock
        )
    assert isinstance(body, BodyFile)
    assert (body.size, (tmp_path / "body").read_bytes()) == (2, b"[]")
    assert abs(body.waited - 0.4) < 1e-9
    assert now[0] > 120  # the body's chunks were read after the headers


class _Chunks(httpx.SyncByteStream):
    def __init__(self, chunks: list[bytes], now: list[float]) -> None:
        self.chunks = chunks
        self.now = now

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.chunks:
            self.now[0] += 10.0
            yield chunk
