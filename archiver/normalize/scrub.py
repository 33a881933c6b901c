"""Scrubbing personal data out of event payloads before anything is stored (pure functions).

A scrub rule is a dotted path in the event's own terms. Each matching value is replaced by
``scrubbed:hmac-sha256:<16 hex>``, the first 16 hex digits of HMAC-SHA256(scrub key, value),
so equal values still group and join (two events of the same user get the same hash) while the
value itself cannot be recovered without the key (and not even with it: only compared).

The payload is scrubbed *before* normalization, so the normalized rows and ``raw_json`` only
ever see the hashed values (``raw_sha256`` is then the hash of the scrubbed payload).

Rules (unknown roots are a configuration error):

``user`` / ``user.<field>``
    The event's ``user`` object (``user.email``, ``user.ip_address``, ``user.id``,
    ``user.username``, ``user.name``, ``user.geo``, ``user.data``...); bare ``user`` hashes every
    field. The ``user`` / ``sentry:user`` tag that echoes the user (``email:a@b.c``,
    ``id:42``, ``ip:1.2.3.4``, ``username:x``, ``name:y``) is scrubbed with the same hash of the
    part after the colon (and the tag's ``query`` text is rewritten to match).
``request.<field>`` / ``request.<field>.<name>``
    The ``request`` entry's data: ``url``, ``query``, ``data``, ``fragment``, ``method``, or the
    values of the containers ``headers``, ``cookies``, ``env`` and ``query`` (lists of
    ``[name, value]`` pairs or objects; names kept, names matched case-insensitively).
    ``request.cookies`` also scrubs the value of a ``Cookie`` header. A container given as one
    string (``"a=1; b=2"``) is hashed whole.
``tags.<key>``
    The value of every tag with that key.
``contexts.<name>`` / ``contexts.<name>.<field>...``
    A whole context (each field hashed) or one field of it.
``extra`` / ``extra.<key>``
    The SDK's extra data (``context`` in the API payload).

Not covered: free text that happens to contain the value (messages, exception values, URLs,
breadcrumbs, frame variables, ``url`` tags), and the event's ``errors`` list.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from archiver.errors import ConfigError
from archiver.normalize.event import NormalizedEvent, normalize_event

METHOD = "hmac-sha256"
PREFIX = f"scrubbed:{METHOD}:"
HASH_HEX = 16
ROOTS = ("user", "request", "tags", "contexts", "extra")
REQUEST_CONTAINERS = ("headers", "cookies", "env", "query")
REQUEST_FIELDS = (
    "url",
    "method",
    "query",
    "data",
    "fragment",
    "inferredContentType",
    *REQUEST_CONTAINERS,
)
# The user tag's prefixes (Sentry's ``sentry:user`` identifier) -> the user field they echo.
USER_TAG_PREFIXES = {
    "id": "id",
    "email": "email",
    "username": "username",
    "ip": "ip_address",
    "name": "name",
}
USER_TAG_KEYS = ("user", "sentry:user")
_RULE = re.compile(r"^[A-Za-z_][\w:-]*(\.[^.\s]+)*$")


@dataclass(frozen=True)
class Rule:
    """One parsed scrub rule: ``root`` plus the path below it."""

    text: str
    root: str
    parts: tuple[str, ...]


def parse_rule(text: str) -> Rule:
    rule = text.strip()
    if not rule or not _RULE.match(rule):
        raise ConfigError(f"not a scrub rule: {text!r} (use dotted paths like user.email)")
    root, *rest = rule.split(".")
    if root not in ROOTS:
        raise ConfigError(
            f"unknown scrub rule {text!r}: it must start with one of {', '.join(ROOTS)}"
        )
    parts = tuple(rest)
    if root == "user" and len(parts) > 1:
        raise ConfigError(f"scrub rule {text!r}: use user or user.<field>")
    if root == "tags" and len(parts) != 1:
        raise ConfigError(f"scrub rule {text!r}: use tags.<key>")
    if root == "contexts" and not parts:
        raise ConfigError(f"scrub rule {text!r}: use contexts.<name> or contexts.<name>.<field>")
    if root == "extra" and len(parts) > 1:
        raise ConfigError(f"scrub rule {text!r}: use extra or extra.<key>")
    if root == "request":
        if not parts or parts[0] not in REQUEST_FIELDS:
            raise ConfigError(
                f"scrub rule {text!r}: use request.<field> with field one of "
                f"{', '.join(REQUEST_FIELDS)}"
            )
        if len(parts) > 2 or (len(parts) == 2 and parts[0] not in REQUEST_CONTAINERS):
            raise ConfigError(
                f"scrub rule {text!r}: only {', '.join(REQUEST_CONTAINERS)} take a name "
                "(request.headers.Authorization)"
            )
    return Rule(rule, root, parts)


def parse_rules(rules: Iterable[str]) -> tuple[Rule, ...]:
    out: dict[str, Rule] = {}
    for text in rules:
        rule = parse_rule(text)
        out.setdefault(rule.text, rule)
    return tuple(out.values())


def key_id(key: str) -> str:
    """Names the key in audit records without revealing it: first 8 hex of its SHA-256."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:8]


