"""What can be read of an event whose JSON text cannot be parsed or stored as it is (pure).

Two kinds of event used to fail their whole page, and so the rest of their issue, on every
run: one nested deeper than Python's recursion limit (``json`` and every recursive walk of the
value raise ``RecursionError``), and one holding bytes that are not UTF-8. Neither is lost:

* A too deep event keeps its exact text as ``raw_json``. Its top-level members are read one
  at a time; a member nested more than :data:`MAX_DEPTH` levels is left out of the normalized
  tables with a ``too_deep`` problem, so the event still has its id, date and message.
* Bytes that are not UTF-8 are read as Python's ``surrogateescape`` does (byte ``XX`` becomes
  U+DCXX) and written into ``raw_json`` as the JSON escape ``\\udcXX``, so ``raw_json`` stays
  valid, storable text. An ``invalid_utf8`` problem lists the character offsets of those
  escapes in ``raw_json``: turning each back into its byte gives the exact bytes received.
  Lone surrogates the server encoded in its UTF-8 (which ``json.loads`` accepts) are written
  as ``\\uXXXX`` escapes too, without that problem: they were valid JSON as sent.

The scans here never recurse, whatever the depth.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

# (path, problem, detail): an ``event_problems`` row found before normalization.
DecodeProblem = tuple[str, str, str | None]

MAX_DEPTH = 100
"""Members nested deeper than this are left out of a leniently read event (``raw_json`` keeps
them). Far below Python's recursion limit, far above what Sentry's own payloads nest."""

_DECODER = json.JSONDecoder()
_SPACE = re.compile(r"[ \t\n\r]*")
# A JSON string (escapes included) or a bracket: all a depth count needs to see.
_TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')
_SURROGATE = re.compile("[\ud800-\udfff]")
_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")


def _skip_space(text: str, idx: int) -> int:
    match = _SPACE.match(text, idx)
    return match.end() if match else idx


def _brackets(text: str, idx: int) -> Iterator[tuple[int, int]]:
    """(depth after it, end) of each bracket of the value starting at ``idx``, to its end."""
    depth = 0
    for match in _TOKENS.finditer(text, idx):
        char = match.group()[0]
        if char == '"':
            continue
        depth += 1 if char in "[{" else -1
        yield depth, match.end()
        if depth == 0:
            return
    raise ValueError("a JSON value that never closes")


def value_end(text: str, idx: int) -> int:
    """Where the JSON value starting at ``idx`` ends, found without recursion.

    Raises ``ValueError`` when no value starts there or it never closes.
    """
    if not text.startswith(("[", "{"), idx):
        return int(_DECODER.raw_decode(text, idx)[1])  # a scalar: nothing nested
    *_, (_, end) = _brackets(text, idx)
    return end


def depth(text: str) -> int:
    """How deep a JSON value's text nests (0 for a scalar), found without recursion."""
    idx = _skip_space(text, 0)
    if not text.startswith(("[", "{"), idx):
        return 0
    return max(d for d, _ in _brackets(text, idx))


def _members(text: str) -> Iterator[tuple[str, str]]:
    """(key, value text) of each member of a JSON object's text; ``ValueError`` if malformed."""
    idx = _skip_space(text, 0)
    if not text.startswith("{", idx):
        raise ValueError("not an object")
    idx = _skip_space(text, idx + 1)
    if text.startswith("}", idx):
        return
    while True:
        key, idx = _DECODER.raw_decode(text, idx)
        idx = _skip_space(text, idx)
        if not isinstance(key, str) or not text.startswith(":", idx):
            raise ValueError("not an object member")
        start = _skip_space(text, idx + 1)
        idx = value_end(text, start)
        yield key, text[start:idx]
        idx = _skip_space(text, idx)
        if text.startswith("}", idx):
            return
        if not text.startswith(",", idx):
            raise ValueError("expected ',' or '}'")
        idx = _skip_space(text, idx + 1)


def read_shallow(text: str) -> tuple[dict[str, Any], list[DecodeProblem]]:
    """An event's top-level members that nest at most :data:`MAX_DEPTH` levels, and problems
    naming the members left out (``too_deep``) or the whole event when it is unreadable."""
    payload: dict[str, Any] = {}
    problems: list[DecodeProblem] = []
    try:
        for key, value in _members(text):
            if depth(value) > MAX_DEPTH:
                problems.append(
                    (
                        key,
                        "too_deep",
                        f"nested more than {MAX_DEPTH} levels: left out of the normalized "
                        "tables; raw_json has it",
                    )
                )
            else:
                payload[key] = json.loads(value)
    except ValueError as exc:
        return {}, [("$", "too_deep", f"too deep to read, and not an object it can split: {exc}")]
    return payload, problems


def storable_raw(raw: str, escaped_bytes: bool) -> tuple[str, list[DecodeProblem]]:
    """``raw`` with every lone surrogate written as its JSON escape (valid, storable text).

    ``escaped_bytes``: the text was decoded with ``surrogateescape``, so its surrogates are
    bytes that are not UTF-8; an ``invalid_utf8`` problem then lists where their escapes are.
    """
    if not _SURROGATE.search(raw):
        return raw, []
    parts: list[str] = []
    offsets: list[int] = []
    length = last = 0
    for match in _SURROGATE.finditer(raw):
        before = raw[last : match.start()]
        parts.append(before)
        length += len(before)
        char = match.group()
        if escaped_bytes and _ESCAPED_BYTE.match(char):
            offsets.append(length)
        escape = f"\\u{ord(char):04x}"
        parts.append(escape)
        length += len(escape)
        last = match.end()
    parts.append(raw[last:])
    if not offsets:
        return "".join(parts), []
    detail = (
        f"{len(offsets)} bytes that are not UTF-8 are kept in raw_json as \\udcXX escapes "
        f"(byte XX), at characters: {', '.join(map(str, offsets))}"
    )
    return "".join(parts), [("$", "invalid_utf8", detail)]
