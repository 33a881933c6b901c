"""What the user sees: logging (text or JSON lines), the terminal display, secret redaction.

A top-level module, not part of :mod:`archiver.cli`: the sync runner and the scheduler set up
logging and draw the display themselves, and they must not import the CLI.

The terminal display is rich's live progress (:class:`TerminalDisplay`): log lines printed
while it runs go through the same console, which prints them above the display and redraws it
below, so a warning never runs into the progress text. Off a terminal there is no display.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterable
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:  # rich is imported only when a terminal display is drawn
    from rich.console import Console
    from rich.progress import Progress as RichProgress
    from rich.progress import TaskID

# The logger of a run's final summary: shown at info whenever anything but errors is shown.
SUMMARY_LOGGER = "archiver.summary"


class RedactingFilter(logging.Filter):
    """Last line of defence: no log record ever carries a secret, whoever logged it."""

    def __init__(self, secrets: Iterable[str | None]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s and len(s) >= 4]

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            message = record.getMessage()
            if any(s in message for s in self.secrets):
                for s in self.secrets:
                    message = message.replace(s, "********")
                record.msg, record.args = message, None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log shippers."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("event", "counts", "outcome", "next_run"):
            if hasattr(record, key):
                data[key] = getattr(record, key)
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


class ConsoleHandler(logging.Handler):
    """Log lines printed through the terminal display's console: above the display, whole."""

    def __init__(self, console: Console) -> None:
        super().__init__()
        self.console = console

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.console.print(
                self.format(record), markup=False, highlight=False, emoji=False, soft_wrap=True
            )
        except Exception:
            self.handleError(record)


def setup_logging(
    *,
    log_format: str = "text",
    verbosity: int = 0,
    quiet: bool = False,
    secrets: Iterable[str | None] = (),
    stream: IO[str] | None = None,
    console: Console | None = None,
) -> logging.Handler:
    """Errors only with --quiet or off a terminal; more with -v. Returns the handler.

    With ``console`` (a :class:`TerminalDisplay`'s), text log lines go through it, so they are
    printed above the live display instead of into it.
    """
    stream = stream or sys.stderr
    interactive = stream.isatty()
    if quiet:
        level = logging.ERROR
    elif verbosity >= 2:
        level = logging.DEBUG
    elif verbosity == 1:
        level = logging.INFO
    else:
        level = logging.WARNING if interactive or log_format == "json" else logging.ERROR
    handler: logging.Handler = (
        ConsoleHandler(console)
        if console is not None and log_format == "text"
        else logging.StreamHandler(stream)
    )
    handler.addFilter(RedactingFilter(secrets))
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("archiver")
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False
    # the run's summary is info (a clean run must not look like a warning) yet always shown
    logging.getLogger(SUMMARY_LOGGER).setLevel(logging.ERROR if quiet else min(level, logging.INFO))
    return handler


class ProgressLine:
    """A single self-rewriting status line on a terminal; silent elsewhere."""

    def __init__(self, stream: IO[str] | None = None, *, enabled: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self._last = 0.0
        self._width = 0

    def update(self, text: str, *, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last < 0.2:
            return
        self._last = now
        pad = max(0, self._width - len(text))
        self._width = len(text)
        self.stream.write("\r" + text + " " * pad)
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
            self._width = 0


class TerminalDisplay:
    """A sync's live display on a terminal: projects, issues, events, rate, ETA and retries.

    Drawn with rich's progress display (transient: it leaves nothing behind when the run ends,
    and the summary follows). Disabled off a terminal, with ``--quiet`` and with JSON logs: then
    it draws nothing and :attr:`console` is None. Use it as a context manager around the run.
    """

    def __init__(self, stream: IO[str] | None = None, *, enabled: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.console: Console | None = None
        self._progress: RichProgress | None = None
        self._task: TaskID | None = None
        if self.enabled:
            from rich.console import Console

            self.console = Console(file=self.stream)

    def __enter__(self) -> TerminalDisplay:
        if self.console is not None:
            from rich.progress import BarColumn, Progress, TextColumn

            self._progress = Progress(
                TextColumn("[bold]archiving[/bold]"),
                BarColumn(bar_width=24),
                TextColumn("{task.description}", markup=False),
                console=self.console,
                transient=True,
                refresh_per_second=4,
            )
            self._progress.start()
            self._task = self._progress.add_task("starting", total=None)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def update(
        self,
        *,
        projects: int,
        issues_done: int,
        issues_total: int,
        events: int,
        seconds: float,
        retries: int,
    ) -> None:
        """Show the run's counters (cheap: rich redraws a few times a second, not per call)."""
        if self._progress is None or self._task is None:
            return
        text = (
            f"projects {projects} | issues {issues_done:,}/{issues_total:,} | events {events:,}"
            f" | {format_rate(events, seconds)}"
            f" | ETA {format_eta(issues_done, issues_total, seconds)}"
            f" | {plural(retries, 'retry', 'retries')}"
        )
        self._progress.update(
            self._task, description=text, completed=issues_done, total=issues_total or None
        )


def plural(count: int, noun: str, plural_form: str | None = None) -> str:
    """``1 issue``, ``2 issues``, ``1,234 events``: a count with its noun in agreement."""
    word = noun if count == 1 else (plural_form or noun + "s")
    return f"{count:,} {word}"


def format_rate(count: int, seconds: float) -> str:
    return f"{count / seconds:,.0f}/s" if seconds > 0 else "-"


def format_eta(done: int, total: int, seconds: float) -> str:
    if done <= 0 or total <= done or seconds <= 0:
        return "-"
    remaining = seconds / done * (total - done)
    minutes, secs = divmod(int(remaining), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"
