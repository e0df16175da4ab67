"""A suite per service: failures of every incident clustered into stored cases with stable ids."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import yaml
from sqlalchemy.engine import Engine

from bot.evals.asserts import AssertContext
from bot.evals.suite import collect_incident, incident_case_counts, signature, suite_cases
from bot.evals.suite_files import export_suite
from bot.evals.target import EvalTarget
from bot.redact import Redactor
from bot.store.db import transaction
from tests.evals.suite_support import SERVICE, T0, add_incident, add_trace

REFUND_WRONG = "Refunds are available within 90 days, no receipt needed."
TARGET = EvalTarget("http://127.0.0.1:9201/v1/answer?bundle={{bundle}}")


def seed_refund_failures(engine: Engine, incident_id: int, prefix: str, *, n: int = 3) -> None:
    wordings = ["What is the refund policy?", "what's the refund policy??", "Refund policy: what is it"]
    for i in range(n):
        add_trace(engine, f"{prefix}-{i}", wordings[i % 3], REFUND_WRONG, incident_id=incident_id,
                  at=T0 + timedelta(seconds=i), hallucination_score=0.9)


def test_near_duplicate_failures_become_one_case_that_lists_every_request(engine: Engine) -> None:
    incident = add_incident(engine)
    seed_refund_failures(engine, incident, "r", n=6)
    add_trace(engine, "json-1", "Give the order status as JSON for order 1234", '{"order_id": "1234"',
              incident_id=incident, schema_valid=False)
    with transaction(engine) as session:
        change = collect_incident(session, incident)
        cases = suite_cases(session, SERVICE)
    assert (change.new, change.updated) == (2, 0)
    refund = next(c for c in cases if c.failure_type == "hallucination")
    assert refund.trace_count == 6 and sorted(refund.request_ids) == [f"r-{i}" for i in range(6)]
    assert refund.question == "What is the refund policy?"  # the earliest trace is the representative
    assert refund.incidents == [incident] and refund.labelled is False


def test_the_same_failure_in_three_incidents_is_one_case_naming_all_three(engine: Engine) -> None:
    incidents = [add_incident(engine, at=T0 + timedelta(days=d)) for d in range(3)]
    for n, incident in enumerate(incidents):
        seed_refund_failures(engine, incident, f"inc{n}", n=2)
    with transaction(engine) as session:
        first = collect_incident(session, incidents[0])
        later = [collect_incident(session, i) for i in incidents[1:]]
        [case] = suite_cases(session, SERVICE)
        counts = incident_case_counts(session, incidents[2])
    assert first.case_ids == later[0].case_ids == later[1].case_ids == [case.case_id]
    assert (first.new, later[0].new, later[0].updated) == (1, 0, 1)
    assert case.incidents == incidents and case.trace_count == 6
    assert counts == {"new": 0, "updated": 1}


def test_collecting_an_incident_again_changes_nothing(engine: Engine, tmp_path: Path) -> None:
    incident = add_incident(engine)
    seed_refund_failures(engine, incident, "r")
    with transaction(engine) as session:
        collect_incident(session, incident)
        export_suite(session, SERVICE, tmp_path / "a", target=TARGET, bundle="v43", ctx=AssertContext())
        again = collect_incident(session, incident)
        export_suite(session, SERVICE, tmp_path / "b", target=TARGET, bundle="v43", ctx=AssertContext())
        [case] = suite_cases(session, SERVICE)
    assert (again.new, again.updated) == (1, 0) and case.trace_count == 3
    for name in ("tests.yaml", "cases.jsonl", "promptfooconfig.yaml"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert len((tmp_path / "a" / "cases.jsonl").read_text().splitlines()) == 1


def test_a_human_label_marks_the_case_labelled_and_asserts_its_facts_and_claims(engine: Engine, tmp_path: Path) -> None:
    incident = add_incident(engine)
    seed_refund_failures(engine, incident, "r")
    add_trace(engine, "r-labelled", "What is the refund policy ?", REFUND_WRONG, incident_id=incident,
              at=T0 + timedelta(minutes=5), hallucination_score=0.9,
              label={"failure_type": "hallucination", "expected": "Refunds are available within 30 days.",
                     "unsupported_claim": "90 days; no receipt"})
    with transaction(engine) as session:
        collect_incident(session, incident)
        [case] = suite_cases(session, SERVICE)
        export_suite(session, SERVICE, tmp_path, target=TARGET, bundle="v43", ctx=AssertContext())
    assert case.labelled and case.data["facts"] == ["30 days"] and case.data["claims"] == ["90 days", "no receipt"]
    [test] = yaml.safe_load((tmp_path / "tests.yaml").read_text())
    assert test["metadata"]["labelled"] is True and test["metadata"]["must_pass"] is True
    assert test["description"].startswith(f"{case.case_id} hallucination (labelled)")
    [check] = test["assert"]
    assert check["type"] == "javascript" and '["30 days"]' in check["value"] and '"no receipt"' in check["value"]
    config = yaml.safe_load((tmp_path / "promptfooconfig.yaml").read_text())
    assert config["providers"][0]["id"] == "http://127.0.0.1:9201/v1/answer?bundle=v43"


def test_suite_text_reaches_promptfoo_without_template_syntax(engine: Engine, tmp_path: Path) -> None:
    incident = add_incident(engine)
    question = "Hi {{ user.name }}, {% if vip %}refund{% endif %} {# note #}?"
    add_trace(engine, "tpl", question, "Refunds: {{ 90 }} days", incident_id=incident, hallucination_score=0.9)
    with transaction(engine) as session:
        collect_incident(session, incident)
        export_suite(session, SERVICE, tmp_path, target=TARGET, bundle="v43", ctx=AssertContext())
    text = (tmp_path / "tests.yaml").read_text()
    for tag in ("{{", "{%", "{#"):
        assert tag not in text
    [test] = yaml.safe_load(text)
    import json
    assert json.loads(test["vars"]["question_json"]) == question


def test_clustering_ignores_case_punctuation_word_order_and_filler_words() -> None:
    assert signature("What is the refund policy?") == signature("refund policy -- what's it?") == "policy refund"
    assert signature("Where is my order 1234?") != signature("Where is my order 9999?")


def test_redaction_applies_to_what_the_suite_stores(engine: Engine) -> None:
    incident = add_incident(engine)
    add_trace(engine, "pii", "Refund for jane@example.com?", "Mail jane@example.com: 90 days", incident_id=incident,
              hallucination_score=0.9)
    with transaction(engine) as session:
        collect_incident(session, incident, redactor=Redactor())
        [case] = suite_cases(session, SERVICE)
    assert "jane@example.com" not in case.question and "jane@example.com" not in str(case.data)


def test_the_postmortem_counts_new_and_updated_cases_and_ticks_gate_the_fix_after_a_passing_gate(
        engine: Engine) -> None:
    from bot.postmortem.assemble import build_context
    from bot.postmortem.render import render_postmortem
    from bot.store.models import EvalRun
    earlier, incident = add_incident(engine, at=T0 - timedelta(days=2)), add_incident(engine)
    seed_refund_failures(engine, earlier, "old")
    seed_refund_failures(engine, incident, "new")
    add_trace(engine, "json-1", "Give the order status as JSON for order 1234", '{"order_id": "1234"',
              incident_id=incident, schema_valid=False)
    with transaction(engine) as session:
        collect_incident(session, earlier)
        collect_incident(session, incident)
        before = render_postmortem(build_context(session, incident))
        session.add(EvalRun(service=SERVICE, bundle_version="v43", kind="gate", status="passed",
                            started_at=T0 + timedelta(hours=1), finished_at=T0 + timedelta(hours=1)))
        session.add(EvalRun(service=SERVICE, bundle_version="v40", kind="gate", status="passed",
                            started_at=T0 - timedelta(days=9)))  # before the incident: proves nothing about the fix
        session.flush()
        after = render_postmortem(build_context(session, incident))
    assert "Eval cases added: 2 (1 new, 1 already in the suite from earlier incidents" in before
    assert "- [ ] Gate the fix: `warroom evals gate llm-gateway:VERSION`" in before
    assert "- [x] Gate the fix: llm-gateway:v43 passed eval gate run #" in after and "v40" not in after


def test_a_trace_labelled_missing_provenance_becomes_a_case_that_asks_for_a_retrieved_document(engine: Engine,
                                                                                              tmp_path: Path) -> None:
    incident = add_incident(engine)
    add_trace(engine, "prov", "What is the refund policy?", "Refunds take 30 days.", incident_id=incident,
              retrieval_ids=["policy-2026-03-14/refunds#2"], label={"failure_type": "missing_provenance"})
    with transaction(engine) as session:
        collect_incident(session, incident)
        [case] = suite_cases(session, SERVICE)
        export_suite(session, SERVICE, tmp_path, target=TARGET, bundle="v43", ctx=AssertContext())
    assert case.failure_type == "missing_provenance" and case.labelled
    [test] = yaml.safe_load((tmp_path / "tests.yaml").read_text())
    assert '["policy-2026-03-14/refunds#2"]' in test["assert"][0]["value"]
