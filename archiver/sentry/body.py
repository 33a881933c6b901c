"""A response's body: read whole into memory, or streamed into a file, and Sentry's error text.

Why a body is streamed out of httpx's response instead of read into it: httpx's response and
its stream refer to each other, so a body read into it is freed only by the cyclic garbage
collector, and pages of several MB outlived their use by many pages. Streamed out and wrapped
in a plain response, each body is freed as soon as nothing uses it. Given a file path, a 2xx
body goes into that file chunk by chunk and is never held whole (the sync engine's spool);
error bodies are always read into memory, for their message.
"""

from __future__ import annotations

import html
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx


@dataclass(frozen=True)
class BodyFile:
    """A response body that was streamed to a file instead of memory.

    ``waited`` is how long the server took to answer: from sending the request to its
    headers, without the time spent waiting for a free slot before it or reading the body
    after them (the sync reads a page ahead only when the server is slow, see
    :mod:`archiver.sync.prefetch`).
    """

    path: str
    size: int
    waited: float = 0.0


def receive(
    http: httpx.Client,
    request: httpx.Request,
    body_path: str | None = None,
    check: Callable[[], None] = lambda: None,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[httpx.Response, bytes | BodyFile]:
    """Send ``request`` and read its answer whole: a response holding no body, and the body.

    The response keeps status and headers only (the content headers removed: the body is
    decoded already), so the caller decides how long the body lives. ``check`` is called
    once the headers are in and after each chunk of the body: it raises to abandon an answer
    that takes too long as a whole (httpx's timeout bounds each read, not the sum).
    """
    sent = clock()
    streamed = http.send(request, stream=True)
    waited = clock() - sent
    body: bytes | BodyFile
    try:
        check()
        if body_path is not None and 200 <= streamed.status_code < 300:
            size = 0
            with open(body_path, "wb") as out:
                for chunk in streamed.iter_bytes():
                    check()
                    out.write(chunk)
                    size += len(chunk)
            body = BodyFile(body_path, size, waited)
            content = b""
        else:
            chunks = []
            for chunk in streamed.iter_bytes():
                check()
                chunks.append(chunk)
            body = content = b"".join(chunks)
    finally:
        streamed.close()
    headers = streamed.headers.copy()
    for decoded in ("content-encoding", "content-length"):
        headers.pop(decoded, None)
    response = httpx.Response(
        streamed.status_code, headers=headers, content=content, request=request
    )
    return response, body


def size_of(body: bytes | BodyFile) -> int:
    return body.size if isinstance(body, BodyFile) else len(body)


_HTML_START = re.compile(r"\s*(<!--.*?-->\s*)*<(!doctype\s+html|html)[\s>]", re.I | re.S)
_HTML_TITLE = re.compile(r"<title[^>]*>(.*?)</title\s*>", re.I | re.S)
_HTML_HEADING = re.compile(r"<h1[^>]*>(.*?)</h1\s*>", re.I | re.S)
_HTML_TAG = re.compile(r"<[^>]*>")


def html_title(text: str) -> str | None:
    """If ``text`` is an HTML page, what to say of it: its ``<title>`` (or ``<h1>``); else None.

    A proxy in front of Sentry (nginx, a load balancer, Cloudflare) answers 502/503 with an
    HTML page of a few KB: pasted whole into a log line, ``runs.errors`` or ``status`` it buries
    the one useful fact (the status, which the message already carries) under markup.
    """
    if not _HTML_START.match(text[:1000]):
        return None
    found = _HTML_TITLE.search(text[:20000]) or _HTML_HEADING.search(text[:20000])
    title = " ".join(_HTML_TAG.sub(" ", found.group(1)).split())[:120] if found else ""
    return f'HTML page "{html.unescape(title)}"' if title else "HTML page without a title"


def detail_of(response: httpx.Response) -> str:
    """Sentry's error text: ``{"detail": ...}``, a bare JSON string, or the body's start.

    An HTML page (a proxy's 502) is reduced to its title (:func:`html_title`); other text to
    its first 200 characters on one line.
    """
    try:
        body = response.json()
    except ValueError:
        text = response.text
        return html_title(text) or " ".join(text[:200].split())
    if isinstance(body, dict):
        detail = body.get("detail")
        return detail if isinstance(detail, str) else json.dumps(body)[:200]
    if isinstance(body, str):
        return body
    return json.dumps(body)[:200]
