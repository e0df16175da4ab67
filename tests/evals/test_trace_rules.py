from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from bot.traces.rules import FailureRules, TraceEvent, failure_types


def trace(**fields: object) -> TraceEvent:
    base: dict[str, object] = {"request_id": "req-1", "timestamp": "2026-03-14T02:07:00", "service": "llm-gateway"}
    return TraceEvent.model_validate({**base, **fields})


def test_healthy_trace_has_no_failure_types() -> None:
    ok = trace(output="Refunds are available within 30 days.", hallucination_score=0.1, latency_ms=800,
               schema_valid=True, tool_calls=[{"name": "web_search", "ok": True}], user_feedback="positive", cost=0.01)
    assert failure_types(ok, FailureRules(cost_budget=1.0)) == []


def test_each_rule_reports_its_failure_type_in_fixed_order() -> None:
    bad = trace(
        hallucination_score=0.9, schema_valid=False, latency_ms=2500, cost=0.5, user_feedback="negative",
        tool_calls=[{"name": "order_lookup", "ok": False, "error": "order 9999 not found"}],
    )
    assert failure_types(bad, FailureRules(cost_budget=0.1)) == [
        "hallucination", "schema_invalid", "tool_error", "latency", "cost", "negative_feedback",
    ]


def test_thresholds_are_strictly_greater_than_and_configurable() -> None:
    at_limit = trace(hallucination_score=0.5, latency_ms=2000)
    assert failure_types(at_limit) == []
    strict = FailureRules(hallucination_threshold=0.3, latency_ms_threshold=1000)
    assert failure_types(at_limit, strict) == ["hallucination", "latency"]


def test_cost_rule_is_off_without_a_budget() -> None:
    assert failure_types(trace(cost=1000.0)) == []


def test_a_tool_call_with_an_error_message_counts_even_if_marked_ok() -> None:
    assert failure_types(trace(tool_calls=[{"name": "web_search", "ok": True, "error": "timeout"}])) == ["tool_error"]


def test_unknown_fields_are_kept_in_attributes_not_rejected() -> None:
    event = trace(region="eu-west-1", attributes={"tenant": "acme"}, experiment={"arm": "b"})
    assert event.attributes == {"tenant": "acme", "region": "eu-west-1", "experiment": {"arm": "b"}}


def test_naive_timestamps_are_utc_and_aware_ones_are_converted() -> None:
    assert trace().timestamp == datetime(2026, 3, 14, 2, 7, tzinfo=timezone.utc)
    aware = trace(timestamp=datetime(2026, 3, 14, 3, 7, tzinfo=timezone(timedelta(hours=1))))
    assert aware.timestamp == datetime(2026, 3, 14, 2, 7, tzinfo=timezone.utc)


@pytest.mark.parametrize("request_id", ["", "x" * 201])
def test_request_id_must_be_1_to_200_chars(request_id: str) -> None:
    with pytest.raises(ValidationError):
        trace(request_id=request_id)


def test_hallucination_score_must_be_a_probability() -> None:
    with pytest.raises(ValidationError):
        trace(hallucination_score=1.5)


def test_question_is_the_last_user_turn_of_a_chat_input() -> None:
    chat = trace(input=[
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": [{"type": "text", "text": "What is the refund policy?"}]},
    ])
    assert chat.question == "What is the refund policy?"
    assert trace(input="plain text").question == "plain text"


def test_bad_rule_thresholds_are_refused() -> None:
    with pytest.raises(ValueError):
        FailureRules(hallucination_threshold=2)
    with pytest.raises(ValueError):
        FailureRules(cost_budget=-1)
