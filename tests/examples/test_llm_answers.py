from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from llm_loopback import serve

from examples.llm_service import ServiceState, create_app

REFUND = "What is the refund policy?"
ORDER_JSON = "Give the order status as JSON for order 1234"


@pytest.fixture
def service() -> Iterator[tuple[httpx.Client, ServiceState]]:
    state = ServiceState()
    with serve(create_app(state)) as url, httpx.Client(base_url=url) as client:
        yield client, state


def ask(client: httpx.Client, question: str) -> dict:
    response = client.post("/v1/answer", json={"question": question})
    assert response.status_code == 200
    return response.json()


def test_known_good_bundle_states_the_real_refund_policy(service) -> None:
    client, _ = service
    answer = ask(client, REFUND)
    assert answer["output"] == "Refunds are available within 30 days."
    assert (answer["bundle"], answer["route"], answer["model"]) == ("v41", "primary-70b", "primary-70b")
    assert answer["tool_calls"] == [{"name": "web_search", "ok": True, "error": None}]
    assert answer["hallucination_score"] < 0.5
    assert answer["request_id"] and answer["latency_ms"] > 0


def test_bad_bundle_hallucinates_refunds_and_breaks_json(service) -> None:
    client, state = service
    state.set_bundle("v42")
    refund = ask(client, REFUND)
    assert refund["output"] == "Refunds are available within 90 days, no receipt needed."
    assert refund["hallucination_score"] == 0.9
    order = ask(client, ORDER_JSON)
    assert order["schema_valid"] is False
    assert order["output"].startswith('{"order_id": "1234"')


def test_fix_bundle_answers_correctly(service) -> None:
    client, state = service
    state.set_bundle("v43")
    assert ask(client, REFUND)["output"] == "Refunds are available within 30 days."
    order = ask(client, ORDER_JSON)
    assert order["schema_valid"] is True and order["bundle"] == "v43"


def test_fallback_route_is_correct_and_terser_even_on_the_bad_bundle(service) -> None:
    client, state = service
    primary = ask(client, "Do you ship internationally?")["output"]
    state.set_bundle("v42")
    state.set_route("safe-fallback-8b")
    refund = ask(client, REFUND)
    assert refund["output"] == "Refunds are available within 30 days." and refund["route"] == "safe-fallback-8b"
    assert ask(client, ORDER_JSON)["schema_valid"] is True
    assert len(ask(client, "Do you ship internationally?")["output"]) < len(primary)


def test_turning_web_search_off_removes_the_v42_hallucination(service) -> None:
    client, state = service
    state.set_bundle("v42")
    state.set_tool("web_search", False)
    refund = ask(client, REFUND)
    assert refund["output"] == "Refunds are available within 30 days."
    assert refund["tool_calls"] == []


def test_disabled_order_lookup_answers_without_the_tool(service) -> None:
    client, state = service
    state.set_tool("order_lookup", False)
    answer = ask(client, "Where is my order 1234?")
    assert answer["tool_calls"] == [] and "can't look up orders" in answer["output"]


def test_failing_tool_is_reported(service) -> None:
    client, _ = service
    answer = ask(client, "Where is my order 9999?")
    assert answer["tool_calls"] == [{"name": "order_lookup", "ok": False, "error": "order 9999 not found"}]


def test_unknown_question_gets_a_polite_generic_answer(service) -> None:
    client, _ = service
    answer = ask(client, "What is the meaning of life?")
    assert answer["output"].startswith("Sorry, I can only help with")
    assert answer["schema_valid"] is None


def test_a_request_without_a_question_is_rejected(service) -> None:
    client, _ = service
    assert client.post("/v1/answer", json={"q": "x"}).status_code == 422
    assert client.post("/v1/answer", content=b"not json").status_code == 422
