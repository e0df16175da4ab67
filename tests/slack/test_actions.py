"""Acting from Slack against the real example LLM service: confirm, approve, verify, undo, safety."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from bot.serving import ServerThread
from examples.llm_service import create_app as service_app
from tests.alerts.payloads import am_alert, am_payload
from tests.slack.conftest import ALEX, PRIYA, SAM, reply_text
from tests.support import wait_for

CONTROL_TOKEN = "test-control-token"


class Service:
    def __init__(self, url: str) -> None:
        self.url = url
        self.http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {CONTROL_TOKEN}"}, timeout=5)

    def state(self) -> dict:
        return self.http.get("/control/state").json()


@pytest.fixture
def llm_service(monkeypatch: pytest.MonkeyPatch) -> Iterator[Service]:
    server = ServerThread(service_app(control_token=CONTROL_TOKEN, bundle="v42")).start()
    monkeypatch.setenv("WARROOM_TARGET_LLM_GATEWAY", server.url)
    monkeypatch.setenv("WARROOM_SECRET_CONTROL_TOKEN", CONTROL_TOKEN)
    yield Service(server.url)
    server.stop()


@pytest.fixture
def room(llm_service, slack):
    incident_id = slack.fire(am_payload([am_alert("primary-70b")]))
    channel = slack.room(incident_id)
    # The channel has Priya and Sam (ml-oncall); register the bundles the rollback chooses from.
    auth = {"Authorization": "Bearer test-alert-token"}
    for version, good, deployed in (("v41", True, "2026-11-01T00:00:00Z"), ("v42", False, "2026-11-21T00:00:00Z")):
        components = {"prompt_version": f"answer-{version}", "model_route": "primary-70b",
                      "retriever_snapshot": "policy-2026-02-01" if version == "v41" else "policy-2026-03-14"}
        response = slack.http.post("/api/bundles", headers=auth, json={"service": "llm-gateway", "version": version,
                                   "components": components, "deployed_at": deployed, "known_good": good})
        assert response.status_code in (200, 201), response.text
    return incident_id, channel


def run_card(slack, channel, run_id: int):
    return wait_for(lambda: next((m for m in slack.messages(channel) if m.blocks and any(
        b.get("block_id") == f"run:{run_id}" or f"*Run #{run_id}:" in str(b) for b in m.blocks)), None),
        what=f"the card of run #{run_id}")


def test_fallback_needs_confirmation_then_switches_the_route_and_is_verified(llm_service, slack, room):
    incident_id, channel = room
    reply = slack.command("/incident fallback", user=PRIYA, channel=channel)
    assert reply.elapsed_s < 3 and "press Confirm" in reply_text(reply)
    card = run_card(slack, channel, 1)
    assert "model route → safe-fallback-8b" in str(card.blocks) and "PUT " + llm_service.url in str(card.blocks)
    assert CONTROL_TOKEN not in str(card.blocks)
    assert llm_service.state()["route"] == "primary-70b"  # nothing happens before confirmation

    slack.emu.click(channel, card.ts, "action.confirm", "1", user=PRIYA)
    wait_for(lambda: llm_service.state()["route"] == "safe-fallback-8b", what="the route switch")
    slack.settle()
    assert any("succeeded" in m.text and "(verified)" in m.text for m in slack.messages(channel))
    incident = slack.incident(incident_id)
    assert incident["status"] == "mitigated"
    kinds = [e["kind"] for e in incident["timeline"]]
    assert {"action_requested", "action_confirmed", "action_succeeded", "mitigated"} <= set(kinds)


def test_double_click_and_repeated_command_run_once(llm_service, slack, room):
    _, channel = room
    slack.command("/incident disable-tool web_search", user=PRIYA, channel=channel)
    again = slack.command("/incident disable-tool web_search", user=PRIYA, channel=channel)
    assert "already" in reply_text(again)
    card = run_card(slack, channel, 1)
    first = slack.emu.click(channel, card.ts, "action.confirm", "1", user=PRIYA)
    # The same click again, from a card that had not refreshed yet (a double click, a Slack retry).
    import threading
    threads = [threading.Thread(target=slack.emu.driver._send_payload, args=(first.request,)) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wait_for(lambda: llm_service.state()["tools"]["web_search"] is False, what="web_search off")
    slack.settle()
    runs = [e for e in slack.incident(1)["timeline"] if e["kind"] == "action_succeeded"]
    assert len(runs) == 1


def test_rollback_proposes_last_known_good_and_needs_a_second_person(llm_service, slack, room):
    incident_id, channel = room
    slack.command("/incident rollback", user=PRIYA, channel=channel)
    card = run_card(slack, channel, 1)
    assert "bundle=`v41`" in str(card.blocks) and "v42 → v41" in str(card.blocks)
    assert "prompt" in str(card.blocks)  # which components change
    slack.emu.click(channel, card.ts, "action.confirm", "1", user=PRIYA)
    wait_for(lambda: "action.approve" in str(run_card(slack, channel, 1).blocks), what="the approval step")
    slack.emu.click(channel, card.ts, "action.approve", "1", user=PRIYA)  # self-approval
    wait_for(lambda: any("cannot approve" in t for t in slack.said_to(PRIYA)), what="self-approval refused")
    assert llm_service.state()["bundle"] == "v42"
    slack.emu.click(channel, card.ts, "action.approve", "1", user=SAM)
    wait_for(lambda: llm_service.state()["bundle"] == "v41", what="the rollback")
    slack.settle()
    approved = [e for e in slack.incident(incident_id)["timeline"] if e["kind"] == "action_approved"]
    assert approved[0]["actor"] == SAM


def test_undo_restores_the_previous_route(llm_service, slack, room):
    _, channel = room
    slack.command("/incident fallback", user=PRIYA, channel=channel)
    slack.emu.click(channel, run_card(slack, channel, 1).ts, "action.confirm", "1", user=PRIYA)
    wait_for(lambda: llm_service.state()["route"] == "safe-fallback-8b", what="fallback")
    slack.settle()
    # The undo is a fallback run too: its requester confirms it before anything changes.
    assert "press Confirm" in reply_text(slack.command("/incident undo 1", user=SAM, channel=channel))
    assert llm_service.state()["route"] == "safe-fallback-8b"
    slack.emu.click(channel, run_card(slack, channel, 2).ts, "action.confirm", "2", user=SAM)
    wait_for(lambda: llm_service.state()["route"] == "primary-70b", what="undo")
    card = wait_for(lambda: (c := run_card(slack, channel, 2)) and "succeeded" in str(c.blocks) and c,
                    what="the undo's card to show the result")
    assert "route=`primary-70b`" in str(card.blocks) and "verify" in str(card.blocks)


def test_not_allowed_user_is_refused_with_a_reason(llm_service, slack, room):
    _, channel = room
    reply = slack.command("/incident fallback", user=ALEX, channel=channel)  # Alex is not in the channel
    assert "may not run fallback" in reply_text(reply)


def test_injected_params_are_refused(llm_service, slack, room):
    _, channel = room
    for bad in ("{{7*7}}", "../../etc", "web_search%0Aevil"):
        reply = slack.command(f"/incident disable-tool {bad}", user=PRIYA, channel=channel)
        assert "tool" in reply_text(reply) and "⚠️" in reply_text(reply)
    assert slack.incident(1)["status"] == "triggered"
    assert all(e["kind"] != "action_requested" for e in slack.incident(1)["timeline"])


def test_verify_failing_marks_the_run_failed_and_says_so(llm_service, slack, room, monkeypatch):
    _, channel = room
    slack.command("/incident fallback route=no-such-route", user=PRIYA, channel=channel)
    slack.emu.click(channel, run_card(slack, channel, 1).ts, "action.confirm", "1", user=PRIYA)
    wait_for(lambda: any("failed" in m.text and "run #1" in m.text for m in slack.messages(channel)),
             timeout=20, what="the failure line")
    assert slack.incident(1)["status"] == "triggered"


def test_slow_control_plane_does_not_delay_slacks_answer(llm_service, slack, room):
    """The run happens in the worker: the confirm click is answered at once however long it takes."""
    _, channel = room
    slack.command("/incident enable-tool web_search", user=PRIYA, channel=channel)
    reply = slack.emu.click(channel, run_card(slack, channel, 1).ts, "action.confirm", "1", user=PRIYA)
    assert reply.status == 200 and reply.elapsed_s < 3


def test_dry_run_shows_the_exact_requests_with_secrets_masked_and_sends_nothing(llm_service, slack, room):
    _, channel = room
    slack.command("/incident fallback", user=PRIYA, channel=channel)
    slack.emu.click(channel, run_card(slack, channel, 1).ts, "action.dry_run", "1", user=PRIYA)
    preview = wait_for(lambda: next((t for t in slack.said_to(PRIYA) if t.startswith("Dry run")), None),
                       what="the dry-run preview")
    assert f"PUT {llm_service.url}/control/route" in preview and "safe-fallback-8b" in preview
    assert CONTROL_TOKEN not in preview
    assert llm_service.state()["route"] == "primary-70b"


def test_a_run_interrupted_mid_way_becomes_unknown_and_is_not_run_again(llm_service, slack, room):
    """A crash after the run started: the worker finds it `running` and says so instead of re-running."""
    from bot.store.db import transaction
    from bot.store.models import ActionRun

    _, channel = room
    slack.command("/incident disable-tool web_search", user=PRIYA, channel=channel)
    with transaction(slack.runtime.engine) as session:
        session.get(ActionRun, 1).status = "running"  # as a crash would leave it
    slack.warroom.actions.perform(1)
    slack.settle()
    timeline = slack.incident(1)["timeline"]
    assert any(e["kind"] == "action_unknown" and "unknown state" in e["text"] for e in timeline)
    assert llm_service.state()["tools"]["web_search"] is True  # nothing was sent
    assert "unknown" in str(run_card(slack, channel, 1).blocks)
