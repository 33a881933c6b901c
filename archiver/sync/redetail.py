"""Asking again for the details of events kept as listed, so a recovered Sentry replaces them.

An event whose detail answer was unusable is archived from its listed copy with a
``detail_unusable`` problem (:mod:`archiver.sync.details`). The walks are incremental: they
never list that event again, so without this the poorer copy would stay for good, even once
Sentry answers again. So every run, after its walks, asks again for the details of up to
:data:`PER_RUN` such events of the projects it syncs, found from ``event_problems`` and
``events`` alone (the problem row counts the attempts). A usable answer goes through the
ordinary write path: the detail outranks the listed copy (:func:`archiver.storage.encode.rank`),
so it replaces it whole, problems included, and the ``detail_unusable`` row goes with it. An
answer still unusable leaves the event as it is, counts an attempt, and a later run asks again.

Which events: half of the budget goes to the oldest (the nearest to leaving Sentry's
retention, after which no answer ever comes), the rest to events taken in event-id order from
a random point, so that the oldest cannot take the whole budget of every run.

Giving up: each answer still unusable adds one to the problem row's ``attempts``
(``event_problems.attempts``, migration 0009). An event asked :data:`MAX_ATTEMPTS` times
(expired, or whose body Sentry lost: 404 for good) is asked no more: it stays in the archive
as listed, its ``detail_unusable`` row saying so, and takes no run's budget. A failure of the
way to the server (connection, timeout, 5xx, 429) is no answer and counts nothing.
"""

from __future__ import annotations

import bisect
import datetime as dt
import logging
import random
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from sqlalchemy import Connection, func, select, update

from archiver.errors import ApiError, AuthError, InterruptedRun
from archiver.normalize import Scrubber, normalize_scrubbed
from archiver.sentry.client import SentryClient
from archiver.storage.base import chunks
from archiver.storage.conflicts import retry_conflicts
from archiver.storage.encode import EncodedEvent, encode_event
from archiver.storage.models import CHILD_TABLES, EVENTS, ISSUES
from archiver.storage.plan import WriteResult
from archiver.storage.store import Store
from archiver.sync.details import PROBLEM, ask_detail
from archiver.sync.report import SyncReport

log = logging.getLogger("archiver.sync.redetail")

PER_RUN = 200
"""Events asked again per run, at most: at Sentry's 15 issue event details a second, a run
spends some 15 s on them when every one is asked."""
WRITE_BATCH = 50
"""Recovered events written per transaction."""
MAX_ATTEMPTS = 5
"""Unusable answers after which an event's detail is asked no more (see the module)."""
_NEVER = dt.datetime.max.replace(tzinfo=dt.timezone.utc)

Guard = Callable[[Connection], None]
PROBLEMS = CHILD_TABLES["event_problems"]


@dataclass(frozen=True)
class Kept:
    """An event kept as listed: where to ask for its detail, and its age."""

    pk: int
    project_id: int
    event_id: str
    issue_id: int  # the issue it was merged into, if it was
    date_created: dt.datetime | None


@dataclass
class Context:
    """What the run's passes need: its client, archive, settings and report."""

    client: SentryClient
    store: Store
    org: str
    scrubber: Scrubber | None
    concurrency: int
    report: SyncReport
    started: dt.datetime  # the run's start: events it kept as listed itself are not asked
    guard: Guard | None = None
    # the events with the problem when the run's first pass began (:func:`problem_events`)
    candidates: list[int] | None = None


def problem_events(conn: Connection) -> list[int]:
    """The primary keys of every event with a ``detail_unusable`` problem not given up.

    ``event_problems`` has no index on ``problem``: this reads it whole, so a run does it
    once, at its first pass (on PostgreSQL a run makes a pass per project it leases). Later
    passes need no fresher list: only events written before the run are asked again, and an
    event written since is no longer one (:func:`kept_as_listed` checks).
    """
    query = (
        select(PROBLEMS.c.event_pk)
        .where(PROBLEMS.c.problem == PROBLEM, PROBLEMS.c.attempts < MAX_ATTEMPTS)
        .distinct()
    )
    return sorted(int(pk) for (pk,) in conn.execute(query))


