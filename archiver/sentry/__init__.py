"""Talking to Sentry: HTTP, auth, retries, rate limits and the paginator.

``client``      SentryClient: one attempt and one retry decision per request; the endpoints
``failures``    what a failed attempt means: retry it, or which ApiError to raise
``ratelimit``   endpoint families, pacing by the rate-limit headers, how long a 429 waits
``body``        a response body read whole or streamed into a file (BodyFile)
``pagination``  the Link header, and the Paginator every cursor walk follows
``urls``        where the token may travel, path segments, time windows

Nothing here imports the sync engine, the storage or the CLI.
"""
