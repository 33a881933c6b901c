"""sentry-archiver: a permanent, queryable copy of a Sentry organisation's events."""

__version__ = "0.1.0"
