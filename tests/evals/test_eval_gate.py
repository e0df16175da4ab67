"""The gate, with the real promptfoo CLI against the example service over loopback: v42 and the
paraphrasing v44 fail and name their cases; v43 passes and becomes the bundle rollback proposes."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bot.evals.gate import FAILED, PASSED, run_gate, write_reports
from bot.evals.suite import collect_incident
from bot.evals.target import EvalTarget
from bot.releases import bundles
from bot.serving import serving
from bot.store.db import transaction
from bot.store.models import EvalRun
from examples.llm_service import create_app
from tests.conftest import make_settings
from tests.evals.suite_support import SERVICE, add_incident, add_trace, register_catalogue, seed_incident_from_v42

CACHE_DIR = Path(__file__).resolve().parents[2] / ".cache" / "promptfoo"
CONTRACTS = Path(__file__).resolve().parents[2] / "examples" / "llm_service" / "contracts"


@pytest.fixture
def llm_service() -> Iterator[str]:
    with serving(create_app(bundle="v42")) as url:
        yield url


@pytest.mark.e2e
def test_the_gate_fails_v42_and_its_paraphrase_and_passes_and_marks_v43(engine: Engine, database_url: str,
                                                                          llm_service: str, tmp_path: Path) -> None:
    register_catalogue(engine)
    incident = seed_incident_from_v42(engine, llm_service)
    settings = make_settings(database_url, WARROOM_EVAL_SCHEMA_DIR=str(CONTRACTS))
    target = EvalTarget(llm_service + "/v1/answer?bundle={{bundle}}")

    def gate(version: str):
        return run_gate(engine, f"{SERVICE}:{version}", settings=settings, target=target, cache_dir=CACHE_DIR)

    bad = gate("v42")
    assert bad.status == FAILED and bad.exit_code == 1 and bad.baseline == "v41"
    why = {v.case.failure_type: v for v in bad.failures}
    assert set(why) == {"hallucination", "schema_invalid"}
    assert why["hallucination"].why == "labelled case fails"
    assert "missing fact: 30 days" in why["hallucination"].candidate.asserted
    assert why["schema_invalid"].why == "passed on llm-gateway:v41, fails now"
    assert f"incidents #{incident}" in bad.summary() and why["schema_invalid"].case.case_id in bad.summary()

    paraphrase = gate("v44")
    assert paraphrase.status == FAILED and [v.case.failure_type for v in paraphrase.failures] == ["hallucination"]
    assert "unsupported claim: 90 days" in paraphrase.failures[0].candidate.asserted

    fixed = gate("v43")
    assert fixed.status == PASSED and fixed.exit_code == 0 and fixed.passed == fixed.cases == 2
    write_reports(fixed, json_path=tmp_path / "gate.json", junit_path=tmp_path / "gate.xml")
    assert json.loads((tmp_path / "gate.json").read_text())["status"] == "passed"
    write_reports(bad, json_path=None, junit_path=tmp_path / "bad.xml")
    suite = ET.parse(tmp_path / "bad.xml").getroot()
    assert suite.get("failures") == "2" and len(suite.findall("testcase/failure")) == 2
    with transaction(engine) as session:
        v43 = bundles.get_bundle(session, SERVICE, "v43")
        assert v43.known_good and v43.known_good_run_id == fixed.run_id
        shown = bundles.as_dict(v43)
        assert shown["known_good_by"] == "gate" and shown["known_good_run_id"] == fixed.run_id
        assert bundles.as_dict(bundles.get_bundle(session, SERVICE, "v41"))["known_good_by"] == "hand"
        assert bundles.newest_gated(session, SERVICE).version == "v43"  # type: ignore[union-attr]
        assert not bundles.get_bundle(session, SERVICE, "v44").known_good
        runs = list(session.execute(select(EvalRun).order_by(EvalRun.id)).scalars())
        assert [r.status for r in runs] == ["failed", "failed", "passed"]


def test_a_gate_for_an_unregistered_bundle_could_not_run(engine: Engine, database_url: str) -> None:
    settings = make_settings(database_url)
    report = run_gate(engine, f"{SERVICE}:v99", settings=settings, target=EvalTarget("http://127.0.0.1:9/{{bundle}}"),
                      cache_dir=CACHE_DIR)
    assert report.exit_code == 2 and "no bundle 'v99'" in report.summary()


def echo_app(seen: list[str]) -> Starlette:
    async def answer(request: Request) -> JSONResponse:
        question = (await request.json())["question"]
        seen.append(question)
        calls = [{"name": "order_lookup", "ok": False, "error": "order 9999 not found"}] if "9999" in question else []
        return JSONResponse({"output": f"You asked: {question}", "tool_calls": calls})
    return Starlette(routes=[Route("/v1/answer", answer, methods=["POST"])])


@pytest.mark.e2e
def test_template_syntax_in_a_case_is_sent_and_compared_as_written(engine: Engine, database_url: str) -> None:
    """Also: a tool-error case checks the response's tool calls against the contract (the failing
    call is reported; unlabelled, with no known-good bundle to compare, it does not block)."""
    question = "Hi {{ user.name }}, {% if vip %}refund?{% endif %} {# note #}"
    incident = add_incident(engine, service="echo")
    add_trace(engine, "tpl", question, "{{ broken }}", incident_id=incident, service="echo", hallucination_score=0.9,
              label={"expected": f"You asked: {question}", "unsupported_claim": "{{ broken }}"})
    add_trace(engine, "tool", "Where is my order 9999?", "Sorry", incident_id=incident, service="echo",
              tool_calls=[{"name": "order_lookup", "ok": False, "error": "order 9999 not found"}])
    with transaction(engine) as session:
        bundles.register_bundle(session, service="echo", version="e1", components={})
        collect_incident(session, incident)
    seen: list[str] = []
    with serving(echo_app(seen)) as url:
        report = run_gate(engine, "echo:e1", settings=make_settings(database_url),
                          target=EvalTarget(url + "/v1/answer?b={{bundle}}"), cache_dir=CACHE_DIR)
    assert sorted(seen) == sorted([question, "Where is my order 9999?"])
    assert report.status == PASSED, report.summary()
    [tool] = report.tolerated
    assert tool.case.failure_type == "tool_error"
    assert "order_lookup failed: order 9999 not found" in tool.candidate.asserted
