"""``sentry-archiver schedule``: run the sync on a cron expression or an interval, forever.

Built on APScheduler 3.x. The one job has ``max_instances=1`` and ``coalesce=True``: a run
still going when the next is due is not started twice (the due time is logged as skipped), and
fire times missed while the machine slept are made up by a single run. Every run is the same
code as ``sentry-archiver sync`` (:func:`archiver.sync.runner.execute_sync`, including the run
lock), and is logged with its outcome and the next fire time. A failed run is logged and the
scheduler goes on; the next run resumes where it stopped. Except a refused token (401/403,
:class:`~archiver.errors.AuthError`): no later run can succeed until a person replaces it, so
the scheduler stops and the process exits 4, for the service manager to report (retrying every
tick would only log the same error forever, with the unit looking healthy).

SIGTERM or SIGINT: the run in progress stops at its next page boundary (checkpoint committed),
the scheduler shuts down, the process exits 0.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, JobSubmissionEvent
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from archiver.config import Settings, format_duration, parse_duration, settings_from_options
from archiver.errors import (
    ArchiverError,
    AuthError,
    ConfigError,
    ExitCode,
    InterruptedRun,
    LockHeldError,
)
from archiver.output import plural, setup_logging
from archiver.sync.runner import RUN_OUTCOMES, SyncOutcome, execute_sync, stop_on_signals

log = logging.getLogger("archiver.schedule")

JOB_ID = "sync"
MIN_INTERVAL = dt.timedelta(seconds=1)

# A run: given the stop event, does one sync and returns what it did (or raises).
RunFunction = Callable[[threading.Event], object]


def make_trigger(cron: str | None, every: dt.timedelta | None) -> BaseTrigger:
    """The trigger for ``--cron EXPR`` (5 fields, local time) or ``--every DURATION``."""
    if cron and every:
        raise ConfigError(
            "give either a cron expression or an interval, not both "
            f"(cron {cron!r}, every {format_duration(every)})"
        )
    if cron:
        try:
            return CronTrigger.from_crontab(cron)
        except ValueError as exc:
            raise ConfigError(
                f"not a valid cron expression: {cron!r} ({exc}); "
                "use 5 fields: minute hour day month weekday"
            ) from None
    if every:
        if every < MIN_INTERVAL:
            raise ConfigError(f"the interval is too short: {format_duration(every)} (at least 1s)")
        return IntervalTrigger(seconds=every.total_seconds())
    raise ConfigError(
        "no schedule: give --cron 'EXPR' or --every DURATION (e.g. 6h), "
        "or set cron or every in the [schedule] section of the config file"
    )


def describe_trigger(cron: str | None, every: dt.timedelta | None) -> str:
    return f"cron {cron!r}" if cron else f"every {format_duration(every or MIN_INTERVAL)}"


@dataclasses.dataclass
class RunRecord:
    """What one scheduled run did (kept in :attr:`SyncScheduler.history`)."""

    number: int
    outcome: str  # success | partial | interrupted | locked | failed
    exit_code: int
    seconds: float
    message: str = ""


class SyncScheduler:
    """A background APScheduler with one job, stopped by an event (the signals set it)."""

    def __init__(
        self,
        trigger: BaseTrigger,
        run: RunFunction,
        *,
        stop: threading.Event | None = None,
        run_now: bool = False,
        description: str = "",
        on_skip: Callable[[], None] | None = None,
    ) -> None:
        self.trigger = trigger
        self.run = run
        self.stop = stop or threading.Event()
        self.run_now = run_now
        self.description = description or str(trigger)
        self.on_skip = on_skip
        self.history: list[RunRecord] = []
        # set by a run whose token was refused: the scheduler stops and raises it
        self.fatal: AuthError | None = None
        self.skipped = 0
        self.running = 0
        self.max_running = 0
        self._guard = threading.Lock()
        self.scheduler = BackgroundScheduler(
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )
        self.scheduler.add_listener(self._on_max_instances, EVENT_JOB_MAX_INSTANCES)

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> None:
        extra: dict[str, Any] = {}
        if self.run_now:
            extra["next_run_time"] = dt.datetime.now(dt.timezone.utc)
        self.scheduler.add_job(
            self._job,
            self.trigger,
            id=JOB_ID,
            name="sentry-archiver sync",
            coalesce=True,
            max_instances=1,
            misfire_grace_time=None,
            **extra,
        )
        self.scheduler.start()
        log.info(
            "scheduler started (%s)%s; next run at %s",
            self.description,
            ", running once now" if self.run_now else "",
            _when(self.next_run_time()),
            extra={"next_run": _iso(self.next_run_time())},
        )

    def wait(self, poll: float = 0.5) -> None:
        """Block until the stop event is set (signal handlers set it)."""
        while not self.stop.wait(poll):
            pass

    def shutdown(self) -> None:
        """Stop: the run in progress (if any) ends at its next page boundary; wait for it."""
        self.stop.set()
        if self.running:
            log.warning("stopping: the run in progress saves its last page first")
        if self.scheduler.running:
            self.scheduler.shutdown(wait=True)
        log.info(
            "scheduler stopped after %s, %d skipped", plural(len(self.history), "run"), self.skipped
        )

    def run_forever(self) -> None:
        """Run until a signal (then return), or until a run's token is refused (then raise it:
        the :class:`~archiver.errors.AuthError`, exit 4, already logged)."""
        with stop_on_signals(self.stop):
            self.start()
            try:
                self.wait()
            finally:
                self.shutdown()
        if self.fatal is not None:
            log.error(
                "the token was refused: stopping the scheduler (exit %d); "
                "replace the token and start it again",
                int(self.fatal.exit_code),
                extra={"outcome": "failed", "counts": {"exit_code": int(self.fatal.exit_code)}},
            )
            self.fatal.logged = True
            raise self.fatal

    def next_run_time(self) -> dt.datetime | None:
        try:
            job = self.scheduler.get_job(JOB_ID)
        except Exception:  # the scheduler is shut down
            return None
        return None if job is None else job.next_run_time

    # ----------------------------------------------------------------- the job

    def _on_max_instances(self, event: JobSubmissionEvent) -> None:
        with self._guard:
            self.skipped += 1
        due = event.scheduled_run_times[-1] if event.scheduled_run_times else None
        log.warning(
            "a run was due at %s but the previous one is still going: skipped; next run at %s",
            _when(due),
            _when(self.next_run_time()),
            extra={"outcome": "skipped", "next_run": _iso(self.next_run_time())},
        )
        if self.on_skip is not None:
            self.on_skip()

    def _job(self) -> None:
        if self.stop.is_set():
            return
        with self._guard:
            self.running += 1
            self.max_running = max(self.max_running, self.running)
            number = len(self.history) + 1
        started = time.monotonic()
        log.info("run %d started", number)
        try:
            record = self._run_guarded(number)
        finally:
            with self._guard:
                self.running -= 1
        record.seconds = time.monotonic() - started
        with self._guard:
            self.history.append(record)
        next_run = None if self.stop.is_set() else self.next_run_time()
        level = logging.INFO if record.outcome in ("success", "interrupted") else logging.WARNING
        if record.outcome == "failed":
            level = logging.ERROR
        log.log(
            level,
            "run %d %s in %.1fs%s; next run at %s",
            number,
            record.outcome,
            record.seconds,
            f": {record.message}" if record.message else "",
            _when(next_run) if next_run else "none (stopping)",
            extra={
                "outcome": record.outcome,
                "next_run": _iso(next_run),
                "counts": {"exit_code": record.exit_code},
            },
        )

    def _run_guarded(self, number: int) -> RunRecord:
        """Run once; whatever happens, the scheduler survives it."""
        try:
            result = self.run(self.stop)
        except LockHeldError as exc:
            return RunRecord(number, "locked", int(exc.exit_code), 0.0, str(exc))
        except AuthError as exc:
            self.fatal = exc
            self.stop.set()  # no next run: the same token would be refused again
            return RunRecord(number, "failed", int(exc.exit_code), 0.0, str(exc))
        except InterruptedRun as exc:
            return RunRecord(number, "interrupted", int(exc.exit_code), 0.0, str(exc))
        except ArchiverError as exc:
            return RunRecord(number, "failed", int(exc.exit_code), 0.0, str(exc))
        except Exception as exc:
            log.exception("run %d: unexpected error", number)
            return RunRecord(
                number, "failed", int(ExitCode.FAILURE), 0.0, f"{type(exc).__name__}: {exc}"
            )
        return _record_from(number, result)


def _record_from(number: int, result: object) -> RunRecord:
    if not isinstance(result, SyncOutcome):
        return RunRecord(number, "success", 0, 0.0)
    code = result.exit_code
    outcome = RUN_OUTCOMES.get(code, "failed")
    r = result.report
    message = (
        f"events new {r.events_new}, updated {r.events_updated}, issues walked "
        f"{r.issues_walked}, requests {result.requests}"
    )
    projects = sum(1 for f in r.failures if f.get("issue_id") is None)
    parts = [plural(projects, "project")] if projects else []
    if len(r.failures) > projects:
        parts.append(plural(len(r.failures) - projects, "issue"))
    if parts:
        message += f", {' and '.join(parts)} failed"
    return RunRecord(number, outcome, int(code), 0.0, message)


def _when(value: dt.datetime | None) -> str:
    if value is None:
        return "-"
    return value.strftime("%Y-%m-%d %H:%M:%S %Z").strip()


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat()


# --------------------------------------------------------------------------- wiring


def sync_run(settings: Settings) -> RunFunction:
    """The real run: one ``sentry-archiver sync``, sharing the scheduler's stop event."""

    def run(stop: threading.Event) -> SyncOutcome:
        return execute_sync(settings, stop=stop)

    return run


