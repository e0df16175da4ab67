"""``POST /v1/traces`` (OTLP/HTTP) through real HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import gzip
import json

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceResponse,
)
from sqlalchemy import select

from bot.compose import compose
from bot.store.db import transaction
from bot.store.models import Trace
from bot.web import create_app
from tests.alerts.payloads import am_alert, am_payload
from tests.conftest import Warroom, make_settings
from tests.otlp.spans import Recorder, json_body, protobuf_body, request_id
from tests.support import ServerThread, free_port

PROTOBUF = {"Content-Type": "application/x-protobuf"}
JSON = {"Content-Type": "application/json"}


def stored(warroom: Warroom) -> dict[str, Trace]:
    with transaction(warroom.runtime.engine) as session:
        return {t.request_id: t for t in session.execute(select(Trace)).scalars()}


def status_of(body: bytes) -> tuple[int, str]:
    """google.rpc.Status (code, message) from its protobuf bytes, read field by field."""
    assert body[0] == 0x08
    code, rest = body[1], body[2:]
    assert rest[0] == 0x12
    length, offset = rest[1], 2
    if length & 0x80:
        length, offset = (length & 0x7F) | (rest[2] << 7), 3
    return code, rest[offset:offset + length].decode()


@pytest.mark.parametrize("headers, encode", [(PROTOBUF, protobuf_body), (JSON, json_body)], ids=["protobuf", "json"])
def test_an_otlp_export_is_stored_as_trace_events(warroom, headers, encode):
    recorder = Recorder()
    healthy = recorder.answer(hallucination=0.1)
    failing = recorder.answer(latest=False, hallucination=0.95, tools=[("search", False)])
    response = warroom.post("/v1/traces", content=gzip.compress(encode(recorder.spans())),
                            headers={**headers, "Content-Encoding": "gzip"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith(headers["Content-Type"])
    if headers is PROTOBUF:
        answer = ExportTraceServiceResponse.FromString(response.content)
        assert not answer.HasField("partial_success")
    else:
        assert response.json() == {}
    rows = stored(warroom)
    assert set(rows) == {request_id(healthy), request_id(failing)}
    bad = rows[request_id(failing)]
    assert (bad.failed, bad.failure_types) == (True, ["hallucination", "tool_error"])
    assert (bad.service, bad.bundle_version, bad.model) == ("llm-gateway", "b-42", "primary-70b-0613")
    assert rows[request_id(healthy)].failed is False

    again = warroom.post("/v1/traces", content=encode(recorder.spans()), headers=headers)
    assert again.status_code == 200 and len(stored(warroom)) == 2  # an exporter's retry stores nothing twice


def test_rejected_spans_are_reported_as_partial_success(warroom):
    recorder = Recorder()
    recorder.answer(hallucination=0.1)
    body = json.loads(json_body(recorder.spans()))
    spans = body["resourceSpans"][0]["scopeSpans"][0]["spans"]
    spans.append({**spans[0], "traceId": "not-hex"})
    response = warroom.post("/v1/traces", body, headers=JSON)
    assert response.status_code == 200
    partial = response.json()["partialSuccess"]
    assert partial["rejectedSpans"] == "1"
    assert "traceId must be 16 bytes" in partial["errorMessage"]
    assert len(stored(warroom)) == 1


def test_orphan_tool_spans_are_a_warning_not_a_rejection(warroom):
    recorder = Recorder()
    with recorder.tracer.start_as_current_span("execute_tool search") as tool:
        tool.set_attributes({"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search"})
    response = warroom.post("/v1/traces", content=protobuf_body(recorder.spans()), headers=PROTOBUF)
    assert response.status_code == 200
    partial = ExportTraceServiceResponse.FromString(response.content).partial_success
    assert partial.rejected_spans == 0 and "without their GenAI answer span" in partial.error_message


@pytest.mark.parametrize("headers, content, status, says", [
    (PROTOBUF, b"\xff\xff\xff", 400, "not a protobuf ExportTraceServiceRequest"),
    (JSON, b"{nope", 400, "not valid JSON"),
    (JSON, b"[]", 400, "expected an ExportTraceServiceRequest"),
    ({"Content-Type": "text/plain"}, b"hello", 415, "not supported"),
    ({**JSON, "Content-Encoding": "gzip"}, b"not gzip", 400, "not valid gzip"),
    ({**JSON, "Content-Encoding": "br"}, b"{}", 415, "Content-Encoding 'br'"),
], ids=["bad-protobuf", "bad-json", "json-array", "content-type", "bad-gzip", "brotli"])
def test_bad_bodies_are_4xx_with_a_message_in_the_request_encoding(warroom, headers, content, status, says):
    response = warroom.post("/v1/traces", content=content, headers=headers)
    assert response.status_code == status, response.text
    if headers.get("Content-Type") == "application/x-protobuf":
        code, message = status_of(response.content)
        assert code == 3
    else:
        message = response.json()["message"]
    assert says in message
    assert stored(warroom) == {}


def test_a_missing_token_is_401(warroom):
    response = warroom.post("/v1/traces", content=b"{}", headers=JSON, token=None)
    assert response.status_code == 401 and "bearer token" in response.json()["message"]
    assert warroom.post("/v1/traces", content=b"{}", headers=JSON, token="wrong").status_code == 401


def test_an_empty_export_is_accepted(warroom):
    assert warroom.post("/v1/traces", content=b"", headers=PROTOBUF).status_code == 200
    assert warroom.post("/v1/traces", content=b"{}", headers=JSON).status_code == 200


def test_failing_otlp_traces_link_to_the_open_incident_of_their_service(warroom):
    response = warroom.alertmanager(am_payload([am_alert(service="llm-gateway")], group="llm-gateway"))
    incident_id = response.json()["incident_id"]
    recorder = Recorder()
    failing = recorder.answer(hallucination=0.97)
    assert warroom.post("/v1/traces", content=protobuf_body(recorder.spans()), headers=PROTOBUF).status_code == 200
    assert stored(warroom)[request_id(failing)].incident_id == incident_id


def test_database_down_is_503_with_retry_after_in_protobuf():
    dead = make_settings(f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere")
    warroom = compose(dead)
    runtime = warroom.runtime
    server = ServerThread(create_app(warroom)).start()
    try:
        recorder = Recorder()
        recorder.answer()
        response = Warroom(warroom, server.url).post("/v1/traces", content=protobuf_body(recorder.spans()),
                                                     headers=PROTOBUF)
        assert response.status_code == 503 and response.headers["retry-after"] == "5"
        code, message = status_of(response.content)
        assert code == 14 and "database unavailable" in message
    finally:
        server.stop()
        runtime.engine.dispose()


def samples(exposition: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    from prometheus_client.parser import text_string_to_metric_families

    return {tuple(sorted(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(exposition) for sample in family.samples
            if sample.name == name}


def test_metrics_count_stored_traces_per_service_bundle_model_and_outcome(warroom):
    recorder = Recorder(bundle="b-43")
    recorder.answer(hallucination=0.1)
    recorder.answer(hallucination=0.9)
    warroom.post("/v1/traces", content=protobuf_body(recorder.spans()), headers=PROTOBUF)
    exposition = warroom.http.get("/metrics").text
    series = {"service": "llm-gateway", "bundle": "b-43", "model": "primary-70b-0613"}
    traces = samples(exposition, "warroom_llm_traces_total")
    assert traces[tuple(sorted({**series, "outcome": "ok"}.items()))] == 1.0
    assert traces[tuple(sorted({**series, "outcome": "failed"}.items()))] == 1.0
    failures = samples(exposition, "warroom_llm_trace_failures_total")
    assert failures == {tuple(sorted({**series, "failure_type": "hallucination"}.items())): 1.0}
