"""``POST /api/traces`` through real HTTP, and the trace service behind it, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.clock import as_utc
from bot.compose import compose
from bot.errors import NotFound, UserError
from bot.store.db import transaction
from bot.store.models import Incident, Trace
from bot.traces import ingest as traces
from bot.traces.rules import FailureRules
from bot.web import create_app
from tests.alerts.payloads import am_alert, am_payload
from tests.conftest import Warroom, make_settings
from tests.support import ServerThread, free_port

NDJSON = {"Content-Type": "application/x-ndjson"}




def event(request_id: str, *, service: str = "llm-gateway", at: datetime | None = None, failing: bool = False,
          **fields: Any) -> dict[str, Any]:
    body = {"request_id": request_id, "timestamp": (at or datetime.now(timezone.utc)).isoformat(),
            "service": service, "bundle_version": "b-42", "model": "primary-70b", "prompt_hash": "sha256:ab12",
            "input": "What is the refund window?", "output": "30 days.", "hallucination_score": 0.1,
            "latency_ms": 420.0, "schema_valid": True}
    if failing:
        body["hallucination_score"] = 0.92
    return {**body, **fields}


def rows(warroom: Warroom) -> dict[str, Trace]:
    with transaction(warroom.runtime.engine) as session:
        return {t.request_id: t for t in session.execute(select(Trace)).scalars()}


def open_incident(warroom: Warroom, service: str = "llm-gateway") -> Incident:
    response = warroom.alertmanager(am_payload([am_alert(service=service)], group=service))
    assert response.status_code == 200 and response.json()["status"] == "opened", response.text
    with transaction(warroom.runtime.engine) as session:
        return session.get(Incident, response.json()["incident_id"])


# --- intake ---------------------------------------------------------------------------------


def test_bad_events_are_rejected_one_by_one_and_the_rest_stored(warroom):
    batch = [
        event("ok-1"),
        {"request_id": "no-time", "service": "llm-gateway"},
        event("ok-2", failing=True, tool_calls=[{"name": "search", "ok": False}], trace_flags="01"),
        event("bad-score", hallucination_score=2.0),
        "not an object",
        event("too-long-model", model="m" * 201),
    ]
    response = warroom.post("/api/traces", batch)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["accepted"], body["duplicates"]) == (2, 0)
    assert [(r["index"], r["request_id"]) for r in body["rejected"]] == [
        (1, "no-time"), (3, "bad-score"), (4, None), (5, "too-long-model")]
    assert body["rejected"][0]["problems"] == [{"field": "timestamp", "message": "Field required"}]
    assert body["rejected"][1]["problems"][0]["field"] == "hallucination_score"
    assert body["rejected"][3]["problems"] == [{"field": "model", "message": "longer than 200 characters"}]

    stored = rows(warroom)
    assert set(stored) == {"ok-1", "ok-2"}
    healthy, failing = stored["ok-1"], stored["ok-2"]
    assert (healthy.failed, healthy.failure_types) == (False, [])
    assert (failing.failed, failing.failure_types) == (True, ["hallucination", "tool_error"])
    assert (failing.service, failing.model, failing.prompt_hash, failing.bundle_version) == (
        "llm-gateway", "primary-70b", "sha256:ab12", "b-42")
    assert failing.data["output"] == "30 days." and failing.data["attributes"] == {"trace_flags": "01"}
    assert failing.data["tool_calls"] == [{"name": "search", "ok": False, "error": None}]
    assert as_utc(failing.timestamp) == datetime.fromisoformat(batch[2]["timestamp"])


def test_an_event_sent_again_is_ignored_within_and_across_batches(warroom):
    at = datetime.now(timezone.utc)
    first = warroom.post("/api/traces", [event("a", at=at), event("b", at=at), event("a", at=at, output="changed")])
    assert (first.json()["accepted"], first.json()["duplicates"], first.json()["rejected"]) == (2, 1, [])
    again = warroom.post("/api/traces", [event("a", at=at), event("b", at=at), event("c", at=at)]).json()
    assert (again["accepted"], again["duplicates"]) == (1, 2)
    stored = rows(warroom)
    assert set(stored) == {"a", "b", "c"} and stored["a"].data["output"] == "30 days."  # the first copy wins


def test_a_request_id_sent_with_another_time_or_service_is_another_trace(warroom):
    # A trace is known by service, time and request id: a retry repeats all three.
    at = datetime.now(timezone.utc)
    warroom.post("/api/traces", [event("a", at=at)])
    later = warroom.post("/api/traces", [event("a", at=at + timedelta(seconds=1)), event("a", at=at),
                                         event("a", at=at, service="search-api")]).json()
    assert (later["accepted"], later["duplicates"]) == (2, 1)
    with transaction(warroom.runtime.engine) as session:
        assert session.execute(select(func.count()).select_from(Trace)).scalar_one() == 3


def test_ndjson_by_content_type_or_detected(warroom):
    lines = "\n".join(json.dumps(event(f"nd-{i}")) for i in range(3)) + "\n\n"
    declared = warroom.post("/api/traces", content=lines.encode(), headers=NDJSON)
    assert declared.status_code == 200 and declared.json()["accepted"] == 3

    detected = "\r\n".join(json.dumps(event(f"det-{i}")) for i in range(2)).encode()
    response = warroom.post("/api/traces", content=detected, headers={"Content-Type": "application/json"})
    assert response.status_code == 200 and response.json()["accepted"] == 2

    one_line = warroom.post("/api/traces", content=json.dumps(event("single")).encode(), headers=NDJSON)
    assert one_line.json()["accepted"] == 1
    assert len(rows(warroom)) == 6


def test_ndjson_line_that_is_not_an_object_is_rejected_alone(warroom):
    body = f'{json.dumps(event("x"))}\n[1, 2]\n{json.dumps(event("y"))}\n'.encode()
    result = warroom.post("/api/traces", content=body, headers=NDJSON).json()
    assert result["accepted"] == 2
    assert result["rejected"] == [{"index": 1, "request_id": None,
                                   "problems": [{"field": "$", "message": "expected a JSON object, got list"}]}]


def test_values_no_database_can_store_reject_only_their_event(warroom):
    nul = event("nul", output="a\u0000b")
    long_output = event("long", output="x" * (warroom.runtime.settings.max_value_length + 1))
    surrogate = json.dumps(event("surrogate", output="PLACEHOLDER")).replace("PLACEHOLDER", "\\ud800")
    body = f'[{json.dumps(event("fine"))}, {json.dumps(nul)}, {surrogate}, {json.dumps(long_output)}]'.encode()
    result = warroom.post("/api/traces", content=body).json()
    assert result["accepted"] == 1
    assert [(r["request_id"], r["problems"][0]["field"]) for r in result["rejected"]] == [
        ("nul", "output"), ("surrogate", "output"), ("long", "output")]
    assert set(rows(warroom)) == {"fine"}


def test_values_the_stored_event_leaves_out_are_checked_too(warroom):
    """The quick storable check reads the event as stored; a string the model turns into a number
    or drops (a tool call's unknown field) still rejects its event, as when the whole body was walked."""
    limit = warroom.runtime.settings.max_value_length
    batch = [event("fine", tool_calls=[{"name": "search", "ok": True}]),
             event("coerced", tokens="0" * limit + "1"),
             event("dropped", tool_calls=[{"name": "search", "ok": True, "debug": "a\u0000b"}]),
             event("moved", trace_note="y" * (limit + 1)),
             event("deep", attributes={"a": json.loads("[" * 40 + "]" * 40)})]
    result = warroom.post("/api/traces", batch).json()
    assert result["accepted"] == 1
    assert [(r["request_id"], r["problems"][0]["field"].split(".0.0")[0]) for r in result["rejected"]] == [
        ("coerced", "tokens"), ("dropped", "tool_calls.0.debug"), ("moved", "trace_note"), ("deep", "attributes.a")]
    assert set(rows(warroom)) == {"fine"}


@pytest.mark.parametrize("token", [None, "wrong-token"])
def test_traces_need_the_alert_token(warroom, token):
    response = warroom.post("/api/traces", [event("a")], token=token)
    assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"
    assert warroom.count(Trace) == 0


@pytest.mark.parametrize(("content", "headers", "status", "says"), [
    (json.dumps(event("one")).encode(), {}, 400, "JSON dict"),
    (b"", {}, 400, "empty"),
    (b"   \n \n", NDJSON, 400, "empty"),
    (b'[{"request_id": "a",', {}, 400, "not valid JSON"),
    (b'[{"request_id": "a", "latency_ms": NaN}]', {}, 400, "NaN"),
    (b'"just a string"', {}, 400, "JSON str"),
    (b"[\xff\xfe]", {}, 400, "UTF-8"),
    (b'{"request_id": "a", "timestamp": "2026-03-14T02:00:00Z"}\n{"request_id": ', NDJSON, 400, "line 2"),
    (b"[" * 5000 + b"]" * 5000, {}, 400, "nesting"),
], ids=["object", "empty", "blank-ndjson", "cut", "nan", "string", "utf8", "ndjson-broken-line", "deep"])
def test_a_body_that_is_not_a_batch_is_4xx_and_stores_nothing(warroom, content, headers, status, says):
    response = warroom.post("/api/traces", content=content, headers=headers)
    assert response.status_code == status, response.text
    assert says in response.json()["error"]
    assert warroom.count(Trace) == 0


def test_a_body_over_the_size_limit_is_413(warroom):
    limit = warroom.runtime.settings.max_body_bytes
    batch = [event(f"r{i}", output="x" * 10_000) for i in range(limit // 10_000 + 1)]
    response = warroom.post("/api/traces", batch)
    assert response.status_code == 413
    assert warroom.count(Trace) == 0


def test_counts_reach_the_metrics(warroom):
    at = datetime.now(timezone.utc)
    warroom.post("/api/traces", [event("m1", at=at), event("m1", at=at), {"request_id": "bad"}])
    exposition = warroom.http.get("/metrics").text
    assert 'warroom_traces_received_total{outcome="accepted"} 1.0' in exposition
    assert 'warroom_traces_received_total{outcome="duplicate"} 1.0' in exposition
    assert 'warroom_traces_received_total{outcome="rejected"} 1.0' in exposition


def test_database_down_is_503_so_the_sender_retries(tmp_path):
    dead = make_settings(f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere")
    warroom = compose(dead)
    runtime = warroom.runtime
    server = ServerThread(create_app(warroom)).start()
    try:
        response = Warroom(warroom, server.url).post("/api/traces", [event("a")])
        assert response.status_code == 503 and response.headers["retry-after"] == "5"
        assert response.json()["error_id"]
    finally:
        server.stop()
        runtime.engine.dispose()


# --- linking to incidents -------------------------------------------------------------------


def test_failing_traces_of_the_service_link_to_its_open_incident(warroom):
    incident = open_incident(warroom)
    opened = as_utc(incident.opened_at)
    batch = [
        event("now-failing", failing=True),
        event("now-schema", schema_valid=False),
        event("early-failing", at=opened - timedelta(minutes=10), failing=True),
        event("healthy"),
        event("other-service", service="search-api", failing=True),
        event("long-before", at=opened - timedelta(minutes=30), failing=True),
    ]
    assert warroom.post("/api/traces", batch).json()["accepted"] == 6

    stored = rows(warroom)
    linked = {rid for rid, t in stored.items() if t.incident_id == incident.id}
    assert linked == {"now-failing", "now-schema", "early-failing"}
    with transaction(warroom.runtime.engine) as session:
        assert [t.request_id for t in traces.failing_traces(session, incident.id)] == [
            "early-failing", "now-failing", "now-schema"]
        assert [t.request_id for t in traces.failing_traces(session, incident.id, limit=1)] == ["early-failing"]
        assert traces.counts_by_failure(session, incident.id) == {"hallucination": 2, "schema_invalid": 1}


def test_traces_of_a_resolved_incident_are_not_linked_afterwards(warroom):
    incident = open_incident(warroom)
    resolved = warroom.alertmanager(am_payload([am_alert(status="resolved", ends="2026-03-14T02:20:00Z")],
                                               group="llm-gateway"))
    assert warroom.incident(resolved.json()["incident_id"])["status"] == "resolved"
    warroom.post("/api/traces", [event("late", failing=True)])
    assert rows(warroom)["late"].incident_id is None
    with transaction(warroom.runtime.engine) as session:
        assert traces.counts_by_failure(session, incident.id) == {}


def test_failures_sent_before_the_alert_join_the_incident_when_it_opens(warroom):
    """Failures from the 15 minutes before the alert are the incident's evidence; older ones are not."""
    warroom.post("/api/traces", [event("before", at=datetime.now(timezone.utc) - timedelta(minutes=5), failing=True),
                                 event("way-before", at=datetime.now(timezone.utc) - timedelta(hours=1), failing=True)])
    incident = open_incident(warroom)
    assert {t.request_id for t in rows(warroom).values() if t.incident_id == incident.id} == {"before"}
    with transaction(warroom.runtime.engine) as session:
        incident = session.get(Incident, incident.id)
        assert traces.link_failing_traces(session, incident) == 0  # already linked
        assert traces.link_failing_traces(session, incident, window_before=timedelta(hours=2)) == 1
    assert {t.request_id for t in rows(warroom).values() if t.incident_id == incident.id} == {"before", "way-before"}


def test_prune_deletes_old_traces_but_keeps_linked_ones(warroom):
    incident = open_incident(warroom)
    now = datetime.now(timezone.utc)
    warroom.post("/api/traces", [event("linked", failing=True), event("old", at=now - timedelta(days=40)),
                                 event("recent-healthy")])
    with transaction(warroom.runtime.engine) as session:
        assert traces.prune(session, older_than=now - timedelta(days=30)) == 1
    assert set(rows(warroom)) == {"linked", "recent-healthy"}
    with transaction(warroom.runtime.engine) as session:
        assert traces.prune(session, older_than=now + timedelta(days=1)) == 1
    assert {rid: t.incident_id for rid, t in rows(warroom).items()} == {"linked": incident.id}


# --- labels ---------------------------------------------------------------------------------


def test_a_label_is_stored_merged_and_replaces_the_detectors_verdict_in_counts(warroom):
    incident = open_incident(warroom)
    warroom.post("/api/traces", [event("t1", failing=True), event("t2", failing=True)])
    with transaction(warroom.runtime.engine) as session:
        traces.label_trace(session, "t1", failure_type="Tool_Error", expected="14 days.", actor="U123")
    with transaction(warroom.runtime.engine) as session:
        trace = traces.label_trace(session, "t1", notes="policy changed in March", actor="U456")
        assert trace.label["failure_type"] == "tool_error" and trace.label["expected"] == "14 days."
        assert trace.label["notes"] == "policy changed in March" and trace.label["labelled_by"] == "U456"
        assert traces.counts_by_failure(session, incident.id) == {"hallucination": 1, "tool_error": 1}
        assert traces.as_event(trace).request_id == "t1"
    assert rows(warroom)["t1"].label["expected"] == "14 days."


def test_labelling_an_unknown_or_passing_trace_or_failure_type_says_so(warroom):
    warroom.post("/api/traces", [event("t1", failing=True), event("ok")])
    with transaction(warroom.runtime.engine) as session:
        for request_id in ("missing", "ok"):  # labels are for failing traces
            with pytest.raises(NotFound, match=f"no failing trace with request id '{request_id}'"):
                traces.label_trace(session, request_id, failure_type="hallucination", actor="U1")
        with pytest.raises(UserError, match="unknown failure type 'vibes'"):
            traces.label_trace(session, "t1", failure_type="vibes", actor="U1")


def test_failure_rules_decide_what_failed(settings):
    from bot.store.db import make_engine
    engine = make_engine(settings.database_url)
    try:
        with transaction(engine) as session:
            result = traces.ingest_traces(session, [event("slow", latency_ms=900.0)],
                                          rules=FailureRules(latency_ms_threshold=500.0))
            assert result.accepted == 1
        with transaction(engine) as session:
            trace = session.execute(select(Trace)).scalar_one()
            assert (trace.failed, trace.failure_types) == (True, ["latency"])
    finally:
        engine.dispose()


def test_failure_thresholds_come_from_settings(database_url):
    from tests.conftest import serve_warroom
    with serve_warroom(make_settings(database_url, WARROOM_HALLUCINATION_THRESHOLD=0.95)) as strict:
        strict.post("/api/traces", [event("borderline", failing=True)])  # hallucination score 0.92
        assert rows(strict)["borderline"].failed is False


def test_traces_of_an_eval_run_are_not_stored(warroom: Warroom) -> None:
    now = datetime.now(timezone.utc).isoformat()
    events = [{"request_id": "eval-1", "timestamp": now, "service": "llm-gateway", "hallucination_score": 0.9,
               "attributes": {"warroom.eval": "gate-7"}},
              {"request_id": "eval-2", "timestamp": now, "service": "llm-gateway", "warroom_eval": "replay-1"},
              {"request_id": "prod-1", "timestamp": now, "service": "llm-gateway", "hallucination_score": 0.9}]
    body = warroom.post("/api/traces", events).json()
    assert (body["accepted"], body["eval_traffic"]) == (1, 2)
    assert warroom.count(Trace) == 1
