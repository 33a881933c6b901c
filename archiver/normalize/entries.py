"""The child rows of an event: tags, entries (exceptions, threads, frames, breadcrumbs, the
request; other entry types keep their data), contexts and processing errors.

Each function appends to or returns rows of one child table, coercing every value through
:class:`~archiver.normalize.coerce.Problems`, which records whatever it had to change. Paths in
those records name the value in the payload (``entries[2].data.values[0].stacktrace...``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, TypeAlias
from urllib.parse import urlencode

from archiver.normalize.coerce import Problems, short_repr
from archiver.normalize.plain import plain_crumb, plain_frame, plain_indexed

# An event's child rows by table name (rows without ``event_pk``: the writer adds it).
Children: TypeAlias = dict[str, list[dict[str, Any]]]

# Entry types whose data goes to tables of their own; the rest keep data in event_entries.
TABLED_ENTRIES = frozenset({"exception", "threads", "stacktrace", "breadcrumbs", "request"})


def tag_rows(value: Any, p: Problems) -> list[dict[str, Any]]:
    """``event_tags`` rows, in payload order (objects or ``[key, value]`` pairs)."""
    rows: list[dict[str, Any]] = []
    pristine = p.pristine
    for i, item in enumerate(p.list_(value, "tags")):
        if pristine and type(item) is dict:  # the usual tag: no coercion, no path to format
            key, val = item.get("key"), item.get("value")
            if plain_indexed(key) and (val is None or plain_indexed(val)):
                rows.append({"position": len(rows), "key": key, "value": val})
                continue
        path = f"tags[{i}]"
        if isinstance(item, dict):
            key, val = item.get("key"), item.get("value")
        elif isinstance(item, (list, tuple)) and len(item) == 2:
            key, val = item
        else:
            p.add(path, "malformed", f"not a tag: {short_repr(item)}")
            continue
        if key is None:
            p.add(path, "malformed", "tag without a key")
            key = ""
        rows.append(
            {
                "position": len(rows),
                "key": p.text(key, f"{path}.key", indexed=True),
                "value": p.text(val, f"{path}.value", indexed=True),
            }
        )
    return rows


def entry_rows(entries: Any, children: Children, p: Problems) -> str | None:
    """The rows of every entry, appended to ``children``; returns the first message entry's
    text (the event's message when the payload has none of its own)."""
    message: str | None = None
    for i, entry in enumerate(p.list_(entries, "entries")):
        text = _entry(entry, i, children, p)
        if text is not None and message is None:
            message = text
    return message


def error_rows(errors: Any, p: Problems) -> list[dict[str, Any]]:
    """``event_errors`` rows: the processing errors Sentry recorded (``errors``)."""
    return [
        {
            "position": i,
            "type": p.text(e.get("type"), f"errors[{i}].type"),
            "message": p.text(e.get("message"), f"errors[{i}].message"),
            "data": p.json(e.get("data"), f"errors[{i}].data"),
        }
        if isinstance(e, dict)
        else {"position": i, "type": None, "message": p.text(e, f"errors[{i}]"), "data": None}
        for i, e in enumerate(p.list_(errors, "errors"))
    ]


def _entry(entry: Any, i: int, children: Children, p: Problems) -> str | None:
    """Rows for one entry; returns the message text of a ``message`` entry."""
    path = f"entries[{i}]"
    if not isinstance(entry, dict):
        p.add(path, "malformed", f"entry is a {type(entry).__name__}")
        children["event_entries"].append({"position": i, "type": None, "data": p.json(entry, path)})
        return None
    raw_type = entry.get("type")
    etype = raw_type if isinstance(raw_type, str) else None
    data = entry.get("data")
    etype_text = p.text(raw_type, f"{path}.type", indexed=True)
    children["event_entries"].append(
        {
            "position": i,
            "type": etype_text,
            "data": None if etype in TABLED_ENTRIES else p.json(data, f"{path}.data"),
        }
    )
    dpath = f"{path}.data"
    if etype == "exception":
        _exceptions(p.dict_(data, dpath), dpath, children, p)
    elif etype == "threads":
        _threads(p.dict_(data, dpath), dpath, children, p)
    elif etype == "stacktrace":
        _frames(p.dict_(data, dpath), dpath, "stacktrace", i, False, None, children, p)
    elif etype == "breadcrumbs":
        _breadcrumbs(p.dict_(data, dpath), dpath, children, p)
    elif etype == "request":
        if children["requests"]:
            p.add(path, "malformed", "a second request entry (kept in raw_json only)")
        else:
            children["requests"].append(_request(p.dict_(data, dpath), dpath, p))
    elif etype == "message":
        d = data if isinstance(data, dict) else {}
        text = d.get("formatted") or d.get("message")
        if isinstance(data, str):
            text = data
        return p.text(text, f"{dpath}.formatted") if text else None
    return None


def _exceptions(data: dict[str, Any], path: str, children: Children, p: Problems) -> None:
    values = p.list_(data.get("values"), f"{path}.values")
    start = len(children["exceptions"])
    for j, exc in enumerate(values):
        epath = f"{path}.values[{j}]"
        if not isinstance(exc, dict):
            p.add(epath, "malformed", "exception is not an object")
            continue
        position = start + j
        mechanism = exc.get("mechanism")
        mech = mechanism if isinstance(mechanism, dict) else {}
        if mechanism is not None and not isinstance(mechanism, dict):
            p.add(f"{epath}.mechanism", "malformed", "mechanism is not an object")
        children["exceptions"].append(
            {
                "position": position,
                "type": p.text(exc.get("type"), f"{epath}.type", indexed=True),
                "value": p.text(exc.get("value"), f"{epath}.value"),
                "module": p.text(exc.get("module"), f"{epath}.module"),
                "mechanism_type": p.text(mech.get("type"), f"{epath}.mechanism.type"),
                "handled": p.bool_(mech.get("handled"), f"{epath}.mechanism.handled"),
                "synthetic": p.bool_(mech.get("synthetic"), f"{epath}.mechanism.synthetic"),
                "mechanism": p.json(mechanism, f"{epath}.mechanism"),
                "thread_id": p.text(exc.get("threadId"), f"{epath}.threadId"),
                "is_last": j == len(values) - 1,
            }
        )
        _traces(exc, epath, "exception", position, None, children, p)


def _threads(data: dict[str, Any], path: str, children: Children, p: Problems) -> None:
    for k, thread in enumerate(p.list_(data.get("values"), f"{path}.values")):
        tpath = f"{path}.values[{k}]"
        if not isinstance(thread, dict):
            p.add(tpath, "malformed", "thread is not an object")
            continue
        position = len(children["threads"])
        thread_id = p.text(thread.get("id"), f"{tpath}.id")
        children["threads"].append(
            {
                "position": position,
                "thread_id": thread_id,
                "name": p.text(thread.get("name"), f"{tpath}.name"),
                "current": p.bool_(thread.get("current"), f"{tpath}.current"),
                "crashed": p.bool_(thread.get("crashed"), f"{tpath}.crashed"),
                "state": p.text(thread.get("state"), f"{tpath}.state"),
            }
        )
        _traces(thread, tpath, "thread", position, thread_id, children, p)


def _traces(
    owner: dict[str, Any],
    path: str,
    kind: str,
    index: int,
    thread_id: str | None,
    children: Children,
    p: Problems,
) -> None:
    """The frames of an exception's or a thread's stack trace and of its raw (unsymbolicated)
    one, when it has them; both go to ``frames``, told apart by ``is_raw``."""
    for key, raw in (("stacktrace", False), ("rawStacktrace", True)):
        trace = owner.get(key)
        if trace is not None:
            tpath = f"{path}.{key}"
            _frames(p.dict_(trace, tpath), tpath, kind, index, raw, thread_id, children, p)


def _frames(
    trace: dict[str, Any],
    path: str,
    kind: str,
    index: int,
    raw: bool,
    thread_id: str | None,
    children: Children,
    p: Problems,
) -> None:
    rows = children["frames"]
    for n, frame in enumerate(p.list_(trace.get("frames"), f"{path}.frames")):
        if not isinstance(frame, dict):
            p.add(f"{path}.frames[{n}]", "malformed", "frame is not an object")
            continue
        row = plain_frame(frame, kind, index, raw, n, thread_id) if p.pristine else None
        if row is None:
            row = {
                "stack_kind": kind,
                "stack_index": index,
                "is_raw": raw,
                "position": n,
                "thread_id": thread_id,
                **_frame(frame, f"{path}.frames[{n}]", p),
            }
        rows.append(row)


def _frame(frame: dict[str, Any], fpath: str, p: Problems) -> dict[str, Any]:
    """A frame's own columns, every value coerced through ``p``."""
    lineno = p.int_(_first(frame, "lineNo", "lineno"), f"{fpath}.lineNo")
    context_line, pre, post = _context(frame, lineno, fpath, p)
    return {
        "function": p.text(frame.get("function"), f"{fpath}.function", indexed=True),
        "raw_function": p.text(
            _first(frame, "rawFunction", "raw_function"), f"{fpath}.rawFunction"
        ),
        "module": p.text(frame.get("module"), f"{fpath}.module"),
        "filename": p.text(frame.get("filename"), f"{fpath}.filename"),
        "abs_path": p.text(_first(frame, "absPath", "abs_path"), f"{fpath}.absPath"),
        "lineno": lineno,
        "colno": p.int_(_first(frame, "colNo", "colno"), f"{fpath}.colNo"),
        "in_app": p.bool_(_first(frame, "inApp", "in_app"), f"{fpath}.inApp"),
        "package": p.text(frame.get("package"), f"{fpath}.package"),
        "platform": p.text(frame.get("platform"), f"{fpath}.platform"),
        "instruction_addr": p.text(
            _first(frame, "instructionAddr", "instruction_addr"), f"{fpath}.instructionAddr"
        ),
        "symbol": p.text(frame.get("symbol"), f"{fpath}.symbol"),
        "symbol_addr": p.text(_first(frame, "symbolAddr", "symbol_addr"), f"{fpath}.symbolAddr"),
        "trust": p.text(frame.get("trust"), f"{fpath}.trust"),
        "context_line": context_line,
        "pre_context": pre,
        "post_context": post,
        "vars": p.json(frame.get("vars"), f"{fpath}.vars"),
    }


def _first(d: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        if d.get(key) is not None:
            return d[key]
    return None


def _context(
    frame: dict[str, Any], lineno: int | None, path: str, p: Problems
) -> tuple[str | None, list[Any] | None, list[Any] | None]:
    """(context line, lines before, lines after) from ``context`` pairs or the flat fields."""
    context = frame.get("context")
    if context is None:
        line = p.text(frame.get("context_line"), f"{path}.context_line")
        pre = frame.get("pre_context")
        post = frame.get("post_context")
        return (
            line,
            p.json(pre, f"{path}.pre_context") if pre is not None else None,
            p.json(post, f"{path}.post_context") if post is not None else None,
        )
    pairs = []
    for item in p.list_(context, f"{path}.context"):
        if isinstance(item, (list, tuple)) and len(item) == 2:
            number = p.int_(item[0], f"{path}.context")
            pairs.append((number, p.text(item[1], f"{path}.context")))
        else:
            p.add(f"{path}.context", "malformed", "context item is not a [line, text] pair")
    return _split_context(pairs, lineno)


def _split_context(
    pairs: list[tuple[int | None, str | None]], lineno: int | None
) -> tuple[str | None, list[Any] | None, list[Any] | None]:
    """(context line, lines before, lines after) of ``[line number, text]`` pairs."""
    if not pairs:
        return None, None, None
    if lineno is None or all(n != lineno for n, _ in pairs):
        return None, [t for _, t in pairs], []
    before = [t for n, t in pairs if n is not None and n < lineno]
    after = [t for n, t in pairs if n is not None and n > lineno]
    line = next(t for n, t in pairs if n == lineno)
    return line, before, after


def _breadcrumbs(data: dict[str, Any], path: str, children: Children, p: Problems) -> None:
    rows = children["breadcrumbs"]
    for k, crumb in enumerate(p.list_(data.get("values"), f"{path}.values")):
        if p.pristine and type(crumb) is dict:
            row = plain_crumb(crumb, len(rows))
            if row is not None:
                rows.append(row)
                continue
        cpath = f"{path}.values[{k}]"
        if not isinstance(crumb, dict):
            p.add(cpath, "malformed", "breadcrumb is not an object")
            continue
        children["breadcrumbs"].append(
            {
                "position": len(children["breadcrumbs"]),
                "timestamp": p.datetime(crumb.get("timestamp"), f"{cpath}.timestamp"),
                "type": p.text(crumb.get("type"), f"{cpath}.type"),
                "category": p.text(crumb.get("category"), f"{cpath}.category"),
                "level": p.text(crumb.get("level"), f"{cpath}.level"),
                "message": p.text(crumb.get("message"), f"{cpath}.message"),
                "data": p.json(crumb.get("data"), f"{cpath}.data"),
                "breadcrumb_event_id": p.text(crumb.get("event_id"), f"{cpath}.event_id"),
            }
        )


def _request(data: dict[str, Any], path: str, p: Problems) -> dict[str, Any]:
    query = data.get("query")
    return {
        "method": p.text(data.get("method"), f"{path}.method"),
        "url": p.text(data.get("url"), f"{path}.url"),
        "query_string": p.text(_query_string(query, f"{path}.query", p), f"{path}.query"),
        "query": p.json(query, f"{path}.query"),
        "fragment": p.text(data.get("fragment"), f"{path}.fragment"),
        "data": p.json(data.get("data"), f"{path}.data"),
        "headers": p.json(data.get("headers"), f"{path}.headers"),
        "cookies": p.json(data.get("cookies"), f"{path}.cookies"),
        "env": p.json(data.get("env"), f"{path}.env"),
        "inferred_content_type": p.text(
            _first(data, "inferredContentType", "inferred_content_type"),
            f"{path}.inferredContentType",
        ),
    }


def _query_string(query: Any, path: str, p: Problems) -> str | None:
    if query is None or isinstance(query, str):
        return query
    pairs: Iterable[Any] = query.items() if isinstance(query, dict) else query
    if not isinstance(pairs, (list, tuple)) and not isinstance(query, dict):
        p.add(path, "malformed", f"query is a {type(query).__name__}")
        return None
    clean: list[tuple[str, str]] = []
    for pair in pairs:
        if isinstance(pair, (list, tuple)) and len(pair) == 2:
            name, val = (
                "" if v is None else v if isinstance(v, str) else json.dumps(v) for v in pair
            )
            clean.append((name, val))
        else:
            p.add(path, "malformed", "query item is not a [name, value] pair")
    try:
        return urlencode(clean)
    except UnicodeEncodeError:
        p.add(path, "invalid_unicode", "query pair cannot be URL-encoded")
        return None


def context_rows(contexts: dict[str, Any], p: Problems) -> list[dict[str, Any]]:
    """``contexts`` rows, one per key (keys that clean to the same text kept once)."""
    rows: list[dict[str, Any]] = []
    seen: set[str | None] = set()
    for key, ctx in contexts.items():
        path = f"contexts.{key}"
        clean_key = p.text(key, path, indexed=True)
        if clean_key in seen:
            p.add(path, "malformed", "duplicate context key after cleaning")
            continue
        seen.add(clean_key)
        c = ctx if isinstance(ctx, dict) else {}
        version = c.get("version")
        rows.append(
            {
                "key": clean_key,
                "type": p.text(c.get("type"), f"{path}.type"),
                "name": p.text(c.get("name"), f"{path}.name", indexed=True),
                "version": p.text(version, f"{path}.version")
                if not isinstance(version, (dict, list))
                else None,
                "data": p.json(ctx, path),
            }
        )
    return rows
