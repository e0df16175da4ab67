"""GenAI spans (both convention versions, both OTLP encodings) mapped to warroom trace events."""

from __future__ import annotations

import gzip
import math

import pytest

from bot.jsonbody import BadRequest
from bot.otlp.decode import decode_request, decompress
from bot.otlp.genai import CONTENT_OFF, MappingOptions, map_spans
from bot.traces.rules import TraceEvent, failure_types
from tests.otlp.spans import Recorder, json_body, protobuf_body, request_id

ENCODINGS = {"application/x-protobuf": protobuf_body, "application/json": json_body}


def mapped_events(recorder: Recorder, content_type: str, options: MappingOptions | None = None) -> list[dict]:
    body = ENCODINGS[content_type](recorder.spans())
    return map_spans(decode_request(body, content_type).spans, options).events


@pytest.mark.parametrize("content_type", ENCODINGS)
@pytest.mark.parametrize("latest", [True, False], ids=["latest-names", "1.36-names"])
def test_an_answer_span_becomes_one_trace_event_with_its_tools_and_scores(content_type, latest):
    recorder = Recorder(service="support-bot", bundle="b-43")
    span = recorder.answer(latest=latest, tools=[("search", True), ("refund_lookup", False)], hallucination=0.92,
                           schema_valid=False, scores={"relevance": 0.4})
    [event] = mapped_events(recorder, content_type)

    assert event["request_id"] == request_id(span)
    assert (event["service"], event["bundle_version"], event["model"]) == ("support-bot", "b-43", "primary-70b-0613")
    assert event["input"] == [{"role": "user", "content": "What is the refund window?"}]
    assert event["output"] == "30 days."
    assert event["tokens"] == 42
    assert event["latency_ms"] == pytest.approx((span.end_time - span.start_time) / 1e6)
    assert event["tool_calls"] == [{"name": "search", "ok": True},
                                   {"name": "refund_lookup", "ok": False, "error": "refund_lookup timed out"}]
    assert (event["hallucination_score"], event["schema_valid"]) == (0.92, False)
    attributes = event["attributes"]
    assert attributes["scores"] == {"relevance": 0.4, "hallucination": 0.92}
    assert attributes["score_labels"] == {"schema_valid": "fail"}
    assert attributes["gen_ai.provider.name"] == "openai"
    assert attributes["gen_ai.request.model"] == "primary-70b"
    assert attributes["gen_ai.response.finish_reasons"] == ["stop"]
    assert attributes["gen_ai.conversation.id"] == "conv-7"
    assert attributes["otel"]["semconv"] == ("latest" if latest else "1.36")
    # The same rules as for the JSON route decide that it failed, and how.
    assert failure_types(TraceEvent.model_validate(event)) == ["hallucination", "schema_invalid", "tool_error"]


@pytest.mark.parametrize("content_type", ENCODINGS)
@pytest.mark.parametrize("latest", [True, False], ids=["latest-names", "1.36-names"])
def test_a_question_or_answer_that_is_json_text_is_kept_as_its_text(content_type, latest):
    """An answer asked for as JSON is text that parses as JSON: it is the answer, not a message
    structure to look into (it was dropped, and the schema failures' eval cases had no output)."""
    recorder = Recorder()
    answer, question = '{"order": 1234, "status": "shipped"}', '["order 1234", "order 99"]'
    recorder.answer(latest=latest, question=question, output=answer)
    [event] = mapped_events(recorder, content_type)
    assert event["output"] == answer
    assert event["input"] == [{"role": "user", "content": question}]


@pytest.mark.parametrize("content_type", ENCODINGS)
def test_an_answer_without_captured_content_is_kept_and_says_why_it_has_no_input(content_type):
    recorder = Recorder()
    recorder.answer(question=None, output=None, error="RateLimitError")
    [event] = mapped_events(recorder, content_type)
    assert "input" not in event and "output" not in event
    assert event["attributes"]["input_missing"] == CONTENT_OFF
    assert event["attributes"]["error.type"] == "RateLimitError"
    assert event["attributes"]["status"] == "error"
    TraceEvent.model_validate(event)  # still a valid event: it counts in the SLIs


def test_the_bundle_comes_from_the_configured_resource_attribute():
    recorder = Recorder(bundle="1.4.2", **{"deployment.bundle": "b-44"})
    recorder.answer()
    [event] = mapped_events(recorder, "application/json", MappingOptions(bundle_attribute="deployment.bundle"))
    assert event["bundle_version"] == "b-44"


def test_spans_that_are_not_genai_and_tools_without_their_answer_are_not_events():
    recorder = Recorder()
    with recorder.tracer.start_as_current_span("GET /healthz"):
        pass
    with recorder.tracer.start_as_current_span("execute_tool search") as tool:
        tool.set_attributes({"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search"})
    result = map_spans(decode_request(protobuf_body(recorder.spans()), "application/x-protobuf").spans)
    assert (result.events, result.ignored, result.orphans) == ([], 1, 1)
    assert "without their GenAI answer span" in result.warning()