def canonical(value: Any) -> str:
    """The text that is hashed: strings as they are, anything else as canonical JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def hash_value(key: str, value: Any) -> str:
    digest = hmac.new(
        key.encode("utf-8"), canonical(value).encode("utf-8", "surrogatepass"), hashlib.sha256
    ).hexdigest()
    return PREFIX + digest[:HASH_HEX]


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def _is_scrubbed(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(PREFIX)


@dataclass
class _Run:
    """One payload's scrub: the key and the concrete paths replaced so far."""

    key: str
    paths: list[str] = field(default_factory=list)

    def hash(self, value: Any, path: str) -> Any:
        if _empty(value) or _is_scrubbed(value):
            return value
        if path not in self.paths:
            self.paths.append(path)
        return hash_value(self.key, value)

    def values(self, container: Any, path: str, name: str | None) -> Any:
        """Hash the values of a pairs list / object (names kept); a string is hashed whole."""
        wanted = name.lower() if name is not None else None
        if isinstance(container, dict):
            return {
                k: self.hash(v, f"{path}.{k}") if wanted is None or str(k).lower() == wanted else v
                for k, v in container.items()
            }
        if isinstance(container, list):
            out: list[Any] = []
            for i, pair in enumerate(container):
                if (
                    isinstance(pair, (list, tuple))
                    and len(pair) == 2
                    and (wanted is None or str(pair[0]).lower() == wanted)
                ):
                    out.append([pair[0], self.hash(pair[1], f"{path}[{i}][1]")])
                else:
                    out.append(pair)
            return out
        if isinstance(container, str) and (wanted is None or wanted in container.lower()):
            return self.hash(container, path)
        return container


