"""The example service exporting with the OpenTelemetry SDK and its OTLP/HTTP exporters into a real
warroom: what warroom stores is what the JSON route would have stored for the same answers."""

from __future__ import annotations

import httpx
import pytest
from llm_loopback import serve, wait_until
from sqlalchemy import select

from bot.store.db import transaction
from bot.store.models import Trace
from bot.traces.rules import TraceEvent, failure_types
from examples.llm_service.answers import answer_question
from examples.llm_service.app import create_app
from examples.llm_service.bundles import BUNDLES
from examples.llm_service.state import ServiceState
from examples.llm_service.traces import trace_event
from tests.conftest import ALERT_TOKEN

QUESTIONS = ("What is the refund policy?", "Give the order status as JSON for order 1234", "Where is my order 1234?")
COMPARED = ("service", "bundle_version", "model", "prompt_template_id", "prompt_hash", "output", "retrieval_ids",
            "citations", "tool_calls", "hallucination_score", "schema_valid", "cost")


@pytest.mark.parametrize("encoding", ["protobuf", "json"])
@pytest.mark.parametrize("semconv", ["gen_ai_latest_experimental", ""], ids=["latest-names", "1.36-names"])
def test_the_example_service_exports_genai_spans_that_warroom_stores_like_json_traces(
        warroom, monkeypatch, encoding, semconv):
    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", semconv)
    app = create_app(ServiceState(bundle="v42"), warroom_url=warroom.url, warroom_token=ALERT_TOKEN,
                     trace_interval=0.1, otlp=encoding)
    with serve(app) as url, httpx.Client(base_url=url) as client:
        answers = {client.post("/v1/answer", json={"question": q}).json()["request_id"]: q for q in QUESTIONS}

        def stored() -> dict[str, Trace] | None:
            with transaction(warroom.runtime.engine) as session:
                rows = {t.request_id: t for t in session.execute(select(Trace)).scalars()}
            return rows if set(rows) == set(answers) else None

        rows = wait_until(stored, what="the service's OTLP traces in warroom")

    for request_id, question in answers.items():
        answer = answer_question(question, BUNDLES["v42"], "primary-70b", {"web_search": True, "order_lookup": True})
        expected = TraceEvent.model_validate(trace_event(request_id, question, BUNDLES["v42"], "primary-70b", answer))
        row = rows[request_id]
        got = TraceEvent.model_validate(row.data)
        for name in COMPARED:
            assert getattr(got, name) == getattr(expected, name), (question, name)
        assert got.question == question
        assert row.failure_types == failure_types(expected) and row.failed == bool(failure_types(expected))
        assert got.attributes["otel"]["semconv"] == ("latest" if semconv else "1.36")
    assert any(row.failed for row in rows.values())  # v42 is the bad bundle
