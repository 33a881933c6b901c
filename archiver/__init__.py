"""sentry-archiver: a permanent, queryable copy of a Sentry organization's events."""

__version__ = "0.1.0"
