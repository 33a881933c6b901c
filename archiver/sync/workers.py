"""Parsing and normalizing event pages in worker processes, beside the single writer.

Why processes and not the fetch threads: turning a page of 100 full events into rows is pure
CPU work (``json.loads`` of ~1 MB, then about half a millisecond of normalization per event),
and the writer needs the interpreter too (about a millisecond per event of SQLite inserts).
Under one interpreter lock they take turns and a second core sits idle. So a fetch thread
hands the page's raw body to a worker process and gets back ready rows (child rows as tuples
of values already converted for the database). The page travels as files of the run's
spool (:mod:`archiver.sync.spool`): the worker reads the body from one and pickles each event
into another (:class:`SpooledEvent`), which the writer reads back a batch at a time, so
neither the page nor its parsed JSON ever exists in the writer's process.

``workers = 0`` does the same work in the calling thread (no processes): for tests and tiny
archives. The rows are the same either way, since both run :func:`normalize_spooled_page`.
"""

from __future__ import annotations

import ctypes
import functools
import json
import logging
import multiprocessing
import os
import pickle
import re
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Any, BinaryIO

from archiver.errors import InvalidBody
from archiver.normalize import (
    DecodeProblem,
    Scrubber,
    make_scrubber,
    normalize_scrubbed,
    read_shallow,
    storable_raw,
    value_end,
)
from archiver.parentwatch import watch_parent
from archiver.sentry.body import BodyFile
from archiver.storage.encode import EncodedEvent, encode_event
from archiver.storage.rawjson import RawCodec
from archiver.sync.keyset import event_key

log = logging.getLogger("archiver.sync.workers")


@dataclass(frozen=True)
class PageJob:
    """What a worker needs to know to normalize one issue's page (picklable)."""

    project_id: int
    issue_id: int
    dialect: str  # the archive's database: values are converted for it
    detail_always: bool = False
    scrub: tuple[str, ...] = ()
    scrub_key: str | None = field(default=None, repr=False)
    # How raw JSON is compressed (SQLite): the archive's current one, set per page
    raw_codec: RawCodec | None = field(default=None, repr=False)


@dataclass(frozen=True)
class SpooledEvent:
    """An encoded event pickled into the page's rows file (:mod:`archiver.sync.spool`) at
    ``offset``, with what the walk reads of it; the writer reads it back from there.

    As Python objects a page of large events is over twice its JSON's size (every frame and
    breadcrumb a tuple of strings), and pages wait in the writer's queue: in the file they
    cost the process nothing until the writer reads a batch.
    """

    offset: int
    length: int
    issue_id: int | None
    release_version: str | None
    release: dict[str, Any] | None
    # the listed event's id and whole second, for the walk (:func:`archiver.sync.keyset.event_key`)
    event_id: str | None = None
    second: int | None = None

    def read(self, rows: BinaryIO) -> EncodedEvent:
        rows.seek(self.offset)
        blob = rows.read(self.length)
        if len(blob) != self.length:
            raise OSError(f"the spool file ended {self.length - len(blob)} bytes early")
        event: EncodedEvent = pickle.loads(blob)
        return event


