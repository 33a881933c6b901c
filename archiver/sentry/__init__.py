"""Talking to Sentry: HTTP, auth, retries, rate limits and the paginator."""
