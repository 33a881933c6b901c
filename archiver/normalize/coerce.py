"""Coercion of payload values to storable column values, and the record of what went wrong.

Sentry's payloads are loosely typed (a line number may come as text, a boolean as ``"yes"``, a
timestamp as epoch seconds or ISO text with any fraction), and some hold text that databases
cannot store. :class:`Problems` turns each value into its column's type or leaves it out, and
records an ``event_problems`` row for anything it had to change: normalization never raises on
a malformed payload, and the raw JSON keeps the original.

Text that databases cannot hold is made storable here, the same way on every backend:

* U+0000 (PostgreSQL text cannot hold it) becomes U+2400 SYMBOL FOR NULL in normalized values,
  with a ``nul_replaced`` problem naming the field. ``raw_json`` is written by ``json.dumps``,
  which escapes it as ``\\u0000``: valid JSON text on both databases, so ``json.loads`` of the
  raw JSON gives the exact original back.
* Lone surrogates (invalid UTF-8) become U+FFFD with an ``invalid_unicode`` problem; the raw
  JSON then falls back to ASCII escapes so it still round-trips.
* Values of indexed columns are cut to :data:`INDEXED_MAX` characters (PostgreSQL index rows
  are limited to about 2,700 bytes) with a ``truncated`` problem; other text keeps its full
  length.

:func:`dump_raw` lives here rather than beside the event because projects, issues and releases
keep their raw JSON the same way.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import re
from typing import Any

INDEXED_MAX = 1000
NUL_SUBSTITUTE = "\u2400"
_BAD_TEXT = re.compile("[\x00\ud800-\udfff]")
# Substrings of JSON text that may stand for a NUL, a surrogate (both after ``\\u``) or a
# non-finite number; plain ``in`` tests are far cheaper than one regex over the whole text.
_ESCAPES = ("\\u0000", "\\ud", "\\uD")
_NON_FINITE = ("NaN", "Infinity")
_HEX32 = re.compile(r"^[0-9a-f]{32}$")
_ISO = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?)?"
    r"\s*(Z|z|[+-]\d{2}:?\d{2})?$"
)


def dump_raw(payload: Any) -> str:
    """The raw JSON text: the same value, key order kept."""
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=True)
    try:
        text.encode("utf-8")  # fails only on a lone surrogate (json escapes every NUL)
    except UnicodeEncodeError:
        text = json.dumps(payload, ensure_ascii=True, separators=(",", ":"), allow_nan=True)
    return text


def _pristine(raw: str) -> bool:
    """Does this JSON text hold no NUL, no lone surrogate and no non-finite number? (Each
    ``in`` reads the whole text: ``\\u`` first, then its three suspects only if found.)"""
    if "\\u" in raw and any(s in raw for s in _ESCAPES):
        return False
    return not any(s in raw for s in _NON_FINITE)


class Problems:
    """Collects what could not be normalized cleanly (at most one row per path and kind)."""

    def __init__(self, raw: str | None = None) -> None:
        self.rows: list[dict[str, Any]] = []
        self._seen: set[tuple[str, str]] = set()
        # Most payloads hold no NUL, no lone surrogate and no non-finite number anywhere: one
        # look at the raw JSON text proves it, and then no string or JSON value needs a copy.
        self.pristine = raw is not None and _pristine(raw)

    def add(self, path: str, problem: str, detail: str | None = None, *, cut: bool = True) -> None:
        """Record a problem; a second one of the same kind at the same path adds nothing.

        ``cut=False`` keeps a long detail whole (it is not indexed): one that says where in
        ``raw_json`` to look must not lose its end.
        """
        if (path, problem) in self._seen:
            return
        self._seen.add((path, problem))
        if detail is not None:
            detail = clean_plain(detail)[:INDEXED_MAX] if cut else clean_plain(detail)
        self.rows.append(
            {
                "position": len(self.rows),
                "path": clean_plain(path)[:INDEXED_MAX],
                "problem": problem,
                "detail": detail,
            }
        )

    # ---------------------------------------------------------------- coercions

    def text(self, value: Any, path: str, *, indexed: bool = False) -> str | None:
        """Text for a text column: scalars spelled out, anything else as its JSON text.

        ``indexed`` columns are cut to :data:`INDEXED_MAX` characters.
        """
        if value is None:
            return None
        if isinstance(value, str):
            out = value
        elif isinstance(value, bool):
            out = "true" if value else "false"
        elif isinstance(value, (int, float)):
            out = str(value)
        else:
            self.add(path, "malformed", f"expected text, got {type(value).__name__}")
            out = json.dumps(value, ensure_ascii=False, default=str)
        out = self.clean(out, path)
        if indexed and len(out) > INDEXED_MAX:
            self.add(path, "truncated", f"{len(out)} characters cut to {INDEXED_MAX}")
            out = out[:INDEXED_MAX]
        return out

    def clean(self, value: str, path: str) -> str:
        """``value`` with NUL and lone surrogates replaced (see the module docstring)."""
        if self.pristine or not _BAD_TEXT.search(value):
            return value
        if "\x00" in value:
            self.add(path, "nul_replaced", "U+0000 stored as U+2400; raw_json has the original")
            value = value.replace("\x00", NUL_SUBSTITUTE)
        if re.search("[\ud800-\udfff]", value):
            self.add(path, "invalid_unicode", "lone surrogate replaced by U+FFFD")
            value = re.sub("[\ud800-\udfff]", "\ufffd", value)
        return value

    def json(self, value: Any, path: str) -> Any:
        """A JSON value made storable (NUL, surrogates; non-finite floats become text)."""
        if self.pristine:
            return value
        if isinstance(value, str):
            return self.clean(value, path)
        if isinstance(value, dict):
            return {self.clean(str(k), path): self.json(v, f"{path}.{k}") for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.json(v, f"{path}[{i}]") for i, v in enumerate(value)]
        if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
            self.add(path, "malformed", "non-finite number stored as text")
            return str(value)
        return value

    def int_(self, value: Any, path: str) -> int | None:
        """A 64-bit integer from a number or its text; None (and a problem) otherwise."""
        if value is None or value == "":
            return None
        if isinstance(value, bool):
            self.add(path, "malformed", "expected a number, got a boolean")
            return None
        if isinstance(value, int):
            return value if -(2**63) <= value < 2**63 else self._bad_int(path, value)
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                try:
                    number = float(value)
                    if number.is_integer():
                        return int(number)
                except ValueError:
                    pass
        self.add(path, "malformed", f"expected an integer, got {short_repr(value)}")
        return None

    def _bad_int(self, path: str, value: int) -> int | None:
        self.add(path, "malformed", f"integer out of range: {short_repr(value)}")
        return None

    def bool_(self, value: Any, path: str) -> bool | None:
        """A boolean from ``true``/``false``, 0/1 or their usual spellings as text."""
        if value is None or isinstance(value, bool):
            return value
        if isinstance(value, (int, float)) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in (
            "true",
            "false",
            "1",
            "0",
            "yes",
            "no",
        ):
            return value.strip().lower() in ("true", "1", "yes")
        self.add(path, "malformed", f"expected a boolean, got {short_repr(value)}")
        return None

    def datetime(self, value: Any, path: str) -> dt.datetime | None:
        """An aware UTC datetime by :func:`parse_timestamp`."""
        if value is None or value == "":
            return None
        parsed = parse_timestamp(value)
        if parsed is None:
            self.add(path, "malformed", f"not a timestamp: {short_repr(value)}")
        return parsed

    def list_(self, value: Any, path: str) -> list[Any]:
        """The list, or an empty one (so callers can always iterate)."""
        if value is None:
            return []
        if isinstance(value, list):
            return value
        self.add(path, "malformed", f"expected a list, got {type(value).__name__}")
        return []

    def dict_(self, value: Any, path: str) -> dict[str, Any]:
        """The object, or an empty one (so callers can always ``get``)."""
        if value is None:
            return {}
        if isinstance(value, dict):
            return value
        self.add(path, "malformed", f"expected an object, got {type(value).__name__}")
        return {}


def short_repr(value: Any) -> str:
    """The value's repr, cut to fit in a problem's detail."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def clean_plain(text: str) -> str:
    """NUL and lone surrogates replaced, without recording a problem (for paths, details and
    objects that have no problem table)."""
    return re.sub("[\ud800-\udfff]", "\ufffd", text.replace("\x00", NUL_SUBSTITUTE))


