"""What the user sees: logging (text or JSON lines), the progress line, secret redaction.

A top-level module, not part of :mod:`archiver.cli`: the sync runner and the scheduler set up
logging and draw the progress line themselves, and they must not import the CLI.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterable
from typing import IO, Any

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


def setup_logging(
    *,
    log_format: str = "text",
    verbosity: int = 0,
    quiet: bool = False,
    secrets: Iterable[str | None] = (),
    stream: IO[str] | None = None,
) -> logging.Handler:
    """Errors only with --quiet or off a terminal; more with -v. Returns the handler."""
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
    handler = logging.StreamHandler(stream)
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