def schedule_settings(options: dict[str, Any]) -> Settings:
    """Settings for ``schedule``: ``--cron``/``--every`` replace the file's schedule."""
    cron, every = options.pop("cron", None), options.pop("every", None)
    if cron and every:
        raise ConfigError("give either --cron or --every, not both")
    options["schedule_cron"] = cron
    options["schedule_every"] = parse_duration(every) if every else None
    settings = settings_from_options(options)
    if cron:
        settings = dataclasses.replace(settings, schedule_every=None)
    elif every:
        settings = dataclasses.replace(settings, schedule_cron=None)
    return settings


def setup_schedule_logging(
    settings: Settings, *, quiet: bool, verbosity: int, log_format: str
) -> None:
    """Like ``sync``'s logging, but each run's outcome is always shown (unless ``--quiet``)."""
    handler = setup_logging(
        log_format=log_format,
        verbosity=verbosity,
        quiet=quiet,
        secrets=[settings.token, settings.scrub_key],
    )
    if not quiet:
        log.setLevel(min(logging.INFO, logging.getLogger("archiver").level))
    aps = logging.getLogger("apscheduler")
    for old in list(aps.handlers):
        aps.removeHandler(old)
    aps.addHandler(handler)
    aps.setLevel(logging.DEBUG if verbosity >= 2 else logging.ERROR)
    aps.propagate = False