class _RowsFile:
    """Pickles each encoded event into an open rows file: the emitter of a spooled page."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._offset = 0

    def __call__(self, event: EncodedEvent) -> SpooledEvent:
        blob = pickle.dumps(event, protocol=pickle.HIGHEST_PROTOCOL)
        self._out.write(blob)
        ref = SpooledEvent(
            self._offset, len(blob), event.issue_id, event.release_version, event.release
        )
        self._offset += len(blob)
        return ref


@dataclass(frozen=True)
class NotAList:
    """A page body that is valid JSON but not a list (an error the caller reports)."""

    json_type: str


def needs_detail(item: Any, detail_always: bool) -> bool:
    """Must this list item be fetched again from the event detail endpoint?

    With ``detail = always`` every item is; otherwise only an object listed without its
    ``entries`` (a server that ignored ``full=true``).
    """
    if detail_always:
        return True
    return isinstance(item, dict) and not isinstance(item.get("entries"), list)


@functools.lru_cache(maxsize=4)
def _scrubber(rules: tuple[str, ...], key: str | None) -> Scrubber | None:
    return make_scrubber(rules, key)


_DECODER = json.JSONDecoder()
_SPACE = re.compile(r"[ \t\n\r]*")


class NotAnArray(Exception):
    pass


class _TooDeep:
    """Stands for a list item too deeply nested to parse: only its text is known."""


_TOO_DEEP = _TooDeep()


def _skip_space(text: str, idx: int) -> int:
    match = _SPACE.match(text, idx)
    return match.end() if match else idx


def array_items(text: str) -> Iterator[tuple[Any, str]]:
    """The items of a JSON array, one at a time, each with its own JSON text (a slice).

    One item's objects exist at a time instead of the whole page's, and each event's raw
    JSON is the server's own text rather than a re-encoding of the parsed value. An item too
    deeply nested to parse comes as ``_TOO_DEEP`` with its text. Raises
    :class:`InvalidBody` on invalid JSON (found at the latest at the closing bracket: a
    truncated page yields items and then fails) and ``NotAnArray`` before the first item.
    """
    idx = _skip_space(text, 0)
    if not text.startswith("[", idx):
        raise NotAnArray
    idx = _skip_space(text, idx + 1)
    if text.startswith("]", idx):
        idx += 1
    else:
        while True:
            item, stop = _decode_item(text, idx)
            yield item, text[idx:stop]
            idx = _skip_space(text, stop)
            if text.startswith(",", idx):
                idx = _skip_space(text, idx + 1)
            elif text.startswith("]", idx):
                idx += 1
                break
            else:
                raise InvalidBody(f"invalid JSON: expected ',' or ']' at character {idx}")
    if _skip_space(text, idx) != len(text):
        raise InvalidBody(f"invalid JSON: extra data at character {idx}")


def _decode_item(text: str, idx: int) -> tuple[Any, int]:
    """The item at ``idx`` and where it ends; ``_TOO_DEEP`` for one nested past the limit."""
    try:
        return _DECODER.raw_decode(text, idx)
    except RecursionError:
        try:
            return _TOO_DEEP, value_end(text, idx)
        except ValueError as exc:
            raise InvalidBody(f"invalid JSON: {exc} at character {idx}") from None
    except ValueError as exc:
        raise InvalidBody(f"invalid JSON: {exc}") from None


def _decode_body(body: bytes) -> tuple[str, str]:
    """The page's text, and the error handler that decoded it.

    ``strict`` for clean UTF-8. ``surrogatepass`` as json.loads reads bytes: lone surrogates
    encoded in UTF-8 are read as such. ``surrogateescape`` when bytes are not UTF-8 at all:
    each is kept as a surrogate escape instead of failing the page, and the event holding
    it is archived with an ``invalid_utf8`` problem (:mod:`archiver.normalize.lenient`).
    """
    encoding = json.detect_encoding(body)
    for errors in ("strict", "surrogatepass", "surrogateescape"):
        try:
            return body.decode(encoding, errors), errors
        except UnicodeDecodeError as exc:
            failure = exc
    raise InvalidBody(f"invalid text: {failure}")


def _as_is(event: EncodedEvent) -> EncodedEvent:
    return event


def normalize_page(
    body: bytes, job: PageJob, emit: Callable[[EncodedEvent], Any] = _as_is
) -> list[Any] | NotAList:
    """A page body to events ready for the writer; items that need a detail request stay raw.

    Events are parsed and normalized one at a time, and each keeps its exact JSON text from
    the page as ``raw_json`` (unless scrubbing rewrote it; lone surrogates and bytes that are
    not UTF-8 written as JSON escapes). An event too deep to parse or normalize is archived
    from what can be read of it. ``emit`` turns each encoded event into what is handed back:
    the :class:`EncodedEvent` itself by default, a :class:`SpooledEvent` for a spooled page
    (:func:`normalize_spooled_page`).
    """
    text, errors = _decode_body(body)
    try:
        return _normalize_items(array_items(text), job, emit, errors)
    except NotAnArray:  # raised before the first item: nothing was emitted yet
        pass
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise InvalidBody(f"invalid JSON: {exc}") from None
    return NotAList(type(value).__name__)


def normalize_spooled_page(
    body_path: str, rows_path: str, job: PageJob
) -> list[SpooledEvent | Any] | NotAList:
    """:func:`normalize_page` from a spooled body to a rows file (both :mod:`archiver.sync.spool`).

    Only the small references travel back to the sync process, never the page: the writer
    reads each event from ``rows_path`` when it writes it.
    """
    with open(body_path, "rb") as f:
        body = f.read()
    with open(rows_path, "wb", buffering=256 * 1024) as out:  # not a write() per event
        return normalize_page(body, job, _RowsFile(out))


def _normalize_items(
    items: Iterable[tuple[Any, str]],
    job: PageJob,
    emit: Callable[[EncodedEvent], Any],
    errors: str = "strict",
) -> list[Any]:
    """Each item normalized and emitted (or left raw for a detail request).

    ``errors``: how the page was decoded (:func:`_decode_body`); unless strictly, each item's
    text is made storable first. An item too deep to parse, or to normalize (any recursive
    walk of its value: normalization, scrubbing, encoding, pickling), is archived from its
    shallow members instead (:func:`archiver.normalize.read_shallow`).
    """
    scrubber = _scrubber(job.scrub, job.scrub_key)
    out: list[Any] = []
    for item, text in items:
        if item is not _TOO_DEEP and needs_detail(item, job.detail_always):
            out.append(item)
            continue
        raw, decoded = (
            (text, []) if errors == "strict" else storable_raw(text, errors == "surrogateescape")
        )
        event = None
        if item is not _TOO_DEEP:
            try:
                event = _normalized(scrubber, item, raw, decoded, job, emit)
            except RecursionError:
                pass
        if event is None:
            shallow, why = read_shallow(raw)
            event = _normalized(scrubber, shallow, raw, [*decoded, *why], job, emit)
        out.append(event)
    return out


def _normalized(
    scrubber: Scrubber | None,
    item: Any,
    raw: str,
    decoded: list[DecodeProblem],
    job: PageJob,
    emit: Callable[[EncodedEvent], Any],
) -> Any:
    ev = normalize_scrubbed(
        scrubber,
        item,
        project_id=job.project_id,
        issue_id=job.issue_id,
        has_detail=False,
        raw=raw,
        decoded=decoded,
    )
    return _with_key(emit(encode_event(ev, job.dialect, codec=job.raw_codec)), item)


def _with_key(ref: Any, item: Any) -> Any:
    """A spooled event carries its listed id and second back to the walk, which moves on them."""
    if not isinstance(ref, SpooledEvent):
        return ref
    key = event_key(item)
    return replace(ref, event_id=key.event_id, second=key.second)


def _worker_init(parent: int) -> None:
    # A terminal's Ctrl-C and systemd's SIGTERM reach the whole process group: the parent
    # decides how to stop (finish the page, commit, shut the pool down); a worker dying on
    # its own would only turn pages in flight into errors.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    watch_parent(parent)


def _context() -> Any:
    methods: Sequence[str] = multiprocessing.get_all_start_methods()
    # forkserver: workers start from a clean single-threaded process, never a fork of the
    # threaded parent with open database and HTTP connections.
    method = "forkserver" if "forkserver" in methods else "spawn"
    ctx = multiprocessing.get_context(method)
    if method == "forkserver":
        ctx.set_forkserver_preload(["archiver.sync.workers"])
    return ctx


def tune_allocator() -> bool:
    """Make glibc's malloc hand freed memory back instead of hoarding it (True if applied).

    The writer's process holds pages of large strings (events' raw JSON, tens of KB each,
    page bodies of several MB) that several threads allocate and free. glibc's defaults give
    each thread its own arena and raise the mmap threshold after each large free, so those
    blocks end up scattered over heaps that can never shrink (the README's performance
    section has the measured effect; environment variables set before start-up help a little
    more, but a command cannot set them for itself). Elsewhere (musl, macOS) this does nothing.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_mmap_threshold, m_arena_max = -3, -8
    return bool(mallopt(m_arena_max, 2)) and bool(mallopt(m_mmap_threshold, 64 * 1024))


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        trim: Callable[[int], int] = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None
    return trim


