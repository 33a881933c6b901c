"""Fast paths of :mod:`archiver.normalize.entries` for values that need no coercion.

In a pristine event (:attr:`~archiver.normalize.coerce.Problems.pristine`: no NUL, lone
surrogate or non-finite number anywhere in its JSON), a value that already has its column's
type comes out of coercion unchanged and records no problem. Most frames, tags and
breadcrumbs are like that, and checking the types directly skips the coercions and the paths
they format for a problem that never comes. Each function here returns the row the full way
would give, or None (or False) when any value needs it: the caller then takes the full way.
Property tests compare both ways (``tests/normalize/test_plain_*.py``).
"""

from __future__ import annotations

from typing import Any

from archiver.normalize.coerce import INDEXED_MAX, parse_timestamp


def plain_indexed(value: Any) -> bool:
    """Text that ``Problems.text`` keeps as it is in an indexed column (pristine event)."""
    return type(value) is str and len(value) <= INDEXED_MAX


_INT64 = range(-(2**63), 2**63)


def plain_frame(  # noqa: C901 - one flat pass on purpose (see the docstring)
    frame: dict[str, Any], kind: str, index: int, raw: bool, n: int, thread_id: str | None
) -> dict[str, Any] | None:
    """The ``frames`` row of ``entries._frames`` (its stack's columns, then
    ``entries._frame``'s) when every value already has its column's type; else None.

    Only for a pristine event (``Problems.pristine``: no text to clean anywhere), where
    coercion changes nothing and records nothing for such values. Most frames are like that,
    and skipping the coercions, with the ~20 paths they format for a problem that never
    comes, makes normalization much cheaper (frames are most of an event's rows). Any other
    value (a number as text, a long function name, a malformed context) goes the full way.
    Written out flat, the row built once: this runs for every frame of every event.
    """
    get = frame.get
    function = get("function")
    raw_function = get("rawFunction")
    if raw_function is None:
        raw_function = get("raw_function")
    module = get("module")
    filename = get("filename")
    abs_path = get("absPath")
    if abs_path is None:
        abs_path = get("abs_path")
    package = get("package")
    platform = get("platform")
    instruction_addr = get("instructionAddr")
    if instruction_addr is None:
        instruction_addr = get("instruction_addr")
    symbol = get("symbol")
    symbol_addr = get("symbolAddr")
    if symbol_addr is None:
        symbol_addr = get("symbol_addr")
    trust = get("trust")
    for value in (
        function,
        raw_function,
        module,
        filename,
        abs_path,
        package,
        platform,
        instruction_addr,
        symbol,
        symbol_addr,
        trust,
    ):
        if value is not None and type(value) is not str:
            return None
    if function is not None and len(function) > INDEXED_MAX:
        return None
    lineno = get("lineNo")
    if lineno is None:
        lineno = get("lineno")
    colno = get("colNo")
    if colno is None:
        colno = get("colno")
    in_app = get("inApp")
    if in_app is None:
        in_app = get("in_app")
    if (
        not (lineno is None or (type(lineno) is int and lineno in _INT64))
        or not (colno is None or (type(colno) is int and colno in _INT64))
        or (in_app is not None and type(in_app) is not bool)
    ):
        return None
    context = _plain_context(frame, lineno)
    if context is None:
        return None
    return {
        "stack_kind": kind,
        "stack_index": index,
        "is_raw": raw,
        "position": n,
        "thread_id": thread_id,
        "function": function,
        "raw_function": raw_function,
        "module": module,
        "filename": filename,
        "abs_path": abs_path,
        "lineno": lineno,
        "colno": colno,
        "in_app": in_app,
        "package": package,
        "platform": platform,
        "instruction_addr": instruction_addr,
        "symbol": symbol,
        "symbol_addr": symbol_addr,
        "trust": trust,
        "context_line": context[0],
        "pre_context": context[1],
        "post_context": context[2],
        "vars": get("vars"),
    }


def _plain_context(
    frame: dict[str, Any], lineno: int | None
) -> tuple[str | None, list[Any] | None, list[Any] | None] | None:
    """``entries._context`` for plain values (lines as ``[int, str]`` pairs); None otherwise."""
    context = frame.get("context")
    if context is None:
        line = frame.get("context_line")
        if line is not None and type(line) is not str:
            return None
        return line, frame.get("pre_context"), frame.get("post_context")
    if type(context) is not list:
        return None
    if not context:
        return None, None, None
    return _plain_lines(context, lineno)


def _plain_lines(
    context: list[Any], lineno: int | None
) -> tuple[str | None, list[Any], list[Any]] | None:
    """``entries._split_context`` of ``[int, str]`` pairs in one pass; None for any other
    item."""
    lines: list[Any] = []
    before: list[Any] = []
    after: list[Any] = []
    line = None
    found = False
    for item in context:
        if type(item) is not list or len(item) != 2:
            return None
        number, text = item
        if type(number) is not int or type(text) is not str or number not in _INT64:
            return None
        lines.append(text)
        if lineno is None:
            continue
        if number < lineno:
            before.append(text)
        elif number > lineno:
            after.append(text)
        elif not found:
            line, found = text, True
    if not found:
        return None, lines, []
    return line, before, after


def plain_crumb(crumb: dict[str, Any], position: int) -> dict[str, Any] | None:
    """``entries._breadcrumbs``' row when its values need no coercion; else None.

    As :func:`plain_frame`: text is text, the timestamp parses, and nothing is recorded.
    """
    get = crumb.get
    kind, category, level = get("type"), get("category"), get("level")
    message, event_id = get("message"), get("event_id")
    for value in (kind, category, level, message, event_id):
        if value is not None and type(value) is not str:
            return None
    stamp = get("timestamp")
    when = None
    if stamp is not None and stamp != "":
        when = parse_timestamp(stamp)
        if when is None:  # malformed: the full way records it
            return None
    return {
        "position": position,
        "timestamp": when,
        "type": kind,
        "category": category,
        "level": level,
        "message": message,
        "data": get("data"),
        "breadcrumb_event_id": event_id,
    }
