"""What changed: change events from the systems that make them, shown on incidents."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from bot.store.db import transaction
from bot.store.models import ChangeEvent
from tests.alerts.payloads import am_alert, am_payload
from tests.automation.conftest import AUTH
from tests.conftest import Warroom
from tests.support import wait_for


def card_text(harness, channel: str) -> str:
    return str(harness.card(channel).blocks)


def test_a_new_incident_names_the_deploy_before_it_on_the_card_and_the_timeline(start_warroom, llm_service):
    slack = start_warroom(WARROOM_AUTOMATION=False)
    deployed = datetime.now(UTC) - timedelta(minutes=17, seconds=10)
    response = slack.http.post("/api/bundles", headers=AUTH, json={
        "service": "llm-gateway", "version": "v42", "components": {"prompt_version": "answer-v42"},
        "deployed_at": deployed.isoformat(), "deployed_by": "deploy-bot"})
    assert response.status_code == 201, response.text
    incident_id = slack.fire(am_payload([am_alert("primary-70b")]))
    channel = slack.room(incident_id)
    assert "Changed 17 min before: bundle v42 by deploy-bot" in card_text(slack, channel)
    timeline = slack.incident(incident_id)["timeline"]
    change = next(e for e in timeline if e["kind"] == "change")
    assert change["text"] == "Change: changed 17 min before: bundle v42 by deploy-bot"
    assert [e["kind"] for e in timeline].index("change") < [e["kind"] for e in timeline].index("opened")


def test_a_change_posted_during_an_incident_reaches_its_card_and_timeline_once(start_warroom, llm_service):
    # Card refreshes after alerts are spaced (here far apart); a change is news, shown at once.
    slack = start_warroom(WARROOM_AUTOMATION=False, WARROOM_CARD_REFRESH_SECONDS=600)
    incident_id = slack.fire(am_payload([am_alert("primary-70b")]))
    channel = slack.room(incident_id)
    slack.fire(am_payload([am_alert("primary-70b"), am_alert("fallback-8b")]))  # the card refreshed after alerts
    slack.settle()
    change = {"service": "llm-gateway", "kind": "prompt", "summary": "prompt answer-v43 (shorter citations)",
              "who": "priya", "link": "https://git.example/prompts/pull/7", "id": "prompt-7"}
    first = slack.http.post("/api/changes", headers=AUTH, json=change)
    assert first.status_code == 201 and first.json()["incidents"] == [incident_id], first.text
    wait_for(lambda: "after it opened: prompt answer-v43 (shorter citations) by priya" in card_text(slack, channel),
             what="the card to show the change")
    again = slack.http.post("/api/changes", headers=AUTH, json=change)  # the sender retries
    assert again.status_code == 200 and again.json() == {"id": None, "duplicate": True, "incidents": []}
    # Not `settle`: the announcement's refresh stays merged for the spacing, by design.
    wait_for(lambda: any("Change: prompt answer-v43" in m.text for m in slack.messages(channel)),
             what="the change's line in the channel")
    told = [e for e in slack.incident(incident_id)["timeline"] if e["kind"] == "change"]
    assert len(told) == 1 and "https://git.example/prompts/pull/7" in told[0]["text"]
    assert sum("Change: prompt answer-v43" in m.text for m in slack.messages(channel)) == 1


@pytest.mark.parametrize("body, status, words", [
    ({"kind": "prompt", "summary": "x"}, 422, "service"),
    ({"service": "s", "kind": "mood", "summary": "x"}, 422, "kind"),
    ({"service": "s", "kind": "flag", "summary": "x", "link": "javascript:alert(1)"}, 422, "must be an http(s) URL"),
    ({"service": "s", "kind": "flag", "summary": "x", "when": "yesterday"}, 422, "when"),
    ([1, 2], 422, "invalid change"),
])
def test_a_bad_change_is_refused_saying_what_is_wrong(warroom: Warroom, body, status: int, words: str):
    response = warroom.post("/api/changes", body)
    assert response.status_code == status and words in response.text, response.text
    assert warroom.count(ChangeEvent) == 0


def test_changes_need_the_bearer_token(warroom: Warroom):
    body = {"service": "s", "kind": "flag", "summary": "x"}
    assert warroom.post("/api/changes", body, token=None).status_code == 401
    assert warroom.post("/api/changes", body, token="wrong").status_code == 401
    assert warroom.post("/webhooks/unleash?service=s", {"id": 1, "type": "feature-created"},
                        token=None).status_code == 401


def test_an_unleash_event_needs_the_service_in_the_webhook_url(warroom: Warroom):
    response = warroom.post("/webhooks/unleash", {"id": 1, "type": "feature-created", "featureName": "x"})
    assert response.status_code == 400 and "/webhooks/unleash?service=<name>" in response.text


@pytest.fixture(scope="module")
def unleash() -> Iterator:
    from tests.actions.unleash_server import unleash_server
    with unleash_server() as server:
        yield server


@pytest.fixture
def warroom_on_sqlite(tmp_path) -> Iterator[Warroom]:
    """One database is enough here: what is under test is Unleash's delivery, not the store."""
    from bot.store.db import make_engine, upgrade
    from tests.conftest import make_settings, serve_warroom

    url = f"sqlite:///{tmp_path / 'warroom.db'}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    with serve_warroom(make_settings(url)) as running:
        yield running


def test_unleash_s_webhook_addon_reports_flag_flips_as_changes(unleash, warroom_on_sqlite: Warroom):
    warroom = warroom_on_sqlite
    flag = "llm.tool.web_search"

    def summaries() -> list[str]:
        with transaction(warroom.runtime.engine) as session:
            return [c.summary for c in session.execute(select(ChangeEvent).where(ChangeEvent.source == "unleash"))
                    .scalars()]

    with unleash.admin() as admin:
        created = admin.post("/api/admin/addons", json={
            "provider": "webhook", "enabled": True, "description": "warroom change events",
            "parameters": {"url": f"{warroom.url}/webhooks/unleash?service=llm-gateway",
                           "authorization": "Bearer test-alert-token"},
            "events": ["feature-environment-enabled", "feature-environment-disabled"],
            "projects": [], "environments": []})
        assert created.status_code in (200, 201), created.text
        assert admin.post("/api/admin/projects/default/features", json={"name": flag}).status_code in (200, 201)
        state = iter(["on", "off"] * 100)

        # Unleash reads its addon list through a cache that lives up to a minute: flip the flag
        # until the events reach warroom.
        def delivered() -> list[str]:
            found = summaries()
            if not found:
                flipped = admin.post(f"/api/admin/projects/default/features/{flag}"
                                     f"/environments/development/{next(state)}")
                assert flipped.status_code in (200, 202, 204), flipped.text
            return found

        found = wait_for(delivered, timeout=120, interval=2, what="Unleash's webhook")
    assert any(s in (f"flag {flag} switched on in development", f"flag {flag} switched off in development")
               for s in found), found
    with transaction(warroom.runtime.engine) as session:
        row = session.execute(select(ChangeEvent).where(ChangeEvent.source == "unleash")).scalars().first()
        assert row is not None and row.service == "llm-gateway" and row.kind == "flag" and row.actor
