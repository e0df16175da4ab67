"""``/api/bundles`` through real HTTP, and the lineage service behind it, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from bot.errors import NotFound
from bot.releases import bundles
from bot.store.db import transaction
from bot.store.models import Bundle
from tests.conftest import Warroom

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)
V41 = {"prompt_version": "answer-v41", "model_route": "primary-70b", "retriever_snapshot": "policy-2026-02-01",
       "tool_contracts": ["search@3", "refunds@1"], "guardrail_policy": "gp-7", "eval_suite": "core-112",
       "rollout_policy": "canary-10"}
V42 = {**V41, "prompt_version": "answer-v42", "retriever_snapshot": "policy-2026-03-14"}




def register(warroom: Warroom, version: str, components: dict[str, Any], at: datetime | None = None,
             service: str = "llm-gateway", **extra: Any) -> dict[str, Any]:
    body = {"service": service, "version": version, "components": components, **extra}
    if at is not None:
        body["deployed_at"] = at.isoformat()
    response = warroom.post("/api/bundles", body)
    assert response.status_code == 201, response.text
    return response.json()


def listing(warroom: Warroom, **params: str) -> list[dict[str, Any]]:
    response = warroom.http.get("/api/bundles", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def test_registering_a_bundle_answers_201_with_it_and_its_change(warroom):
    before = datetime.now(timezone.utc)
    first = register(warroom, "b-41", V41)
    assert (first["service"], first["version"], first["components"]) == ("llm-gateway", "b-41", V41)
    assert datetime.fromisoformat(first["deployed_at"]) >= before.replace(microsecond=0)
    assert first["known_good"] is False and first["previous_version"] is None
    assert first["change_summary"].startswith("prompt none→answer-v41, model route none→primary-70b")

    second = register(warroom, "b-42", V42)
    assert second["previous_version"] == "b-41"
    assert second["changes"] == [
        {"name": "prompt_version", "old": "answer-v41", "new": "answer-v42"},
        {"name": "retriever_snapshot", "old": "policy-2026-02-01", "new": "policy-2026-03-14"}]
    assert second["change_summary"] == ("prompt answer-v41→answer-v42, "
                                        "retriever snapshot policy-2026-02-01→policy-2026-03-14")


def test_the_list_is_newest_first_per_service_with_changes(warroom):
    register(warroom, "b-41", V41, at=T0)
    register(warroom, "b-43", {**V42, "model_route": "fallback-8b", "feature_flags": "ff-2"}, at=T0 + timedelta(days=2))
    register(warroom, "b-42", V42, at=T0 + timedelta(days=1))
    register(warroom, "s-1", {"prompt_version": "search-v1"}, at=T0 + timedelta(days=3), service="search-api")

    mine = listing(warroom, service="llm-gateway")
    assert [b["version"] for b in mine] == ["b-43", "b-42", "b-41"]
    assert mine[0]["change_summary"] == "model route primary-70b→fallback-8b, feature flags none→ff-2"
    assert [b["version"] for b in listing(warroom)] == ["s-1", "b-43", "b-42", "b-41"]
    assert [b["version"] for b in listing(warroom, service="llm-gateway", limit="1")] == ["b-43"]
    assert listing(warroom, service="nobody") == []
    assert warroom.http.get("/api/bundles", params={"limit": "lots"}).status_code == 400


def test_re_registering_a_version_is_a_redeploy_not_a_second_row(warroom):
    register(warroom, "b-41", V41, at=T0)
    register(warroom, "b-42", V42, at=T0 + timedelta(days=1))
    rollback = register(warroom, "b-41", V41, at=T0 + timedelta(days=2))
    assert rollback["previous_version"] == "b-42"
    assert rollback["change_summary"].startswith("prompt answer-v42→answer-v41")
    assert warroom.count(Bundle) == 2
    with transaction(warroom.runtime.engine) as session:
        assert bundles.live_bundle(session, "llm-gateway").version == "b-41"
        assert bundles.live_bundle(session, "llm-gateway", T0 + timedelta(days=1, hours=1)).version == "b-42"
        assert bundles.live_bundle(session, "llm-gateway", T0 - timedelta(seconds=1)) is None


def test_known_good_marking_and_the_last_known_good_before_a_version(warroom):
    register(warroom, "b-40", V41, at=T0 - timedelta(days=1), known_good=True, reason="passed core-112")
    register(warroom, "b-41", V41, at=T0)
    register(warroom, "b-42", V42, at=T0 + timedelta(days=1))

    response = warroom.post("/api/bundles/llm-gateway/b-41/known-good", {"reason": "a week at 99.9%"})
    assert response.status_code == 200, response.text
    assert (response.json()["known_good"], response.json()["known_good_reason"]) == (True, "a week at 99.9%")
    assert warroom.post("/api/bundles/llm-gateway/b-42/known-good", content=b"").json()["known_good"] is True

    flags = {b["version"]: (b["known_good"], b["known_good_reason"]) for b in listing(warroom)}
    assert flags == {"b-40": (True, "passed core-112"), "b-41": (True, "a week at 99.9%"), "b-42": (True, None)}
    with transaction(warroom.runtime.engine) as session:
        assert bundles.last_known_good(session, "llm-gateway").version == "b-42"
        assert bundles.last_known_good(session, "llm-gateway", before_version="b-42").version == "b-41"
        assert bundles.last_known_good(session, "llm-gateway", before_version="b-40") is None
        assert bundles.last_known_good(session, "search-api") is None
        with pytest.raises(NotFound, match="no bundle 'b-99'"):
            bundles.last_known_good(session, "llm-gateway", before_version="b-99")


def test_re_registering_without_a_verdict_keeps_known_good(warroom):
    register(warroom, "b-41", V41, at=T0, known_good=True)
    assert register(warroom, "b-41", V41, at=T0)["known_good"] is True
    assert register(warroom, "b-41", V41, at=T0, known_good=False)["known_good"] is False


def test_marking_an_unknown_bundle_is_404(warroom):
    response = warroom.post("/api/bundles/llm-gateway/b-404/known-good", {})
    assert response.status_code == 404 and "b-404" in response.json()["error"]


@pytest.mark.parametrize(("change", "field"), [
    ({"version": "b 42"}, "version"),
    ({"version": "v" * 101}, "version"),
    ({"service": "llm/gateway"}, "service"),
    ({"service": ""}, "service"),
    ({"components": {}}, "components"),
    ({"components": {"prompt_version": None}}, "components.prompt_version"),
    ({"components": {"prompt_version": {"nested": "dict"}}}, "components.prompt_version"),
    ({"deployed_at": "yesterday"}, "deployed_at"),
    ({"known_good": "maybe"}, "known_good"),
    ({"colour": "blue"}, "colour"),
], ids=["space", "too-long", "slash", "empty-service", "no-components", "null", "dict", "date", "bool", "extra"])
def test_an_invalid_bundle_is_422_naming_the_field_and_stores_nothing(warroom, change, field):
    body = {"service": "llm-gateway", "version": "b-42", "components": V42, **change}
    response = warroom.post("/api/bundles", body)
    assert response.status_code == 422, response.text
    assert any(p["field"].startswith(field) for p in response.json()["problems"]), response.json()
    assert warroom.count(Bundle) == 0


def test_component_values_may_be_numbers_bools_and_lists(warroom):
    components = {"prompt_version": "answer-v42", "temperature": 0.2, "max_tokens": 800, "streaming": True,
                  "tool_contracts": ["search@3"]}
    assert register(warroom, "b-42", components)["components"] == components


@pytest.mark.parametrize("path", ["/api/bundles", "/api/bundles/llm-gateway/b-41/known-good"])
def test_writing_bundles_needs_the_alert_token(warroom, path):
    response = warroom.post(path, {"service": "llm-gateway", "version": "b-41", "components": V41}, token=None)
    assert response.status_code == 401
    assert warroom.count(Bundle) == 0


def test_a_body_that_is_not_json_is_400(warroom):
    response = warroom.post("/api/bundles", content=b"service=llm-gateway")
    assert response.status_code == 400 and "not valid JSON" in response.json()["error"]


def test_the_list_says_which_gate_run_made_a_bundle_known_good_and_which_was_marked_by_hand(warroom):
    register(warroom, "b-41", V41, at=T0, known_good=True)
    register(warroom, "b-43", V42, at=T0 + timedelta(days=1))
    with transaction(warroom.runtime.engine) as session:
        bundles.mark_known_good(session, "llm-gateway", "b-43", reason="eval gate run #5 passed", run_id=5)
    by_version = {b["version"]: b for b in listing(warroom, service="llm-gateway")}
    assert by_version["b-43"]["known_good_by"] == "gate" and by_version["b-43"]["known_good_run_id"] == 5
    assert by_version["b-43"]["known_good_at"] is not None
    assert by_version["b-41"]["known_good_by"] == "hand" and by_version["b-41"]["known_good_run_id"] is None
