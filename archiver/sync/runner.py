"""Running a sync as a command: wiring, signals, progress, summary, exit code.

Kept apart from :mod:`archiver.sync.engine` (which knows nothing of terminals or signals) so the
scheduler and the demo run exactly the same code as ``sentry-archiver sync``.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from types import FrameType
from typing import Any

from archiver import __version__
from archiver.config import Settings
from archiver.errors import ArchiverError, ExitCode, InterruptedRun
from archiver.output import (
    SUMMARY_LOGGER,
    TerminalDisplay,
    format_rate,
    setup_logging,
)
from archiver.sentry.client import SentryClient
from archiver.storage import db
from archiver.storage import lock as run_lock
from archiver.storage.apart import upgrade_apart
from archiver.storage.early import drop_early
from archiver.storage.store import Store
from archiver.sync import interrupts
from archiver.sync.engine import Syncer
from archiver.sync.prestart import start_fork_server
from archiver.sync.report import Progress, SyncReport
from archiver.sync.workers import tune_allocator

log = logging.getLogger("archiver.run")
# The run's last line; archiver.output lets it through at info even when the rest logs warnings.
summary_log = logging.getLogger(SUMMARY_LOGGER)

# The words the ``runs`` table records, so a log line and ``status`` say the same thing.
RUN_OUTCOMES = {
    ExitCode.OK: "success",
    ExitCode.PARTIAL: "partial",
    ExitCode.INTERRUPTED: "interrupted",
}


@dataclass
class SyncOutcome:
    report: SyncReport
    exit_code: ExitCode
    requests: int
    retries: int
    seconds: float


@contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGINT/SIGTERM ask the run to stop at the next page boundary.

    A second SIGINT (Ctrl-C pressed again) stops at once: the pages fetched but not yet
    committed are dropped (the next run fetches them again). It is raised as
    KeyboardInterrupt so that no ``except Exception`` on the way can swallow it, while the
    writer runs at its next look at the inbox (:mod:`archiver.sync.interrupts` says why); the
    engine records the run as interrupted and :func:`run_sync` turns it into
    :class:`InterruptedRun` (exit 130), the same end as a single signal.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _handler(signum: int, _frame: FrameType | None) -> None:
        if stop.is_set() and signum == signal.SIGINT:
            log.warning("signal SIGINT again: stopping now, pages not committed are dropped")
            interrupts.interrupt()
            return
        stop.set()  # before the log line: a second signal may arrive while it is written
        log.warning("signal %s: stopping after the current page", signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, _handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def make_client(settings: Settings, stop: threading.Event | None = None) -> SentryClient:
    """The run's client; with ``stop``, its waits (backoff, rate limits) end on a stop request."""
    return SentryClient(
        settings.url,
        settings.token,
        timeout=settings.timeout,
        max_retries=settings.max_retries,
        user_agent=f"sentry-archiver/{__version__}",
        max_connections=max(4, settings.concurrency * 2),
        stop=stop,
        concurrency=settings.concurrency,
    )


def execute_sync(
    settings: Settings,
    *,
    stop: threading.Event | None = None,
    on_progress: Callable[[SyncReport, Progress], None] | None = None,
    on_client: Callable[[SentryClient], None] | None = None,
) -> SyncOutcome:
    """Run one sync; raises ArchiverError subclasses for failures that end the run.

    ``on_client`` is given the run's client once made (the display reads its retry count).
    """
    settings.require_remote()
    # its imports overlap this process's start and discovery (already running when the
    # `sync` command started it: then this does nothing; the scheduler's runs start it here)
    start_fork_server(settings.workers)
    stop = stop or threading.Event()
    started = time.monotonic()
    engine = db.make_engine(settings.db)
    try:
        with make_client(settings, stop) as client, ExitStack() as held:
            if on_client is not None:
                on_client(client)
            store = Store(engine)
            syncer = Syncer(client, store, settings, stop=stop, on_progress=on_progress)

            locks: list[run_lock.HeldLock] = []

            def prepare() -> None:
                # creates the archive on first use (in a child process: Alembic stays out of
                # this one's memory; begun as the `sync` command started, committed now);
                # nothing to do when current
                upgrade_apart(engine)
                # one writer at a time (archiver.storage.lock); held until the run has been recorded
                # on PostgreSQL shared with other syncs, which split the work by project leases
                lock = run_lock.acquire(engine, "sync", on_lost=stop.set, shared=True)
                locks.append(held.enter_context(lock))
                syncer.run_lock = locks[0]  # each page's transaction checks it is still ours

            try:
                report = syncer.run(prepare=prepare)
            except InterruptedRun:
                if locks and locks[0].lost:  # the stop came from the lock, not from a signal
                    raise locks[0].lost_error() from None
                raise
            if locks and locks[0].lost:
                raise locks[0].lost_error()
            if report.interrupted:
                code = ExitCode.INTERRUPTED
            elif report.failures:
                code = ExitCode.PARTIAL
            else:
                code = ExitCode.OK
            return SyncOutcome(
                report,
                code,
                client.stats.requests,
                client.stats.retries,
                time.monotonic() - started,
            )
    finally:
        engine.dispose()
        drop_early()  # begun as the command started, never collected: rolled back


SUMMARY_NAMES = 5  # events named on the summary's line of events kept as listed