def kept_counts(conn: Connection) -> tuple[int, int]:
    """How many events are kept as listed (a ``detail_unusable`` problem), and how many of
    them are given up (asked :data:`MAX_ATTEMPTS` times): what ``status`` shows."""
    given_up = func.count(PROBLEMS.c.event_pk.distinct()).filter(
        PROBLEMS.c.attempts >= MAX_ATTEMPTS
    )
    query = select(func.count(PROBLEMS.c.event_pk.distinct()), given_up).where(
        PROBLEMS.c.problem == PROBLEM
    )
    kept, gone = conn.execute(query).one()
    return int(kept), int(gone)


def kept_as_listed(
    conn: Connection, pks: Sequence[int], project_ids: Sequence[int], before: dt.datetime
) -> list[Kept]:
    """The events among ``pks`` of these projects last written before ``before`` (the run's
    start: a walk of this run that kept one as listed has just asked), of issues not gone (a
    deleted issue answers 404 for every event).

    Read by primary key alone, and filtered here: with any other condition in the query,
    PostgreSQL's planner (on tables not analyzed since a big load) chose to read every event
    of the projects, seconds on an archive of 100,000 events.
    """
    projects = set(project_ids)
    rows: list[tuple[int, int, str, int, dt.datetime | None]] = []
    for chunk in chunks(pks):
        query = select(
            EVENTS.c.id,
            EVENTS.c.project_id,
            EVENTS.c.event_id,
            EVENTS.c.issue_id,
            EVENTS.c.date_created,
            EVENTS.c.updated_at,
        ).where(EVENTS.c.id.in_(chunk))
        rows.extend(
            (pk, pid, eid, iid, created)
            for pk, pid, eid, iid, created, updated in conn.execute(query)
            if pid in projects and iid is not None and updated < before
        )
    issues: dict[int, int] = {}  # issue -> where to ask (its merge target, if any)
    wanted = sorted({iid for *_, iid, _ in rows})
    for chunk in chunks(wanted):
        query = select(ISSUES.c.id, ISSUES.c.merged_into_id, ISSUES.c.gone_at).where(
            ISSUES.c.id.in_(chunk)
        )
        for row in conn.execute(query):
            if row.gone_at is None:
                issues[int(row.id)] = int(row.merged_into_id or row.id)
    return [
        Kept(int(pk), int(pid), str(eid), issues[iid], created)
        for pk, pid, eid, iid, created in rows
        if iid in issues
    ]


