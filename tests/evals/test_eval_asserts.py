"""What each failure type asserts: the failure, from what the trace and the bundle know."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bot.evals.asserts import AssertContext, case_asserts, inert_literal, must_pass
from bot.evals.suite import SuiteCase, key_facts
from bot.evals.suite_files import assert_context
from bot.store.models import Bundle

CONTRACTS = Path(__file__).resolve().parents[2] / "examples" / "llm_service" / "contracts"


def case(kind: str, *, labelled: bool = False, **data: Any) -> SuiteCase:
    return SuiteCase("ec-1", "llm-gateway", kind, "q", labelled, 1, ["r1"], [1], data)


def test_a_labelled_hallucination_asserts_facts_present_and_claims_absent_and_must_pass() -> None:
    labelled = case("hallucination", labelled=True, facts=["30 days"], claims=["90 days"], output="90 days.")
    [check] = case_asserts(labelled, AssertContext())
    assert check["type"] == "javascript" and '["30 days"]' in check["value"] and '["90 days"]' in check["value"]
    assert must_pass(labelled)
    unlabelled = case("hallucination", output="Refunds are available within 90 days, no receipt needed.")
    [check] = case_asserts(unlabelled, AssertContext())
    assert "refunds are available within 90 days, no receipt needed." in check["value"] and not must_pass(unlabelled)


def test_schema_cases_use_the_bundle_tool_contract_schema() -> None:
    bundle = Bundle(service="llm-gateway", version="v43", components={"tool_contracts": "incident-tools-v7"})
    ctx = assert_context(bundle, latency_ms=2000, cost_budget=None, schema_dir=CONTRACTS)
    [check] = case_asserts(case("schema_invalid"), ctx)
    assert check["type"] == "is-json" and check["value"]["required"] == ["order_id", "status"]
    inline = Bundle(service="s", version="v1", components={"tool_contracts": {"response_schema": {"type": "array"}}})
    [check] = case_asserts(case("schema_invalid"), assert_context(inline, latency_ms=None, cost_budget=None,
                                                                  schema_dir=None))
    assert check == {"type": "is-json", "value": {"type": "array"}}


def test_latency_cost_provenance_and_tool_cases_assert_at_the_configured_limits() -> None:
    ctx = AssertContext(latency_ms=2000.0, cost_budget=0.01, tool_contracts={"order_lookup": {"required": ["id"]}})
    assert case_asserts(case("latency"), ctx) == [{"type": "latency", "threshold": 2000}]
    assert case_asserts(case("cost"), ctx) == [{"type": "cost", "threshold": 0.01}]
    [cites] = case_asserts(case("missing_provenance", retrieval_ids=["refunds#2"]), ctx)
    assert '["refunds#2"]' in cites["value"]
    _echoed, contract = case_asserts(case("tool_error"), ctx)
    assert '"order_lookup": {"required": ["id"]}' in contract["value"] and "tool_calls" in contract["value"]


def test_key_facts_are_the_figures_of_the_expected_answer() -> None:
    assert key_facts("Refunds are available within 30 days.") == ["30 days"]
    assert key_facts("Order 1234 ships on 2026-03-16 with DHL, 5 % off.") == ["1234", "2026-03-16", "5 %"]
    assert key_facts("Reset it under Settings.") == ["Reset it under Settings"]


def test_inert_literals_round_trip_and_carry_no_template_tag() -> None:
    value = {"q": "{{ x }} {% y %} {# z #}", "nested": [{"k": "}}"}]}
    text = inert_literal(value)
    assert json.loads(text) == value
    assert not any(tag in text for tag in ("{{", "{%", "{#"))