def release_free_memory() -> bool:
    """Hand the free pages inside glibc's heaps back to the system (True on glibc).

    The writer's batches (raw JSON of tens of KB an event, row tuples) are freed after each
    page, but among them live a few objects that stay (SQLite's page cache, SQLAlchemy's
    caches), so the heap cannot shrink from its top and the freed pages stay resident: the
    sync process's memory crept up page after page through a long run. ``malloc_trim``
    returns every whole free page, wherever it is. Elsewhere (musl, macOS) this does nothing.
    """
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)  # 1 if it released something, 0 if there was nothing to release
    return True


class PageNormalizer:
    """Runs :func:`normalize_spooled_page` in ``workers`` processes (0: in the calling thread).

    Thread-safe: fetch threads call it concurrently and each waits for its own page. If a
    worker dies (the kernel's OOM killer, a crash in a C library), the pool is unusable:
    the run goes on normalizing in its own process, with a warning, instead of failing
    every remaining issue. The page in hand is normalized again, so nothing is lost.
    """

    def __init__(
        self, workers: int, raw_codec: Callable[[], RawCodec | None] | None = None
    ) -> None:
        self.workers = workers
        self._raw_codec = raw_codec  # the store's: a dictionary may be trained mid-run
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()
        if workers > 0:
            self._pool = ProcessPoolExecutor(
                max_workers=workers,
                mp_context=_context(),
                initializer=_worker_init,
                initargs=(os.getpid(),),
            )

    def spooled(
        self, body: BodyFile, rows_path: str, job: PageJob
    ) -> list[SpooledEvent | Any] | NotAList:
        """Normalize a spooled page body into ``rows_path``; see :func:`normalize_spooled_page`."""
        wait = self.submit(body.path, rows_path, job)
        if wait is None:  # no pool (any more): here
            return normalize_spooled_page(body.path, rows_path, self._with_codec(job))
        return wait()

    def _with_codec(self, job: PageJob) -> PageJob:
        """``job`` with the archive's raw JSON codec as it is now."""
        if self._raw_codec is None:
            return job
        return replace(job, raw_codec=self._raw_codec())

    def submit(
        self, body_path: str, rows_path: str, job: PageJob
    ) -> Callable[[], list[SpooledEvent | Any] | NotAList] | None:
        """Start normalizing a page in a worker: the wait for its result (None: no pool)."""
        job = self._with_codec(job)
        pool = self._pool
        if pool is None:
            return None
        try:
            future = pool.submit(normalize_spooled_page, body_path, rows_path, job)
        except BrokenProcessPool as exc:
            self._give_up_pool(pool, exc)
            return None

        def result() -> list[SpooledEvent | Any] | NotAList:
            try:
                return future.result()
            except BrokenProcessPool as exc:
                self._give_up_pool(pool, exc)
                return normalize_spooled_page(body_path, rows_path, job)

        return result

    def _give_up_pool(self, pool: ProcessPoolExecutor, exc: BaseException) -> None:
        with self._lock:
            if self._pool is not pool:
                return  # another thread did it already
            self._pool = None
        log.warning(
            "a page worker process died (%s); normalizing in the main process for the "
            "rest of this run",
            exc,
        )
        pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> PageNormalizer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
