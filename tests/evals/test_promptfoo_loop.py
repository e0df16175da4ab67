"""The loop closes: failing traces from bundle v42 become eval cases that real promptfoo runs
against the example service; they fail while v42 is live and pass once v43 is."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import httpx
import pytest

from bot.evals.cases import Label, cases_from_traces, write_eval_files
from bot.evals.promptfoo import EvalRunSummary, PromptfooError, run_promptfoo
from bot.otlp.genai import CONTENT_OFF
from bot.serving import serving
from bot.traces.rules import TraceEvent
from examples.llm_service import create_app

CACHE_DIR = Path(__file__).resolve().parents[2] / ".cache" / "promptfoo"
TOKEN = "control-token-for-tests"
REFUND = "What is the refund policy?"
ORDER_JSON = "Give the order status as JSON for order 1234"
MISSING_ORDER = "Where is my order 9999?"
HEALTHY = "How do I reset my password?"


@pytest.fixture
def llm_service() -> Iterator[str]:
    with serving(create_app(control_token=TOKEN, bundle="v42")) as url:
        yield url


def ask(client: httpx.Client, question: str) -> TraceEvent:
    reply = client.post("/v1/answer", json={"question": question}).raise_for_status().json()
    return TraceEvent(
        request_id=reply["request_id"],
        timestamp=datetime.now(timezone.utc),
        service="llm-gateway",
        bundle_version=reply["bundle"],
        model=reply["model"],
        prompt_hash=hashlib.sha256(question.encode()).hexdigest()[:16],
        input=question,
        output=reply["output"],
        tool_calls=reply["tool_calls"],
        schema_valid=reply["schema_valid"],
        hallucination_score=reply["hallucination_score"],
        latency_ms=reply["latency_ms"],
    )


@pytest.mark.e2e
def test_v42_regressions_fail_in_promptfoo_and_v43_passes(llm_service: str, tmp_path: Path) -> None:
    with httpx.Client(base_url=llm_service, timeout=10) as client:
        traces = [ask(client, q) for q in (REFUND, ORDER_JSON, REFUND, MISSING_ORDER, HEALTHY)]
        assert all(t.bundle_version == "v42" for t in traces)
        refund = traces[0]
        labels = {refund.request_id: Label(failure_type="unsupported claim", unsupported_claim="90 days",
                                           expected="Refunds are available within 30 days.")}
        cases = cases_from_traces(traces, incident_id="INC-20260314-0001", labels=labels)
        assert [c.metadata.failure_type for c in cases] == ["hallucination", "schema_invalid", "tool_error"]
        export = write_eval_files(cases, tmp_path, target_url=llm_service)
        assert export.total == 3

        broken = run_promptfoo(tmp_path, cache_dir=CACHE_DIR)
        assert broken.exit_code == 100
        assert (broken.passed, broken.failed, broken.errors) == (1, 2, 0)
        failing = " ".join(description for description, _ in broken.failures)
        assert "hallucination: What is the refund policy?" in failing
        assert "schema_invalid: Give the order status as JSON" in failing
        assert "regressions found" in broken.as_text() and "2 failed" in broken.as_text()
        assert broken.results_path.exists()

        client.put("/control/bundle", json={"version": "v43"},
                   headers={"Authorization": f"Bearer {TOKEN}"}).raise_for_status()
        fixed = run_promptfoo(tmp_path, cache_dir=CACHE_DIR)
        assert (fixed.exit_code, fixed.passed, fixed.failed, fixed.errors) == (0, 3, 0, 0)
        assert fixed.failures == [] and fixed.as_text().startswith("Eval run: all passed")


@pytest.mark.e2e
def test_promptfoo_accepts_a_case_without_input_and_shows_why(llm_service: str, tmp_path: Path) -> None:
    """Spans sent without message content make cases with an empty question: promptfoo still takes
    the files (its schema checks them) and its report carries the reason in the description."""
    with httpx.Client(base_url=llm_service, timeout=10) as client:
        asked = ask(client, ORDER_JSON)
    blind = asked.model_copy(update={"request_id": "blind", "input": "", "prompt_hash": "otel-no-content",
                                     "attributes": {"input_missing": CONTENT_OFF}})
    export = write_eval_files(cases_from_traces([asked, blind], incident_id="INC-7"), tmp_path,
                              target_url=llm_service)
    assert export.total == 2

    summary = run_promptfoo(tmp_path, cache_dir=CACHE_DIR)
    assert summary.errors == 0 and summary.passed + summary.failed == 2
    report = summary.results_path.read_text()
    assert f"INC-7 schema_invalid: no input: {CONTENT_OFF}" in report


@pytest.mark.e2e
def test_a_broken_eval_config_raises_with_promptfoos_own_words(tmp_path: Path) -> None:
    (tmp_path / "promptfooconfig.yaml").write_text("prompts: ['{{question}}']\nproviders: [http]\ntests: file://missing.yaml\n")
    with pytest.raises(PromptfooError, match="exited"):
        run_promptfoo(tmp_path, cache_dir=CACHE_DIR, timeout=120)


def test_summary_text_fits_one_slack_paragraph() -> None:
    summary = EvalRunSummary(
        passed=7, failed=6, errors=0, exit_code=100, results_path=Path("results.json"),
        failures=[(f"INC-1 hallucination: question {i}",
                   "Expected output to not contain\n\"90 days\"") for i in range(6)],
    )
    text = summary.as_text()
    assert "\n" not in text
    assert text.startswith("Eval run: regressions found — 7/13 passed, 6 failed, 0 errored.")
    assert "question 4" in text and "question 5" not in text and "… 1 more" in text
