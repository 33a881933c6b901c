"""Pure functions from Sentry payloads to rows: no I/O, no sessions."""