def parse_timestamp(value: Any) -> dt.datetime | None:
    """ISO 8601 text (any fraction length, Z or offset) or epoch seconds, as aware UTC."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        seconds = float(value)
        if seconds != seconds or abs(seconds) > 1e13:
            return None
        if abs(seconds) > 1e11:  # milliseconds
            seconds /= 1000.0
        try:
            return dt.datetime.fromtimestamp(seconds, dt.timezone.utc)
        except (OverflowError, OSError, ValueError):
            return None
    if not isinstance(value, str):
        return None
    return _parse_text(value)


# Parsed timestamp texts are remembered: an event's date is read three times (its problem
# check, its ``date_created``, the walk's key), and events of a page share many.
@functools.lru_cache(maxsize=4096)
def _parse_text(value: str) -> dt.datetime | None:
    text = value.strip()
    if len(text) in (20, 27) and _sentry_shape(text):
        try:  # C, about ten times faster; fails only where the regex path fails too
            naive = dt.datetime.fromisoformat(text[:-1])
        except ValueError:
            naive = None
        if naive is not None and naive.tzinfo is None:
            return naive.replace(tzinfo=dt.timezone.utc)
    m = _ISO.match(text)
    if not m:
        try:
            return parse_timestamp(float(text)) if text else None
        except ValueError:
            return None
    year, month, day, hour, minute, second, fraction, zone = m.groups()
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    try:
        tz = dt.timezone.utc
        if zone and zone not in ("Z", "z"):
            sign = 1 if zone[0] == "+" else -1
            digits = zone[1:].replace(":", "")
            tz = dt.timezone(sign * dt.timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))
        return dt.datetime(
            int(year),
            int(month),
            int(day),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            micro,
            tzinfo=tz,
        ).astimezone(dt.timezone.utc)
    except (ValueError, OverflowError):
        return None


def _sentry_shape(text: str) -> bool:
    """``YYYY-MM-DDTHH:MM:SSZ`` or ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (Sentry's own) by their
    separators: then ``fromisoformat`` reads the digits (ASCII only, unlike ``\\d``: any
    other digit fails there and goes the regex way) exactly as the regex path does."""
    return (
        text[4] == "-"
        and text[7] == "-"
        and text[10] == "T"
        and text[13] == ":"
        and text[16] == ":"
        and text[-1] == "Z"
        and (len(text) == 20 or (text[19] == "." and text[20:26].isdigit()))
    )


def normalize_event_id(value: Any) -> str | None:
    """32 lowercase hex characters (UUIDs with dashes accepted), else None."""
    if not isinstance(value, str):
        return None
    text = value.strip().lower().replace("-", "")
    return text if _HEX32.match(text) else None
