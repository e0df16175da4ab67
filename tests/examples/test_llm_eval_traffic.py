"""Eval traffic to the example service: answered by the bundle it names, never a production trace or metric."""

from __future__ import annotations

import httpx

from bot.serving import serving
from examples.llm_service import create_app
from examples.llm_service.app import LLMService
from examples.llm_service.state import ServiceState
from examples.llm_service.traces import TraceShipper

REFUND = "What is the refund policy?"


def test_an_eval_request_is_answered_by_the_named_bundle_while_production_stays_on_v42() -> None:
    with serving(create_app(bundle="v42")) as url, httpx.Client(base_url=url, timeout=10) as client:
        evaluated = client.post("/v1/answer?bundle=v43", json={"question": REFUND},
                                headers={"X-Warroom-Eval": "gate-1"}).json()
        live = client.post("/v1/answer", json={"question": REFUND}).json()
        unknown = client.post("/v1/answer?bundle=v404", json={"question": REFUND})
        metrics = client.get("/metrics").text
    assert evaluated["bundle"] == "v43" and "30 days" in evaluated["output"]
    assert live["bundle"] == "v42" and "90 days" in live["output"]
    assert unknown.status_code == 404 and "v404" in unknown.json()["error"]
    counted = sum(float(line.rsplit(" ",
                                    1)[1]) for line in metrics.splitlines() if line.startswith("llm_requests_total{"))
    assert counted == 1  # only the production request


def test_eval_answers_are_not_shipped_as_traces() -> None:
    shipper = TraceShipper("http://127.0.0.1:9", None)
    service = LLMService(ServiceState(bundle="v42"), shipper)
    service.ask(REFUND, eval_bundle="v44")
    service.ask(REFUND, eval_bundle="v43")
    assert len(shipper._buffer) == 0
    service.ask(REFUND)
    assert [event["bundle_version"] for event in shipper._buffer] == ["v42"]


def test_the_paraphrasing_bundle_states_the_wrong_rule_in_other_words() -> None:
    service = LLMService(ServiceState(bundle="v42"), None)
    v42, v44 = service.ask(REFUND)["output"], service.ask(REFUND, eval_bundle="v44")["output"]
    assert v42 != v44 and "90 days" in v44.lower() and "30 days" not in v44
