"""Normalization of real payloads (the seeds) and of every odd shape, exactly."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from archiver.normalize import (
    CHILD_NAMES,
    NUL_SUBSTITUTE,
    dump_raw,
    normalize_event,
    normalize_issue,
    normalize_project,
    normalize_release,
)
from archiver.storage.models import EVENT_CHILD_TABLES, Base
from archiver.storage.stacks import FRAME_COLUMNS

FIXTURES = Path(__file__).resolve().parents[2] / "archiver" / "simulator" / "fixtures"
UTC = dt.timezone.utc


def load(name: str):
    return json.loads((FIXTURES / name).read_text())


def child(ev, table):
    return ev.children[table]


def test_child_names_are_the_schema_child_tables_in_order():
    # normalize names the child tables itself (it does not import the SQLAlchemy models);
    # its frames rows are stored as event_stacks and frame_vars rows (and shared stacks)
    stored = tuple(t.name for t in EVENT_CHILD_TABLES)
    i = CHILD_NAMES.index("frames")
    assert stored == (*CHILD_NAMES[:i], "event_stacks", "frame_vars", *CHILD_NAMES[i + 1 :])


def test_row_keys_match_the_tables():
    ev = normalize_event(load("seed_000_event_detail.json"), project_id=1)
    assert tuple(ev.children) == CHILD_NAMES
    events = Base.metadata.tables["events"]
    assert set(ev.event) == {c.name for c in events.c} - {
        "id",
        "archived_at",
        "updated_at",
        "raw_sha256",
        "raw_zstd",  # the writer's encoding of raw_json (archiver.storage.rawjson)
        "raw_dict_id",
    }
    for table in EVENT_CHILD_TABLES:
        if table.name in ("event_stacks", "frame_vars"):
            continue
        expected = {c.name for c in table.c} - {"event_pk"}
        for row in ev.children[table.name]:
            assert set(row) == expected, table.name
    assert ev.children["frames"]
    for row in ev.children["frames"]:  # the columns of the frames view
        assert set(row) == set(FRAME_COLUMNS) - {"event_pk"}
    issue = normalize_issue(load("example_api_getOrganizationIssue__ReturnAnIssue.json"))
    assert set(issue) == {c.name for c in Base.metadata.tables["issues"].c} - {
        "archived_at",
        "updated_at",
    }
    release = normalize_release(load("seed_000_event_detail.json")["release"])
    assert set(release) == {c.name for c in Base.metadata.tables["releases"].c} - {"archived_at"}
    project = normalize_project(
        load("example_api_listOrganizationProjects__ListAnOrganization_sProjects.json")[0], "acme"
    )
    assert set(project) == {c.name for c in Base.metadata.tables["projects"].c} - {
        "archived_at",
        "updated_at",
    }


def test_seed_000_event_detail_exactly():
    payload = load("seed_000_event_detail.json")
    ev = normalize_event(payload, project_id=5, issue_id=9, has_detail=True)
    assert ev.event_id == "9999aaaaca8b46d797c23c6077c6ff01"
    assert ev.event["legacy_id"] == "9999aaafcc8b46d797c23c6077c6ff01"
    assert ev.project_id == 5  # the payload names no project: the argument is used
    assert ev.issue_id == 1341191803  # the payload's groupID wins over the argument
    assert [(t["key"], t["value"]) for t in child(ev, "event_tags")] == [
        ("browser", "Chrome 83.0.4103"),
        ("browser.name", "Chrome"),
        ("environment", "prod"),
        ("handled", "yes"),
        ("level", "error"),
        ("mechanism", "generic"),
    ]
    (exc,) = child(ev, "exceptions")
    assert exc["type"] == "ForbiddenError"
    assert exc["is_last"]
    assert exc["position"] == 0
    assert exc["value"] == "GET /organizations/hellboy-meowmeow/users/ 403"
    assert exc["mechanism_type"] == "generic"
    assert exc["handled"] is True
    frames = [f for f in child(ev, "frames") if f["stack_kind"] == "exception"]
    assert sum(not f["is_raw"] for f in frames) == 2
    assert sum(f["is_raw"] for f in frames) == 2
    first = next(f for f in frames if not f["is_raw"] and f["position"] == 0)
    assert first["function"] == "ignoreOnError"
    assert first["lineno"] == 71
    assert first["colno"] == 23
    assert first["context_line"] == "            return fn.apply(this, wrappedArguments);"
    assert len(first["pre_context"]) == 5
    assert len(first["post_context"]) == 5
    assert first["in_app"] is False
    assert len(child(ev, "breadcrumbs")) == 3
    assert all(b["timestamp"].tzinfo is not None for b in child(ev, "breadcrumbs"))
    (req,) = child(ev, "requests")
    assert req["url"] == "https://sentry.io/organizations/hellboy-meowmeow/issues/"
    contexts = {c["key"]: c for c in child(ev, "contexts")}
    assert {"browser", "os"} <= set(contexts)
    assert contexts["browser"]["name"] == "Chrome"
    assert contexts["browser"]["version"] == "83.0.4103"
    e = ev.event
    assert e["date_created"] == dt.datetime(2020, 6, 17, 22, 26, 56, 98086, tzinfo=UTC)
    assert e["date_received"] == dt.datetime(2020, 6, 17, 22, 26, 56, 428721, tzinfo=UTC)
    assert (e["user_id"], e["user_email"], e["user_name"], e["user_ip_address"]) == (
        "550747",
        "hell@boy.cat",
        "Hell Boy",
        "192.168.1.1",
    )
    assert e["user_username"] is None
    assert e["user_data"] == {"isStaff": False}
    assert e["environment"] == "prod"
    assert e["level"] == "error"
    assert e["platform"] == "javascript"
    assert e["release"] == "b65bc521378269d3eaefdc964f8ef56621414943"
    assert ev.release is not None
    assert ev.release["version"] == e["release"]
    assert ev.release["commit_count"] == 11
    assert ev.release["deploy_count"] == 1
    (err,) = child(ev, "event_errors")
    assert err["type"] == "js_invalid_sourcemap_location"
    assert err["data"] == {
        "column": 8,
        "source": "https://s1.sentry-cdn.com/_static/bloopbloop/sentry/dist/app.js.map",
        "row": 15,
    }
    assert e["has_detail"]
    assert e["is_full"]
    assert e["problem_count"] == 0
    assert json.loads(e["raw_json"]) == payload
    assert list(json.loads(e["raw_json"])) == list(payload)  # key order kept


def test_seed_002_lookup_event_old_shapes():
    lookup = load("seed_002_eventid_lookup.json")
    ev = normalize_event(lookup["event"], project_id=1)
    entries = [(r["type"]) for r in child(ev, "event_entries")]
    assert "stacktrace" in entries
    assert "message" in entries
    frames = [f for f in child(ev, "frames") if f["stack_kind"] == "stacktrace"]
    assert frames
    assert all(f["stack_index"] == entries.index("stacktrace") for f in frames)
    assert any(isinstance(f["vars"], dict) and f["vars"] for f in frames)
    assert ev.event["message"]
    (req,) = child(ev, "requests")
    assert isinstance(req["query"], list)
    assert req["query_string"]
    assert ev.event["problem_count"] == 0


def test_seed_003_list_events_template_and_query_string():
    for payload in load("seed_003_issue_events.json"):
        ev = normalize_event(payload, project_id=1, issue_id=1)
        types = [r["type"] for r in child(ev, "event_entries")]
        assert "template" in types
        template = next(r for r in child(ev, "event_entries") if r["type"] == "template")
        assert template["data"] is not None
        (req,) = child(ev, "requests")
        assert isinstance(req["query"], str)
        assert req["query_string"] == req["query"]
        assert ev.event["extra"]["url"] == "http://example.org/foo/bar/"


def test_seed_004_and_examples_normalize_without_problems():
    for name in [
        "seed_004_latest_event.json",
        "seed_001_event_detail.json",
        "example_api_getOrganizationIssueEvent__ReturnAnIssueEvent.json",
    ]:
        payload = load(name)
        ev = normalize_event(payload, project_id=1)
        assert ev.event["raw_json"]
        assert json.loads(ev.event["raw_json"]) == payload
        assert ev.event["problem_count"] == 0, child(ev, "event_problems")
    for payload in load(
        "example_api_listOrganizationIssueEvents__ReturnAListOfErrorEventsBoundToAnIssue.json"
    ):
        ev = normalize_event(payload)
        assert ev.project_id == 49271
        assert ev.issue_id == 1889724436
        assert not ev.event["is_full"]
        assert ev.event["type"] == "error"


def _event(**extra):
    base = {"eventID": "a" * 32, "projectID": "7", "groupID": "8"}
    base.update(extra)
    return base


def test_chained_exceptions_and_threads():
    payload = _event(
        entries=[
            {
                "type": "exception",
                "data": {
                    "values": [
                        {
                            "type": "KeyError",
                            "value": "x",
                            "stacktrace": {"frames": [{"function": "a"}]},
                        },
                        {
                            "type": "ValueError",
                            "value": "y",
                            "threadId": 3,
                            "mechanism": {"type": "x", "handled": "false"},
                            "stacktrace": None,
                        },
                    ]
                },
            },
            {
                "type": "threads",
                "data": {
                    "values": [
                        {
                            "id": 3,
                            "crashed": True,
                            "name": "main",
                            "stacktrace": {"frames": [{"function": "f"}, {"function": "g"}]},
                        },
                        {"id": 4, "stacktrace": None},
                    ]
                },
            },
        ]
    )
    ev = normalize_event(payload)
    excs = child(ev, "exceptions")
    assert [(x["type"], x["is_last"]) for x in excs] == [("KeyError", False), ("ValueError", True)]
    assert excs[1]["handled"] is False
    assert excs[1]["thread_id"] == "3"
    threads = child(ev, "threads")
    assert [t["thread_id"] for t in threads] == ["3", "4"]
    assert threads[0]["crashed"] is True
    kinds = [
        (f["stack_kind"], f["stack_index"], f["position"], f["thread_id"])
        for f in child(ev, "frames")
    ]
    assert kinds == [("exception", 0, 0, None), ("thread", 0, 0, "3"), ("thread", 0, 1, "3")]


def test_nulls_where_lists_are_usual_and_malformed_fields():
    payload = _event(entries=None, tags=None, user=None, contexts=None, errors=None, sdk=None)
    ev = normalize_event(payload)
    assert ev.event["problem_count"] == 0
    assert not ev.event["is_full"]
    bad = _event(
        entries="oops",
        tags={"a": 1},
        user=["x"],
        dateCreated="yesterday",
        size="big",
        contexts={"os": "linux"},
    )
    ev = normalize_event(bad)
    problems = {(p["path"], p["problem"]) for p in child(ev, "event_problems")}
    assert ("entries", "malformed") in problems
    assert ("tags", "malformed") in problems
    assert ("dateCreated", "malformed") in problems
    assert ("size", "malformed") in problems
    assert ev.event["date_created"] is None
    assert ev.event["raw_json"] == dump_raw(bad)
    assert child(ev, "contexts")[0]["data"] == "linux"


def test_request_query_and_data_shapes():
    for data in [{"a": 1}, "raw body", [1, 2], None]:
        payload = _event(
            entries=[
                {
                    "type": "request",
                    "data": {
                        "url": "http://x/",
                        "query": [["q", "1"], ["r", None]],
                        "data": data,
                        "headers": [["Cookie", "a=b"]],
                        "inferredContentType": "application/json",
                    },
                }
            ]
        )
        (req,) = child(normalize_event(payload), "requests")
        assert req["query_string"] == "q=1&r="
        assert req["data"] == data
        assert req["inferred_content_type"] == "application/json"


def test_breadcrumb_timestamps_iso_and_float():
    payload = _event(
        entries=[
            {
                "type": "breadcrumbs",
                "data": {
                    "values": [
                        {"timestamp": "2024-01-02T03:04:05.123Z", "message": "iso"},
                        {
                            "timestamp": 1704164645.5,
                            "message": "float",
                            "level": None,
                            "data": None,
                        },
                    ]
                },
            }
        ]
    )
    crumbs = child(normalize_event(payload), "breadcrumbs")
    assert crumbs[0]["timestamp"] == dt.datetime(2024, 1, 2, 3, 4, 5, 123000, tzinfo=UTC)
    assert crumbs[1]["timestamp"] == dt.datetime(2024, 1, 2, 3, 4, 5, 500000, tzinfo=UTC)


def test_security_reports_spans_debugmeta_and_unknown_entries_are_kept():
    kinds = [
        "csp",
        "hpkp",
        "expectct",
        "expectstaple",
        "debugmeta",
        "template",
        "message",
        "brand-new",
    ]
    payload = _event(
        entries=[{"type": k, "data": {"k": k}} for k in kinds]
        + [{"type": "spans", "data": [{"span_id": "1"}]}]
    )
    rows = child(normalize_event(payload), "event_entries")
    assert [r["type"] for r in rows] == [*kinds, "spans"]
    assert rows[-1]["data"] == [{"span_id": "1"}]
    assert all(r["data"] for r in rows)


def test_legacy_numeric_id_and_uuid_event_id():
    ev = normalize_event(
        {"id": 12345, "eventID": "ABCDEFAB-CDEF-ABCD-EFAB-CDEFABCDEFAB"}, project_id=1
    )
    assert ev.event_id == "abcdefabcdefabcdefabcdefabcdefab"
    assert ev.event["legacy_id"] == "12345"
    ev = normalize_event({"message": "no id"}, project_id=1)
    assert len(ev.event_id) == 32
    assert [p["problem"] for p in child(ev, "event_problems")] == ["missing_event_id"]
    assert normalize_event({"message": "no id"}, project_id=1).event_id == ev.event_id


def test_nul_unicode_and_long_strings():
    payload = _event(
        title="nul\x00here ✓ 漢字 🙂",
        tags=[{"key": "k", "value": "v" * 5000}],
        entries=[{"type": "exception", "data": {"values": [{"type": "E\x00", "value": "\ud800"}]}}],
    )
    ev = normalize_event(payload)
    assert ev.event["title"] == f"nul{NUL_SUBSTITUTE}here ✓ 漢字 🙂"
    (tag,) = child(ev, "event_tags")
    assert len(tag["value"]) == 1000
    (exc,) = child(ev, "exceptions")
    assert exc["type"] == f"E{NUL_SUBSTITUTE}"
    assert exc["value"] == "\ufffd"
    problems = {p["problem"] for p in child(ev, "event_problems")}
    assert {"nul_replaced", "truncated", "invalid_unicode"} <= problems
    assert json.loads(ev.event["raw_json"]) == payload  # the original, NUL and all
    ev.event["raw_json"].encode("utf-8")  # storable


def test_hundreds_of_frames():
    frames = [{"function": f"f{i}", "lineNo": i, "inApp": i % 2 == 0} for i in range(700)]
    payload = _event(entries=[{"type": "stacktrace", "data": {"frames": frames}}])
    rows = child(normalize_event(payload), "frames")
    assert [r["position"] for r in rows] == list(range(700))


def test_issue_prefers_lifetime_counts():
    issue = load("example_api_getOrganizationIssue__ReturnAnIssue.json")
    row = normalize_issue({**issue, "count": "3", "lifetime": {"count": "150", "userCount": 7}})
    assert row["times_seen"] == 150
    assert row["user_count"] == 7
    assert normalize_issue(issue)["times_seen"] == int(issue["count"])


def test_project_id_is_required():
    with pytest.raises(ValueError, match=r"^the event names no project and none was given$"):
        normalize_event({"eventID": "a" * 32})
