"""A malformed event is never lost: syncs against the simulator behind a proxy that corrupts it.

The simulator serves well-formed JSON only, so a small local proxy forwards every request to
it and rewrites one event's bytes in the issue's event pages: nested 10,000 levels deep, a
string holding a byte that is not UTF-8, an id that is not hex. Each sync must archive that
event (its raw text kept, an ``event_problems`` row saying what went wrong) and the rest of
the issue as usual, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from archiver.errors import ExitCode, InvalidBody
from archiver.simulator import SimulatedOrg, SimulatorServer
from archiver.simulator.model import Issue
from archiver.storage.encode import EncodedEvent
from archiver.sync.runner import execute_sync
from archiver.sync.workers import PageJob, normalize_page
from tests.helpers import archived, event_row, query_rows, simulated, sync_settings

pytestmark = pytest.mark.slow  # end-to-end: real syncs against the simulator

TOKEN = "sim-test-token"
DEEP = 10_000

Rewrite = Callable[[bytes], bytes]


class RewritingProxy:
    """Forwards GETs to ``upstream`` and passes every 2xx body through ``rewrite``."""

    def __init__(self, upstream: str, rewrite: Rewrite) -> None:
        self.upstream = upstream.rstrip("/")
        self.rewrite = rewrite
        self.served: list[bytes] = []  # the bodies that the rewrite changed
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                proxy.forward(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._http = httpx.Client(timeout=30)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/"

    def forward(self, handler: BaseHTTPRequestHandler) -> None:
        auth = handler.headers.get("Authorization", "")
        answer = self._http.get(self.upstream + handler.path, headers={"Authorization": auth})
        body = answer.content
        if 200 <= answer.status_code < 300:
            changed = self.rewrite(body)
            if changed != body:
                self.served.append(changed)
            body = changed
        handler.send_response_only(answer.status_code)  # the simulator's Date, not ours
        for name, value in answer.headers.items():
            if name.lower() not in ("content-length", "content-encoding", "transfer-encoding"):
                handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def __enter__(self) -> RewritingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._http.close()


org, server = simulated(TOKEN, seed=7, events=400)


def _new_events(org: SimulatedOrg, n: int = 3, issue: Issue | None = None) -> list[str]:
    """``n`` new events in one issue, due for the next walk (ids oldest first)."""
    ids = org.add_events((issue or org.live_issues()[0]).id, n)
    org.advance(2)  # walks end before the server's current second
    return ids


def _sync(proxy: RewritingProxy, org: SimulatedOrg, db_url: str, workers: int = 1) -> None:
    settings = sync_settings(proxy.url, TOKEN, org, db_url, concurrency=2, workers=workers)
    outcome = execute_sync(settings)
    assert outcome.report.failures == []
    assert outcome.exit_code == ExitCode.OK


def _problems(db_url: str, event_id: str) -> list[tuple[str, str, str | None]]:
    return [
        (str(path), str(problem), detail)
        for path, problem, detail in query_rows(
            db_url,
            "SELECT p.path, p.problem, p.detail FROM event_problems p "
            "JOIN events e ON e.id = p.event_pk WHERE e.event_id = :eid ORDER BY p.position",
            eid=event_id,
        )
    ]


def _raw(db_url: str, event_id: str) -> str:
    ((raw,),) = query_rows(
        db_url, "SELECT raw_json FROM v_event_raw_json WHERE event_id = :eid", eid=event_id
    )
    return str(raw)


def _insert_before(target: str, member: bytes) -> Rewrite:
    """Puts ``member`` first in the event whose id is ``target``, wherever a page holds it."""
    anchor = b'{"id":"' + target.encode() + b'"'

    def rewrite(body: bytes) -> bytes:
        return body.replace(anchor, b"{" + member + b"," + anchor[1:])

    return rewrite


@pytest.mark.parametrize("workers", [0, 1])
def test_an_event_nested_too_deep_is_archived_with_its_raw_text(
    db_url: str, org: SimulatedOrg, server: SimulatorServer, workers: int
) -> None:
    ids = _new_events(org)
    deep = b'"deep":' + b"[" * DEEP + b"]" * DEEP
    with RewritingProxy(server.url, _insert_before(ids[1], deep)) as proxy:
        _sync(proxy, org, db_url, workers)
    assert proxy.served, "the proxy never served the deep event"
    assert archived(db_url) == org.truth()  # the deep event and the rest of its issue
    raw = _raw(db_url, ids[1])
    assert raw.startswith('{"deep":' + "[" * DEEP + "]" * DEEP + ',"id":"' + ids[1])
    assert raw.encode() in proxy.served[-1]  # exactly as received
    problems = _problems(db_url, ids[1])
    assert ("deep", "too_deep") in [(path, problem) for path, problem, _ in problems]
    # What the shallow members say is still normalized: the event's date and message.
    ((date, title),) = query_rows(
        db_url, "SELECT date_created, title FROM events WHERE event_id = :eid", eid=ids[1]
    )
    assert date is not None
    assert title
    assert _problems(db_url, ids[0]) == []


def test_an_event_holding_bytes_that_are_not_utf8_is_archived_recoverably(
    db_url: str, org: SimulatedOrg, server: SimulatorServer
) -> None:
    ids = _new_events(org)
    with RewritingProxy(server.url, _insert_before(ids[1], b'"odd":"a\xffb\xfe"')) as proxy:
        _sync(proxy, org, db_url)
    assert proxy.served, "the proxy never served the odd event"
    assert archived(db_url) == org.truth()
    raw = _raw(db_url, ids[1])
    assert raw.startswith('{"odd":"a\\udcffb\\udcfe","id":"' + ids[1])
    assert json.loads(raw)["odd"].encode("utf-8", "surrogateescape") == b"a\xffb\xfe"
    problems = _problems(db_url, ids[1])
    (detail,) = [d for path, problem, d in problems if problem == "invalid_utf8"]
    assert detail is not None
    # The detail names where the escapes stand, so the exact bytes come back from raw_json.
    assert _original_bytes(raw, detail) in proxy.served[-1]


def _original_bytes(raw: str, detail: str) -> bytes:
    """The bytes as received: each escape the detail lists (``\\udcXX``) back to byte XX."""
    offsets = [int(n) for n in detail.rsplit(": ", 1)[1].split(", ")]
    out = bytearray()
    last = 0
    for at in offsets:
        assert raw[at : at + 4] == "\\udc"
        out += raw[last:at].encode()
        out.append(int(raw[at + 4 : at + 6], 16))
        last = at + 6
    return bytes(out + raw[last:].encode())


def test_an_event_whose_id_is_not_hex_stays_one_row_as_it_changes(
    db_url: str, org: SimulatedOrg, server: SimulatorServer
) -> None:
    issue = org.live_issues()[0]
    ids = _new_events(org, 3, issue)
    runs = [0]

    def rewrite(body: bytes) -> bytes:
        odd = body.replace(f'"{ids[1]}"'.encode(), b'"not-a-hex-id"')
        if odd == body:
            return body
        anchor = b'{"id":"not-a-hex-id"'
        return odd.replace(anchor, b'{"run":%d,' % runs[0] + anchor[1:])

    with RewritingProxy(server.url, rewrite) as proxy:
        for run in range(3):
            if run:
                _new_events(org, 1, issue)  # the issue is walked again, its last minutes too
            runs[0] = run
            _sync(proxy, org, db_url)
    assert len(proxy.served) >= 3
    rows = query_rows(
        db_url,
        "SELECT e.event_id, r.raw_json FROM events e"
        " JOIN v_event_raw_json r ON r.event_pk = e.id WHERE e.legacy_id = 'not-a-hex-id'",
    )
    (event_id, raw) = rows[0]
    assert len(rows) == 1  # one row, not one per changed copy
    assert json.loads(raw)["run"] == 2  # the latest copy
    pid = issue.project.id
    assert archived(db_url) == (org.truth() - {(pid, ids[1])}) | {(pid, event_id)}


# ---------------------------------------------------------------- one page, no server

EVENT_ID = "a" * 32


def _page(*items: bytes) -> bytes:
    return b"[" + b",".join(items) + b"]"


def _event(extra: bytes = b"", event_id: str = EVENT_ID) -> bytes:
    head = b'{"eventID":"' + event_id.encode() + b'","dateCreated":"2024-06-01T12:00:00Z"'
    return head + (b"," + extra if extra else b"") + b',"entries":[]}'


def _normalized(body: bytes, **job: Any) -> list[EncodedEvent]:
    out = normalize_page(body, PageJob(project_id=1, issue_id=2, dialect="sqlite", **job))
    assert isinstance(out, list)
    assert all(isinstance(ev, EncodedEvent) for ev in out)
    return out


def _problem_names(ev: EncodedEvent) -> list[str]:
    return [row[2] for row in ev.children.get("event_problems", [])]


def test_an_event_that_parses_but_is_too_deep_to_scrub_is_archived_from_its_members() -> None:
    # Deep enough for copy.deepcopy (scrubbing) to exceed the recursion limit, not for json.
    nested = b'"context":{"k":' + b"[" * 600 + b"]" * 600 + b"}"
    body = _page(_event(nested), _event(event_id="b" * 32))
    first, second = _normalized(body, scrub=("extra",), scrub_key="k")
    assert first.event_id == EVENT_ID
    assert event_row(first)["date_created"] is not None
    assert _problem_names(first) == ["too_deep"]
    assert second.event_id == "b" * 32
    assert _problem_names(second) == []


def test_a_deep_item_that_is_not_an_object_is_kept_whole() -> None:
    deep = b"[" * DEEP + b"]" * DEEP
    first, second = _normalized(_page(deep, _event()))
    assert event_row(first)["raw_json"] == deep.decode()
    assert _problem_names(first)[:1] == ["too_deep"]
    assert second.event_id == EVENT_ID


def test_encoded_lone_surrogates_are_escaped_without_an_invalid_utf8_problem() -> None:
    # json.loads accepts a lone surrogate encoded in UTF-8: it is valid JSON as sent.
    (ev,) = _normalized(_page(_event(b'"message":"x\xed\xa0\x80"')))
    raw = event_row(ev)["raw_json"]
    assert '"message":"x\\ud800"' in raw
    assert "invalid_utf8" not in _problem_names(ev)
    assert event_row(ev)["message"] == "x\ufffd"


def test_a_byte_outside_any_string_is_still_an_invalid_body() -> None:
    with pytest.raises(InvalidBody):
        normalize_page(_page(_event(), b"\xff"), PageJob(1, 2, "sqlite"))
