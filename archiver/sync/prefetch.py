"""Reading a walk's next page while a worker normalizes the last one (see :mod:`.walk`).

Why: one issue's walk is a chain, each request asked with the state the previous page left.
The state needs only each listed event's id and second, not the normalized rows, so the walk
reads those from the page body itself, asks the next page at once, and waits for the worker
while that request is in flight. The biggest issue's chain is what bounds a sync's time.

The keys read here must be exactly the ones the worker gives back
(:func:`archiver.sync.keyset.event_key` of the same parsed item): the walk checks them against
the worker's when the page is finished, and any page whose body is not a plain list of
events the worker normalizes itself (invalid JSON, too deep, not a list, an item that is not
an object or that needs a detail request) is read the sequential way instead.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import Any, TypeVar

from archiver.sync import keyset
from archiver.sync.workers import NotAnArray, array_items, needs_detail

T = TypeVar("T")

# Reading ahead parses each page a second time in the sync process: worth it where the
# answer's wait is what bounds a walk (a real Sentry answers in a fraction of a second or
# more), not against a server that answers at once, where the CPU is the bound (the README's
# issue 17 figures).
READ_AHEAD_AFTER_SECONDS = 0.25

# One page at a time in the whole process: the parse holds the interpreter lock anyway, so
# walk threads reading their pages together only held all of their pages' text at once.
_ONE_PAGE = threading.Lock()


def worth_reading_ahead(waited: float) -> bool:
    """Whether a page the server took ``waited`` seconds to answer is read ahead.

    The server's own time (:attr:`~archiver.sentry.body.BodyFile.waited`), not the time since
    the walk asked: that includes waiting for a free request slot and, on a loaded machine,
    for the interpreter, and made pages from a fast server count as slow.
    """
    return waited >= READ_AHEAD_AFTER_SECONDS


def read_keys(body_path: str, detail_always: bool) -> list[keyset.Key] | None:
    """The listed events' keys, or None when the page must go the sequential way.

    The events are parsed one at a time: as objects a page is several times its JSON's size,
    and against a slow server every walk thread reads every page ahead, so parsing it whole
    made each of them hold a page of objects at once in the sync process (the README's
    issue-17 memory figures). The keys are the same as ``json.loads`` of the whole body would
    give: the same decoding and decoder, and anything that it would refuse is None.
    """
    with _ONE_PAGE:
        return _read_keys(body_path, detail_always)


def _read_keys(body_path: str, detail_always: bool) -> list[keyset.Key] | None:
    with open(body_path, "rb") as f:
        body = f.read()
    keys: list[keyset.Key] = []
    try:
        text = body.decode(json.detect_encoding(body), "surrogatepass")  # as json.loads does
        del body
        for item in _array_items(text):
            if not isinstance(item, dict) or needs_detail(item, detail_always):
                return None
            keys.append(keyset.event_key(item))
    except (ValueError, RecursionError, NotAnArray):  # UnicodeDecodeError and InvalidBody too
        return None  # the worker's verdict (and the client's retry) decides
    return keys


def _array_items(text: str) -> Iterator[Any]:
    """The items of the JSON array ``text`` as the worker reads them, one at a time; an
    exception (after the items before it) where ``text`` is not exactly one JSON array."""
    for item, _text in array_items(text):
        yield item


def in_thread(fn: Callable[[], T], name: str) -> Future[T]:
    """Run ``fn`` in a thread of its own; its future holds the result or the exception."""
    future: Future[T] = Future()

    def run() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(fn())
        except BaseException as exc:  # handed to whoever waits for the future
            future.set_exception(exc)

    threading.Thread(target=run, daemon=True, name=name).start()
    return future