def choose(kept: Sequence[Kept], limit: int, pivot: str) -> list[Kept]:
    """Up to ``limit`` of ``kept``: the oldest half, then the others in event-id order from
    ``pivot`` on, wrapping around (see the module for why not all the oldest)."""
    if limit <= 0:
        return []

    def age(k: Kept) -> tuple[bool, dt.datetime, int]:
        return (k.date_created is None, k.date_created or _NEVER, k.pk)

    chosen = {k.pk: k for k in sorted(kept, key=age)[: (limit + 1) // 2]}
    by_id = sorted(kept, key=lambda k: (k.event_id, k.pk))
    at = bisect.bisect_left([k.event_id for k in by_id], pivot)
    for k in by_id[at:] + by_id[:at]:
        if len(chosen) >= limit:
            break
        chosen.setdefault(k.pk, k)
    return list(chosen.values())


def retry_details(ctx: Context, project_ids: Sequence[int], stop: threading.Event) -> None:
    """Ask again for the details of events kept as listed in these projects (within what is
    left of the run's :data:`PER_RUN`); write those now usable. ``stop`` ends the pass."""
    report = ctx.report
    left = PER_RUN - report.details_retried
    if left <= 0 or not project_ids:
        return
    with ctx.store.engine.connect() as conn:
        if ctx.candidates is None:
            ctx.candidates = problem_events(conn)
        if not ctx.candidates:
            return
        kept = kept_as_listed(conn, ctx.candidates, project_ids, ctx.started)
    todo = choose(kept, left, f"{random.getrandbits(128):032x}")
    if not todo:
        return
    log.info("asking again for the details of %d event(s) kept as listed", len(todo))
    batch: list[EncodedEvent] = []
    unusable: list[int] = []
    for asked in _fetched(ctx, todo, stop):
        report.details_retried += 1  # here, not in the fetch threads: one counter, one thread
        if asked.event is not None:
            batch.append(asked.event)
        elif asked.answered:
            unusable.append(asked.kept.pk)
        if len(batch) + len(unusable) >= WRITE_BATCH:
            _flush(ctx, batch, unusable)
            batch, unusable = [], []
    _flush(ctx, batch, unusable)


@dataclass(frozen=True)
class Asked:
    """What asking again for an event's detail brought: the event, normalized and encoded, if
    the answer was usable; ``answered``: Sentry answered (a failed way to it is no answer)."""

    kept: Kept
    event: EncodedEvent | None
    answered: bool


def _fetched(ctx: Context, todo: list[Kept], stop: threading.Event) -> Iterator[Asked]:
    """What each event's detail request brought, in order."""
    dialect = ctx.store.engine.dialect.name

    def fetch(kept: Kept) -> Asked:
        if stop.is_set():
            raise InterruptedRun("stopped while asking again for event details")
        answered = True
        try:
            with ctx.client.stopping(stop):  # a project handed over: its waits end too
                detail, why = ask_detail(
                    ctx.client, ctx.org, kept.issue_id, kept.event_id, kept.event_id
                )
        except AuthError as exc:
            if exc.status != 403:
                raise  # the token itself is refused: nothing else can work
            detail, why = None, str(exc)
        except ApiError as exc:  # the way to the server failed: the next run asks again
            detail, why, answered = None, str(exc), False
        if detail is None:
            log.info("issue %s, event %s: still unusable: %s", kept.issue_id, kept.event_id, why)
            return Asked(kept, None, answered)
        normalized = normalize_scrubbed(
            ctx.scrubber,
            detail,
            project_id=kept.project_id,
            issue_id=kept.issue_id,
            has_detail=True,
            decoded=[],
        )
        return Asked(kept, encode_event(normalized, dialect), True)

    workers = max(1, min(ctx.concurrency, len(todo)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="redetail") as pool:
        futures = [pool.submit(fetch, kept) for kept in todo]
        try:
            for future in futures:
                yield future.result()
        finally:
            for future in futures:
                future.cancel()


def _flush(ctx: Context, events: list[EncodedEvent], unusable: list[int]) -> None:
    """Write the recovered ``events``; count an attempt for each of the ``unusable``."""
    if events:
        _write(ctx, events)
    if unusable:
        _count_attempts(ctx, unusable)


def _count_attempts(ctx: Context, pks: list[int]) -> None:
    """One more unusable answer for each of these events (their ``detail_unusable`` rows);
    those that reach :data:`MAX_ATTEMPTS` are given up (the report counts them)."""
    mine = (PROBLEMS.c.event_pk.in_(pks), PROBLEMS.c.problem == PROBLEM)

    def once() -> int:
        with ctx.store.transaction(wait_for_disk=False) as conn:
            conn.execute(update(PROBLEMS).where(*mine).values(attempts=PROBLEMS.c.attempts + 1))
            done = select(func.count(PROBLEMS.c.event_pk.distinct())).where(
                *mine, PROBLEMS.c.attempts >= MAX_ATTEMPTS
            )
            given_up = int(conn.execute(done).scalar_one())
            if ctx.guard is not None:
                ctx.guard(conn)
        return given_up

    given_up = retry_conflicts(once)
    if given_up:
        log.warning(
            "%d event(s) kept as listed: detail still unusable after %d attempts, "
            "no longer asked (event_problems.attempts)",
            given_up,
            MAX_ATTEMPTS,
        )
    ctx.report.details_given_up += given_up


def _write(ctx: Context, events: list[EncodedEvent]) -> None:
    """Write recovered details through the ordinary path (a richer copy replaces a poorer)."""
    store = ctx.store
    versions = {ev.release_version for ev in events if ev.release is not None}
    known = store.release_versions() if versions else set()
    releases = {
        str(ev.release_version): ev.release
        for ev in events
        if ev.release is not None and ev.release_version not in known
    }

    def once() -> WriteResult:
        with store.transaction(wait_for_disk=False) as conn:
            if releases:  # by version, as the walks' writer upserts them
                store.upsert_releases(conn, [releases[v] for v in sorted(releases)])
            result = store.write_events(conn, events)
            if ctx.guard is not None:
                ctx.guard(conn)
        return result

    result = retry_conflicts(once)
    ctx.report.add(result)
    ctx.report.details_recovered += result.inserted + result.updated
    ctx.report.releases += len(releases)