def summary_lines(outcome: SyncOutcome) -> list[str]:
    r = outcome.report
    lines = [
        f"projects {r.projects}, issues walked {r.issues_walked}, events new {r.events_new}, "
        f"updated {r.events_updated}, unchanged {r.events_unchanged}, releases {r.releases}",
        f"requests {outcome.requests} (retries {outcome.retries}), "
        f"{outcome.seconds:.1f}s, {format_rate(r.events_new + r.events_updated, outcome.seconds)}",
    ]
    if r.events_hollow_ignored:
        lines.append(
            f"hollow copies ignored (complete archived events kept): {r.events_hollow_ignored}"
        )
    if r.details_unusable:
        named = ", ".join(r.details_unusable[:SUMMARY_NAMES])
        more = len(r.details_unusable) - SUMMARY_NAMES
        lines.append(
            f"events kept as listed (detail unusable, see event_problems): "
            f"{len(r.details_unusable)}: {named}" + (f" and {more} more" if more > 0 else "")
        )
    if r.details_retried:
        lines.append(
            f"events kept as listed by earlier runs, detail asked again: {r.details_retried}, "
            f"recovered {r.details_recovered}"
            + (
                f", given up {r.details_given_up} (unusable every time: kept as listed)"
                if r.details_given_up
                else ""
            )
        )
    if r.gone:
        lines.append(f"issues gone (404, archive kept): {', '.join(map(str, r.gone))}")
    if r.merged:
        lines.append("issues merged: " + ", ".join(f"{a}->{b}" for a, b in r.merged.items()))
    if r.handed_over:
        lines.append(
            "projects handed over to another process: "
            f"{', '.join(r.handed_over)} (it took their leases over and finishes them)"
        )
    for failure in r.failures:
        issue = failure.get("issue_id")
        where = f"issue {issue}" if issue is not None else f"project {failure.get('project')}"
        lines.append(f"FAILED {where}: {failure['error']}")
    if r.interrupted:
        lines.append("interrupted: progress is saved; run the same command again to resume")
    return lines


def run_sync(
    settings: Settings, *, quiet: bool = False, verbosity: int = 0, log_format: str = "text"
) -> SyncOutcome:
    """The ``sync`` command: logging, progress line, signals, summary."""
    tune_allocator()
    display = TerminalDisplay(enabled=None if not quiet and log_format == "text" else False)
    setup_logging(
        log_format=log_format,
        verbosity=verbosity,
        quiet=quiet,
        secrets=[settings.token, settings.scrub_key],
        console=display.console,
    )
    stop = threading.Event()
    clients: list[SentryClient] = []

    def on_progress(report: SyncReport, progress: Progress) -> None:
        display.update(
            projects=report.projects,
            issues_done=progress.issues_done,
            issues_total=progress.issues_total,
            events=progress.events,
            seconds=time.monotonic() - progress.started,
            retries=clients[0].stats.retries if clients else 0,
        )

    try:
        with stop_on_signals(stop), display:
            try:
                outcome = execute_sync(
                    settings, stop=stop, on_progress=on_progress, on_client=clients.append
                )
            except KeyboardInterrupt:  # a second Ctrl-C: the run is recorded as interrupted
                raise InterruptedRun(
                    "stopped at once on a second Ctrl-C; progress up to the last committed "
                    "page is saved"
                ) from None
    except InterruptedRun as exc:
        click_echo_err(f"interrupted: {exc}")
        exc.logged = True  # said once: the CLI must not repeat it as an "error:" line
        raise
    except ArchiverError as exc:
        if log_format == "json":
            # a log shipper reads JSON lines only: the fatal error must be one as well
            summary_log.error(
                str(exc),
                extra={"outcome": "failed", "counts": {"exit_code": int(exc.exit_code)}},
            )
            exc.logged = True
        raise
    lines = summary_lines(outcome)
    if log_format == "json":
        # info, not warning: alert rules fire on warning, and a clean run must not page anyone
        level = logging.INFO if outcome.exit_code == ExitCode.OK else logging.WARNING
        summary_log.log(
            level,
            "sync finished",
            extra={
                "outcome": RUN_OUTCOMES.get(outcome.exit_code, "failed"),
                "counts": counts(outcome),
            },
        )
    elif not quiet or outcome.exit_code != ExitCode.OK:
        stream = sys.stdout if outcome.exit_code == ExitCode.OK else sys.stderr
        for line in lines:
            print(line, file=stream)
    return outcome


def counts(outcome: SyncOutcome) -> dict[str, Any]:
    """The summary's numbers, for the JSON line (the text summary prints the same)."""
    r = outcome.report
    return {
        "projects": r.projects,
        "issues_walked": r.issues_walked,
        "events_new": r.events_new,
        "events_updated": r.events_updated,
        "events_unchanged": r.events_unchanged,
        "events_hollow_ignored": r.events_hollow_ignored,
        "events_detail_unusable": len(r.details_unusable),
        "events_detail_retried": r.details_retried,
        "events_detail_recovered": r.details_recovered,
        "events_detail_given_up": r.details_given_up,
        "releases": r.releases,
        "requests": outcome.requests,
        "retries": outcome.retries,
        "duration_s": round(outcome.seconds, 3),
        "issues_gone": len(r.gone),
        "issues_merged": len(r.merged),
        "failures": len(r.failures),
        "projects_handed_over": len(r.handed_over),
    }


def click_echo_err(text: str) -> None:
    print(text, file=sys.stderr)