def test_a_nested_model_call_belongs_to_the_agent_answer_around_it():
    recorder = Recorder()
    with recorder.tracer.start_as_current_span("invoke_agent helper") as agent:
        agent.set_attributes({"gen_ai.operation.name": "invoke_agent", "gen_ai.provider.name": "openai"})
        recorder.answer(tools=[("search", True)], input_tokens=5, output_tokens=5)
    [event] = mapped_events(recorder, "application/json")
    assert event["attributes"]["otel"]["span_name"] == "invoke_agent helper"
    assert event["tokens"] == 10
    assert event["tool_calls"] == [{"name": "search", "ok": True}]


def test_gzip_bodies_are_inflated_and_bombs_refused():
    body = json_body(Recorder().spans()) or b"{}"
    assert decompress(gzip.compress(body), "gzip", 1 << 20) == body
    with pytest.raises(BadRequest) as too_big:
        decompress(gzip.compress(b"\0" * 100_000), "gzip", 10_000)
    assert too_big.value.status == 413
    with pytest.raises(BadRequest) as broken:
        decompress(b"not gzip", "gzip", 10_000)
    assert broken.value.status == 400


def test_a_span_with_a_bad_id_is_rejected_alone():
    body = (b'{"resourceSpans": [{"resource": {}, "scopeSpans": [{"spans": ['
            b'{"traceId": "abc", "spanId": "0102030405060708", "name": "x"},'
            b'{"traceId": "0102030405060708090a0b0c0d0e0f10", "spanId": "0102030405060708", "name": "y",'
            b' "attributes": [{"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}}]}]}]}]}')
    decoded = decode_request(body, "application/json")
    assert decoded.rejected == 1 and "traceId must be 16 bytes" in decoded.problems[0]
    assert [s.name for s in decoded.spans] == ["y"]


def test_hostile_json_is_a_400_or_a_rejected_span_never_a_crash():
    deep = '{"kvlistValue": {"values": [{"key": "k", "value": ' * 300 + '{"stringValue": "x"}' + "}]}}" * 300
    resource = ('{"resourceSpans": [{"resource": {"attributes": [{"key": "a", "value": ' + deep + '}]}, '
                '"scopeSpans": []}]}').encode()
    bad_int = b'{"resourceSpans": [{"resource": {"attributes": [{"key": "n", "value": {"intValue": "many"}}]}}]}'
    for body in (resource, bad_int):
        with pytest.raises(BadRequest) as refused:
            decode_request(body, "application/json")
        assert refused.value.status == 400
    span = (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "0102030405060708090a0b0c0d0e0f10", '
            b'"spanId": "0102030405060708", "startTimeUnixNano": "soon"}]}]}]}')
    decoded = decode_request(span, "application/json")
    assert decoded.rejected == 1 and decoded.spans == []


def test_json_that_only_the_standard_library_parses_is_read_as_before():
    """NaN and a lone surrogate escape: orjson refuses them, so such a body (or attribute) is
    parsed by ``json`` as it always was, not refused."""
    body = (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "0102030405060708090a0b0c0d0e0f10", '
            b'"spanId": "0102030405060708", "name": "chat", "attributes": ['
            b'{"key": "odd", "value": {"stringValue": "half \\ud800 a pair"}},'
            b'{"key": "score", "value": {"doubleValue": NaN}}]}]}]}]}')
    [span] = decode_request(body, "application/json").spans
    assert span.attributes["odd"] == "half \ud800 a pair"
    assert math.isnan(span.attributes["score"])


def test_an_answer_whose_messages_nest_past_the_json_parser_is_stored_not_a_crash():
    """A hostile ``gen_ai.output.messages`` (100,000 opening brackets): the parser gives up with
    RecursionError, which must leave the attribute as text rather than fail the request (a 500)."""
    body = (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "0102030405060708090a0b0c0d0e0f10", '
            b'"spanId": "0102030405060708", "name": "chat", "startTimeUnixNano": "1700000000000000000", '
            b'"attributes": [{"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}}, '
            b'{"key": "gen_ai.output.messages", "value": {"stringValue": "' + b"[" * 100_000 + b'"}}]}]}]}]}')
    [event] = map_spans(decode_request(body, "application/json").spans).events
    assert event["request_id"] == "0102030405060708090a0b0c0d0e0f10-0102030405060708"


def test_an_answer_span_without_a_start_time_is_rejected_with_the_reason():
    body = (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "0102030405060708090a0b0c0d0e0f10", '
            b'"spanId": "0102030405060708", "name": "chat", '
            b'"attributes": [{"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}}]}]}]}]}')
    result = map_spans(decode_request(body, "application/json").spans)
    assert result.events == [] and "startTimeUnixNano is missing" in result.rejected[0]
