from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from bot.evals.cases import EvalCase, Label, cases_from_traces
from bot.redact import Redactor
from bot.traces.rules import FailureRules, TraceEvent

REFUND_Q = "What is the refund policy?"
BAD_REFUND = "Refunds are available within 90 days, no receipt needed."


def trace(request_id: str, minute: int = 0, **fields: Any) -> TraceEvent:
    base: dict[str, Any] = {
        "request_id": request_id,
        "timestamp": f"2026-03-14T02:{minute:02d}:00",
        "service": "llm-gateway",
        "bundle_version": "v42",
        "prompt_hash": f"hash-{request_id}",
        "input": REFUND_Q,
    }
    return TraceEvent.model_validate({**base, **fields})


def only_case(traces: list[TraceEvent], **kwargs: Any) -> EvalCase:
    cases = cases_from_traces(traces, incident_id="INC-20260314-0001", **kwargs)
    assert len(cases) == 1, cases
    return cases[0]


def test_labelled_hallucination_asserts_claim_absent_and_expected_answer_present() -> None:
    case = only_case(
        [trace("r1", output=BAD_REFUND, hallucination_score=0.9)],
        labels={"r1": Label(failure_type="unsupported claim", expected="Refunds are available within 30 days.",
                            unsupported_claim="90 days", notes="pinned by Priya")},
    )
    assert case.vars == {"question": REFUND_Q}
    assert case.assert_ == [
        {"type": "not-icontains", "value": "90 days"},
        {"type": "icontains", "value": "Refunds are available within 30 days."},
    ]
    meta = case.metadata
    assert (meta.incident_id, meta.request_id, meta.bundle, meta.failure_type, meta.prompt_hash) == (
        "INC-20260314-0001", "r1", "v42", "hallucination", "hash-r1")
    assert meta.labelled and meta.notes == "pinned by Priya"


def test_unlabelled_hallucination_forbids_the_most_distinctive_sentence_of_the_bad_answer() -> None:
    output = "Thanks for asking. Refunds are available within 90 days, no receipt needed. Bye."
    case = only_case([trace("r1", output=output, hallucination_score=0.8)])
    assert case.assert_ == [{"type": "not-icontains", "value": BAD_REFUND}]


def test_schema_invalid_becomes_is_json() -> None:
    case = only_case([trace("r1", input="Give the order status as JSON for order 1234",
                            output='{"order_id": "1234", "eta": 2026-03-16', schema_valid=False)])
    assert case.assert_ == [{"type": "is-json"}]
    assert case.metadata.failure_type == "schema_invalid"


def test_tool_error_becomes_a_javascript_check_that_the_output_is_not_a_tool_error() -> None:
    case = only_case([trace("r1", tool_calls=[{"name": "order_lookup", "ok": False, "error": "boom"}])])
    [check] = case.assert_
    assert check["type"] == "javascript" and "output" in check["value"]


def test_latency_becomes_a_latency_assert_with_the_configured_threshold() -> None:
    case = only_case([trace("r1", latency_ms=5000)], rules=FailureRules(latency_ms_threshold=1500))
    assert case.assert_ == [{"type": "latency", "threshold": 1500}]


def test_negative_feedback_uses_the_expected_answer_when_given() -> None:
    case = only_case([trace("r1", output="Ask someone else.", user_feedback="negative")],
                     labels={"r1": Label(expected="Refunds are available within 30 days.")})
    assert case.assert_ == [{"type": "icontains", "value": "Refunds are available within 30 days."}]


def test_negative_feedback_without_an_answer_stays_deterministic() -> None:
    case = only_case([trace("r1", output="I do not know about refunds, sorry.", user_feedback="negative")])
    assert case.assert_ == [{"type": "not-icontains", "value": "I do not know about refunds, sorry."}]
    assert all(a["type"] != "llm-rubric" for a in case.assert_)


def test_cost_failures_are_not_exported_because_promptfoo_cannot_check_them_over_http() -> None:
    assert cases_from_traces([trace("r1", cost=9.0)], incident_id="I", rules=FailureRules(cost_budget=1.0)) == []


def test_healthy_traces_make_no_cases() -> None:
    assert cases_from_traces([trace("r1", output="fine", hallucination_score=0.1)], incident_id="I") == []


def test_one_trace_with_two_failures_makes_two_cases() -> None:
    cases = cases_from_traces([trace("r1", output="oops", schema_valid=False, latency_ms=9000)], incident_id="I")
    assert [c.metadata.failure_type for c in cases] == ["schema_invalid", "latency"]


def test_duplicates_collapse_to_the_earliest_trace_with_labels_merged() -> None:
    traces = [
        trace("late", minute=30, prompt_hash="same", output=BAD_REFUND, hallucination_score=0.9),
        trace("early", minute=5, prompt_hash="same", output=BAD_REFUND, hallucination_score=0.9),
        trace("middle", minute=10, prompt_hash="same", output=BAD_REFUND, hallucination_score=0.9),
    ]
    labels = {"late": Label(expected="Refunds are available within 30 days."),
              "middle": Label(unsupported_claim="90 days")}
    case = only_case(traces, labels=labels)
    assert case.metadata.request_id == "early"
    assert case.assert_ == [
        {"type": "not-icontains", "value": "90 days"},
        {"type": "icontains", "value": "Refunds are available within 30 days."},
    ]


def test_order_is_by_failure_type_then_prompt_hash_whatever_the_input_order() -> None:
    traces = [
        trace("a", prompt_hash="zz", schema_valid=False),
        trace("b", prompt_hash="aa", latency_ms=9000),
        trace("c", prompt_hash="mm", output=BAD_REFUND, hallucination_score=0.9),
        trace("d", prompt_hash="bb", schema_valid=False),
    ]
    keys = [(c.metadata.failure_type, c.metadata.prompt_hash) for c in cases_from_traces(traces, incident_id="I")]
    assert keys == [("hallucination", "mm"), ("schema_invalid", "bb"), ("schema_invalid", "zz"), ("latency", "aa")]
    assert cases_from_traces(list(reversed(traces)), incident_id="I") == cases_from_traces(traces, incident_id="I")


def test_questions_outputs_and_labels_are_redacted() -> None:
    case = only_case(
        [trace("r1", input="I am jane@example.com, refund?", output="Mail jane@example.com: refunds in 90 days.",
               hallucination_score=0.9)],
        labels={"r1": Label(expected="Call +1 415 555 0100 for refunds")},
        redactor=Redactor(),
    )
    text = str(case.to_promptfoo())
    assert "jane@example.com" not in text and "555 0100" not in text
    assert case.vars["question"] == "I am [email], refund?"


def test_a_label_on_a_healthy_trace_still_records_the_humans_correction() -> None:
    case = only_case([trace("r1", output="We do not do refunds.")],
                     labels={"r1": Label(expected="Refunds are available within 30 days.")})
    assert case.metadata.failure_type == "negative_feedback"


def test_label_refuses_an_unknown_failure_type() -> None:
    with pytest.raises(ValidationError, match="unknown failure type"):
        Label(failure_type="vibes")
