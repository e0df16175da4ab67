from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import datetime

import httpx
import pytest
from llm_loopback import Recorder, serve, wait_until

from examples.llm_service import ServiceState, create_app

TOKEN = "control-token-123"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def control() -> Iterator[httpx.Client]:
    with serve(create_app(control_token=TOKEN)) as url, httpx.Client(base_url=url) as client:
        yield client


def metric(client: httpx.Client, line_prefix: str) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(line_prefix + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no series {line_prefix}")


def test_control_api_needs_the_bearer_token(control: httpx.Client) -> None:
    assert control.get("/control/state").status_code == 401
    assert control.get("/control/state", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert control.put("/control/route", json={"route": "safe-fallback-8b"}).status_code == 401
    assert control.get("/control/state", headers=AUTH).json() == {
        "bundle": "v41", "route": "primary-70b", "tools": {"web_search": True, "order_lookup": True}, "source": "local"}


def test_route_bundle_and_tool_changes_show_in_state_and_answers(control: httpx.Client) -> None:
    state = control.put("/control/route", json={"route": "safe-fallback-8b"}, headers=AUTH).json()
    assert state["route"] == "safe-fallback-8b"
    assert control.put("/control/bundle", json={"version": "v42"}, headers=AUTH).json()["bundle"] == "v42"
    state = control.put("/control/tools/web_search", json={"enabled": False}, headers=AUTH).json()
    assert state["tools"] == {"web_search": False, "order_lookup": True}
    answer = control.post("/v1/answer", json={"question": "What is the refund policy?"}).json()
    assert (answer["bundle"], answer["route"], answer["tool_calls"]) == ("v42", "safe-fallback-8b", [])


def test_unknown_route_bundle_or_tool_is_refused(control: httpx.Client) -> None:
    assert control.put("/control/route", json={"route": "gpt-9"}, headers=AUTH).status_code == 422
    assert control.put("/control/bundle", json={"version": "v99"}, headers=AUTH).status_code == 404
    assert control.put("/control/tools/shell", json={"enabled": False}, headers=AUTH).status_code == 404
    assert control.put("/control/tools/web_search", json={"enabled": "no"}, headers=AUTH).status_code == 422
    assert control.get("/control/state", headers=AUTH).json()["route"] == "primary-70b"


def test_bundle_catalogue_lists_every_component(control: httpx.Client) -> None:
    bundles = {b["version"]: b for b in control.get("/control/bundles", headers=AUTH).json()["bundles"]}
    assert set(bundles) == {"v41", "v42", "v44", "v43"}
    assert bundles["v42"]["components"] == {
        "prompt_version": "answer-v42", "model_route": "primary-70b", "retriever_snapshot": "policy-2026-03-14",
        "tool_contracts": "incident-tools-v7", "guardrail_policy": "v3",
        "eval_suite": "support-evals-v41 (skipped)", "rollout_policy": "all-at-once"}
    assert bundles["v41"]["known_good"] is True
    assert bundles["v41"]["components"]["retriever_snapshot"] == "policy-2026-02-01"


def test_metrics_exist_from_the_start_and_count_bad_answers(control: httpx.Client) -> None:
    outcome = 'llm_answers_total{outcome="%s",service="llm-gateway"}'
    assert metric(control, outcome % "tool_error") == 0
    assert metric(control, 'llm_requests_total{bundle="v43",model="safe-fallback-8b",status="error"}') == 0
    control.put("/control/bundle", json={"version": "v42"}, headers=AUTH)
    control.post("/v1/answer", json={"question": "What is the refund policy?"})
    control.post("/v1/answer", json={"question": "Give the order status as JSON for order 1234"})
    control.post("/v1/answer", json={"question": "Where is my order 9999?"})
    assert metric(control, outcome % "hallucination") == 1
    assert metric(control, outcome % "schema_invalid") == 1
    assert metric(control, outcome % "tool_error") == 1
    assert metric(control, 'llm_hallucination_flagged_total{bundle="v42",model="primary-70b"}') == 1
    assert metric(control, 'llm_schema_invalid_total{bundle="v42",model="primary-70b"}') == 1
    assert metric(control, 'llm_requests_total{bundle="v42",model="primary-70b",status="error"}') == 2
    assert metric(control, 'llm_tool_calls_total{status="error",tool="order_lookup"}') == 1


def test_traffic_generator_keeps_requests_flowing() -> None:
    with serve(create_app(traffic_rps=50)) as url, httpx.Client(base_url=url) as client:
        wait_until(lambda: metric(client, 'llm_requests_total{bundle="v41",model="primary-70b",status="ok"}') >= 10,
                   what="synthetic traffic")


def test_traces_are_posted_to_warroom_in_batches(recorder: tuple[Recorder, str]) -> None:
    sink, sink_url = recorder
    state = ServiceState(bundle="v42")
    app = create_app(state, warroom_url=sink_url, warroom_token="trace-token", trace_interval=0.1)
    with serve(app) as url, httpx.Client(base_url=url) as client:
        answers = [client.post("/v1/answer", json={"question": q}).json()
                   for q in ("What is the refund policy?", "Give the order status as JSON for order 1234")]
        events = wait_until(lambda: [e for r in sink.requests for e in json.loads(r["body"])] if
                            sum(len(json.loads(r["body"])) for r in sink.requests) >= 2 else None, what="traces")
    request = sink.requests[0]
    assert request["path"] == "/api/traces" and request["headers"]["authorization"] == "Bearer trace-token"
    refund = next(e for e in events if e["request_id"] == answers[0]["request_id"])
    assert refund["service"] == "llm-gateway" and refund["bundle_version"] == "v42"
    assert refund["prompt_template_id"] == "answer-v42" and refund["model"] == "primary-70b"
    assert refund["output"] == "Refunds are available within 90 days, no receipt needed."
    assert refund["hallucination_score"] == 0.9 and refund["user_feedback"] is None
    assert any(r.startswith("web:") for r in refund["retrieval_ids"]) and refund["citations"]
    assert len(refund["prompt_hash"]) == 64 and int(refund["prompt_hash"], 16) >= 0
    assert datetime.fromisoformat(refund["timestamp"].replace("Z", "+00:00")).tzinfo is not None
    assert refund["tokens"] > 0 and refund["cost"] > 0 and refund["tool_calls"][0]["name"] == "web_search"
    order = next(e for e in events if e["request_id"] == answers[1]["request_id"])
    assert order["schema_valid"] is False


def test_prompt_hash_is_the_sha256_of_the_rendered_prompt() -> None:
    from examples.llm_service.answers import answer_question
    from examples.llm_service.bundles import BUNDLES

    answer = answer_question("What is the refund policy?", BUNDLES["v41"], "primary-70b", {"web_search": True})
    assert answer.prompt_hash == hashlib.sha256(answer.prompt.encode()).hexdigest()
    assert "What is the refund policy?" in answer.prompt


def test_traces_survive_a_warroom_outage(recorder: tuple[Recorder, str]) -> None:
    sink, sink_url = recorder
    sink.fail_next = 2
    app = create_app(warroom_url=sink_url, warroom_token="t", trace_interval=0.1)
    with serve(app) as url, httpx.Client(base_url=url) as client:
        ids = {client.post("/v1/answer", json={"question": "What are your support hours?"}).json()["request_id"]
               for _ in range(3)}
        delivered = lambda: [e["request_id"] for r in sink.requests[2:] for e in json.loads(r["body"])]  # noqa: E731
        wait_until(lambda: set(delivered()) == ids, what="traces after the outage")
    assert sorted(delivered()) == sorted(ids)  # each delivered once


def test_unleash_kill_switch_turns_a_tool_off(recorder: tuple[Recorder, str]) -> None:
    flags, flags_url = recorder
    flags.responses["/api/client/features"] = {"version": 2, "features": [
        {"name": "llm.tool.web_search", "enabled": False, "strategies": []},
        {"name": "llm.tool.order_lookup", "enabled": True, "strategies": []}]}
    app = create_app(control_token=TOKEN, unleash_url=flags_url, unleash_token="*:production.abc",
                     unleash_interval=0.05)
    with serve(app) as url, httpx.Client(base_url=url, headers=AUTH) as client:
        state = wait_until(lambda: (s := client.get("/control/state").json())["source"] == "unleash" and s,
                           what="the first Unleash poll")
        assert state["tools"] == {"web_search": False, "order_lookup": True}
        answer = client.post("/v1/answer", json={"question": "What is the refund policy?"}).json()
        assert answer["tool_calls"] == []
    poll = next(r for r in flags.requests if r["path"] == "/api/client/features")
    assert poll["headers"]["authorization"] == "*:production.abc"