class Scrubber:
    """Applies parsed rules with one key. ``scrub`` never changes its argument."""

    def __init__(self, rules: Sequence[str], key: str) -> None:
        if not key:
            raise ConfigError(
                "scrub rules are configured but no scrub key is set: set "
                "SENTRY_ARCHIVER_SCRUB_KEY (or [privacy] scrub_key in the config file) to a "
                "long random secret, and keep it: the same key keeps hashes comparable"
            )
        self.rules = parse_rules(rules)
        self._key = key
        self.key_id = key_id(key)

    def __repr__(self) -> str:  # never the key
        return f"Scrubber(rules={[r.text for r in self.rules]!r}, key_id={self.key_id!r})"

    def scrub(self, payload: Any) -> tuple[Any, dict[str, Any]]:
        """(scrubbed copy of the payload, the record stored in ``events.scrubbed``)."""
        run = _Run(self._key)
        out = copy.deepcopy(payload)
        if isinstance(out, dict):
            for rule in self.rules:
                self._apply(rule, out, run)
        record = {
            "method": METHOD,
            "key_id": self.key_id,
            "rules": [r.text for r in self.rules],
            "paths": run.paths,
        }
        return out, record

    # ------------------------------------------------------------------ rules

    def _apply(self, rule: Rule, ev: dict[str, Any], run: _Run) -> None:
        if rule.root == "user":
            self._user(rule, ev, run)
        elif rule.root == "request":
            self._request(rule, ev, run)
        elif rule.root == "tags":
            self._tags(ev, run, lambda key: key == rule.parts[0], lambda value: (None, value))
        elif rule.root == "contexts":
            self._nested(ev, "contexts", rule.parts, run)
        elif rule.root == "extra":
            self._nested(ev, "context", rule.parts, run)  # the API calls extra "context"

    def _user(self, rule: Rule, ev: dict[str, Any], run: _Run) -> None:
        user = ev.get("user")
        if isinstance(user, dict):
            for name in rule.parts or tuple(user):
                if name in user:
                    user[name] = run.hash(user[name], f"user.{name}")
        whole = not rule.parts
        prefixes = {p for p, f in USER_TAG_PREFIXES.items() if whole or f in rule.parts}

        def pick(value: Any) -> tuple[str | None, Any] | None:
            if isinstance(value, str) and ":" in value:
                prefix, _, rest = value.partition(":")
                if prefix in prefixes:
                    return prefix, rest
            return (None, value) if whole else None

        self._tags(ev, run, lambda key: key in USER_TAG_KEYS, pick)

    def _tags(
        self,
        ev: dict[str, Any],
        run: _Run,
        matches: Callable[[str], bool],
        pick: Callable[[Any], tuple[str | None, Any] | None],
    ) -> None:
        """Hash matching tag values; ``pick(value)`` -> (prefix kept, part hashed) or None."""
        tags = ev.get("tags")
        if not isinstance(tags, list):
            return
        for i, tag in enumerate(tags):
            if isinstance(tag, dict):
                key, value = tag.get("key"), tag.get("value")
            elif isinstance(tag, (list, tuple)) and len(tag) == 2:
                key, value = tag
            else:
                continue
            if not isinstance(key, str) or not matches(key) or _empty(value):
                continue
            picked = pick(value)
            if picked is None:
                continue
            prefix, part = picked
            hashed = run.hash(part, f"tags[{i}].value")
            if hashed is part:
                continue  # empty or already scrubbed
            new_value = f"{prefix}:{hashed}" if prefix else hashed
            if isinstance(tag, dict):
                tag["value"] = new_value
                if "query" in tag and tag["query"] is not None:
                    tag["query"] = _tag_query(key, prefix, hashed)
            else:
                tags[i] = [key, new_value]

    def _request(self, rule: Rule, ev: dict[str, Any], run: _Run) -> None:
        entries = ev.get("entries")
        if not isinstance(entries, list):
            return
        name, sub = rule.parts[0], rule.parts[1] if len(rule.parts) > 1 else None
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict) or entry.get("type") != "request":
                continue
            data = entry.get("data")
            if not isinstance(data, dict):
                continue
            base = f"entries[{i}].data"
            if name in REQUEST_CONTAINERS and name in data:
                data[name] = run.values(data[name], f"{base}.{name}", sub)
            elif name in data:
                data[name] = run.hash(data[name], f"{base}.{name}")
            if name == "cookies" and "headers" in data:
                data["headers"] = run.values(data["headers"], f"{base}.headers", "cookie")

    def _nested(self, ev: dict[str, Any], top: str, parts: tuple[str, ...], run: _Run) -> None:
        node = ev.get(top)
        path = top
        for part in parts[:-1]:
            if not isinstance(node, dict) or part not in node:
                return
            node, path = node[part], f"{path}.{part}"
        if not isinstance(node, dict):
            return
        if parts:
            last = parts[-1]
            if last not in node:
                return
            target = node[last]
            path = f"{path}.{last}"
            if top == "contexts" and len(parts) == 1 and isinstance(target, dict):
                node[last] = {
                    k: run.hash(v, f"{path}.{k}") if k != "type" else v for k, v in target.items()
                }
            else:
                node[last] = run.hash(target, path)
        else:
            for k in list(node):
                node[k] = run.hash(node[k], f"{path}.{k}")


def _tag_query(key: str, prefix: str | None, hashed: str) -> str:
    """The search text Sentry attaches to a tag, rebuilt around the hash."""
    if key in USER_TAG_KEYS and prefix:
        return f'user.{prefix}:"{hashed}"'
    return f'{key}:"{hashed}"'


def make_scrubber(rules: Sequence[str], key: str | None) -> Scrubber | None:
    """None when no rules are configured; ConfigError when rules are but no key is."""
    if not rules:
        return None
    return Scrubber(rules, key or "")


def normalize_scrubbed(scrubber: Scrubber | None, payload: Any, **kwargs: Any) -> NormalizedEvent:
    """``normalize_event`` after scrubbing; the scrub record goes to ``events.scrubbed``."""
    if scrubber is None:
        return normalize_event(payload, **kwargs)
    clean, record = scrubber.scrub(payload)
    kwargs.pop("raw", None)  # the server's text holds what was scrubbed: dump the clean copy
    ev = normalize_event(clean, **kwargs)
    ev.event["scrubbed"] = record
    return ev
