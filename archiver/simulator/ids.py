"""Deterministic pseudo-randomness and the reversible event-ID codec.

Event IDs must look like Sentry's (32 lowercase hex, random-looking) yet a million-event org
cannot keep a dictionary from ID to event. So an ID *is* its event's coordinates
``(issue index, segment, index in segment)`` run through a keyed 4-round Feistel permutation of
128 bits, with 48 bits of redundancy (a tag derived from the seed) so that an ID that was never
issued is recognised as unknown with probability ``1 - 2**-48``. Decoding costs four hashes.
"""

from __future__ import annotations

import hashlib
import struct

_MASK64 = (1 << 64) - 1
_ISSUE_BITS = 24
_SEGMENT_BITS = 24
_INDEX_BITS = 32
_TAG_BITS = 48

MAX_ISSUES = 1 << _ISSUE_BITS
MAX_SEGMENTS = 1 << _SEGMENT_BITS
MAX_SEGMENT_EVENTS = 1 << _INDEX_BITS


def hash64(*parts: object) -> int:
    """A stable 64-bit hash of the parts' text (never Python's randomised ``hash``)."""
    text = "\x1f".join(str(p) for p in parts).encode("utf-8")
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big")


def unit(*parts: object) -> float:
    """A stable pseudo-random float in [0, 1) from the parts."""
    return hash64(*parts) / 2.0**64


class EventIdCodec:
    """Maps ``(issue_index, segment, index)`` to a 32-hex event ID and back."""

    def __init__(self, seed: int) -> None:
        self._keys = [
            hashlib.blake2b(f"sim-event-id:{seed}:{r}".encode(), digest_size=16).digest()
            for r in range(4)
        ]
        self._tag = hash64("sim-tag", seed) & ((1 << _TAG_BITS) - 1)

    def _round(self, r: int, half: int) -> int:
        digest = hashlib.blake2b(struct.pack(">Q", half), digest_size=8, key=self._keys[r]).digest()
        return int.from_bytes(digest, "big")

    def encode(self, issue_index: int, segment: int, index: int) -> str:
        """The event ID of the index-th event of a segment of an issue."""
        if not (0 <= issue_index < MAX_ISSUES and 0 <= segment < MAX_SEGMENTS):
            raise ValueError("issue index or segment out of range")
        if not 0 <= index < MAX_SEGMENT_EVENTS:
            raise ValueError("event index out of range")
        left = (issue_index << _SEGMENT_BITS) | segment
        left = (left << 16) | (self._tag >> 32)
        right = (index << 32) | (self._tag & 0xFFFFFFFF)
        for r in range(4):
            left, right = right, left ^ self._round(r, right)
        return f"{left:016x}{right:016x}"

    def decode(self, event_id: str) -> tuple[int, int, int] | None:
        """The coordinates of an ID this codec issued, else None."""
        if len(event_id) != 32:
            return None
        try:
            value = int(event_id, 16)
        except ValueError:
            return None
        left, right = value >> 64, value & _MASK64
        for r in reversed(range(4)):
            left, right = right ^ self._round(r, left), left
        tag = ((left & 0xFFFF) << 32) | (right & 0xFFFFFFFF)
        if tag != self._tag:
            return None
        issue_index = left >> (16 + _SEGMENT_BITS)
        segment = (left >> 16) & (MAX_SEGMENTS - 1)
        index = right >> 32
        return issue_index, segment, index


def normalize_event_id(text: str) -> str | None:
    """Sentry's ``normalize_event_id``: a UUID in any common spelling -> 32 lowercase hex."""
    candidate = text.strip().lower().replace("-", "")
    if len(candidate) != 32:
        return None
    if any(c not in "0123456789abcdef" for c in candidate):
        return None
    return candidate
