"""Fewer cyclic garbage collections while a walk runs (see :func:`fewer_collections`)."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def fewer_collections(threshold: int = 10_000) -> Iterator[None]:
    """Run the walk with fewer cyclic garbage collections (restored afterwards).

    The writer opens thousands of row tuples per batch, and with the default threshold every
    700 allocations started a collection that walked them again, while every full collection
    also walked the whole import-time heap (SQLAlchemy, httpx, ...). So that heap is frozen
    and young objects are collected every 10,000 allocations instead (the README's
    performance notes give the measurement).
    Rows are tuples of strings and numbers, freed by reference counting as before; only
    cyclic garbage (httpx's, exceptions') waits a little longer for its collection.
    """
    old = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(threshold, old[1], old[2])
    try:
        yield
    finally:
        gc.set_threshold(*old)
        gc.unfreeze()
