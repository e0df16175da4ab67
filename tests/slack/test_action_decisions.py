"""Nobody acts alone: undo, cancel, confirm and approve follow the same rules as running an action,
a waiting run lapses, and an incident that ended takes its undecided actions with it."""

from __future__ import annotations

from datetime import timedelta

from bot.clock import utcnow
from bot.store.db import transaction
from bot.store.models import ActionRun
from tests.slack.conftest import ALEX, INCIDENTS, PRIYA, SAM, reply_text
from tests.slack.test_actions import llm_service, room, run_card  # noqa: F401  (fixtures)
from tests.support import wait_for


def card_text(slack, channel: str, run_id: int) -> str:
    return str(run_card(slack, channel, run_id).blocks)


def wait_card(slack, channel: str, run_id: int, text: str) -> str:
    def saying() -> str | None:
        shown = card_text(slack, channel, run_id)
        return shown if text in shown else None
    return wait_for(saying, what=f"run #{run_id}'s card to say {text!r}")


def click(slack, channel: str, run_id: int, action: str, user: str) -> None:
    wait_card(slack, channel, run_id, action)  # the button is on the card
    slack.emu.click(channel, run_card(slack, channel, run_id).ts, action, str(run_id), user=user)


def roll_back_to_v41(slack, channel: str, llm_service) -> None:  # noqa: F811
    """Priya asks for the rollback and confirms it, Sam approves it; the service reports v41."""
    slack.command("/incident rollback", user=PRIYA, channel=channel)
    click(slack, channel, 1, "action.confirm", PRIYA)
    click(slack, channel, 1, "action.approve", SAM)
    wait_for(lambda: llm_service.state()["bundle"] == "v41", what="the rollback")
    wait_card(slack, channel, 1, "succeeded")
    slack.settle()


def test_undo_of_an_approved_rollback_needs_confirmation_and_a_second_person(llm_service, slack, room):  # noqa: F811
    incident_id, channel = room
    roll_back_to_v41(slack, channel, llm_service)

    reply = slack.command("/incident undo 1", user=SAM, channel=channel)
    assert "press Confirm" in reply_text(reply)
    card = wait_card(slack, channel, 2, "waiting for confirmation")
    # The card tells what the undo does: it restores v42, it does not deploy the rollback's v41.
    assert "restores previous_bundle=`v42`" in card and "bundle v41 → v42" in card
    assert "PUT " + llm_service.url + "/control/bundle" in card and '"version": "v42"' in card.replace("'", '"')
    assert llm_service.state()["bundle"] == "v41"  # nothing happens on request

    click(slack, channel, 2, "action.confirm", PRIYA)  # only the requester confirms
    wait_for(lambda: any("Only <@U0SAM>" in t and "confirm" in t for t in slack.said_to(PRIYA)),
             what="Priya's confirmation refused")
    click(slack, channel, 2, "action.confirm", SAM)
    wait_card(slack, channel, 2, "waiting for a second person")
    click(slack, channel, 2, "action.approve", SAM)  # the undo's requester cannot approve it
    wait_for(lambda: any("cannot approve" in t for t in slack.said_to(SAM)), what="self-approval refused")
    assert llm_service.state()["bundle"] == "v41"

    click(slack, channel, 2, "action.approve", PRIYA)
    wait_for(lambda: llm_service.state()["bundle"] == "v42", what="the undo")
    card = wait_card(slack, channel, 2, "succeeded")
    assert "approved by <@U0PRIYA>" in card
    assert "Live now (verified):* bundle is 'v42'" in card and "Changed:* bundle v41 → v42" in card
    kinds = [(e["kind"], e["actor"]) for e in slack.incident(incident_id)["timeline"]
             if "run #2" in e["text"] or "undo of run #1" in e["text"]]
    assert ("action_confirmed", SAM) in kinds and ("action_approved", PRIYA) in kinds
    assert ("action_succeeded", "warroom") in kinds
    slack.settle()
    assert any("(verified)" in m.text and "undo of run #1" in m.text for m in slack.messages(channel))


def test_undo_on_a_resolved_incident_is_refused_until_it_is_reopened(llm_service, slack, room):  # noqa: F811
    incident_id, channel = room
    roll_back_to_v41(slack, channel, llm_service)
    slack.resolve(channel, user=PRIYA)

    reply = reply_text(slack.command("/incident undo 1", user=SAM, channel=channel))
    assert "resolved" in reply and "reopen it first" in reply
    assert not any(e["kind"] == "action_requested" and "undo" in e["text"]
                   for e in slack.incident(incident_id)["timeline"])

    slack.command("/incident reopen", user=PRIYA, channel=channel)
    assert "press Confirm" in reply_text(slack.command("/incident undo 1", user=SAM, channel=channel))


def test_an_action_on_a_resolved_or_closed_incident_is_refused(llm_service, slack, room):  # noqa: F811
    incident_id, channel = room
    slack.resolve(channel, user=PRIYA)
    reply = reply_text(slack.command("/incident disable-tool web_search", user=PRIYA, channel=channel))
    assert "is resolved; reopen it first" in reply
    slack.command("/incident close", user=PRIYA, channel=channel)
    reply = reply_text(slack.command(f"/incident run #{incident_id} fallback", user=PRIYA, channel=INCIDENTS))
    assert f"Incident #{incident_id} is closed" in reply and "reopen it first" in reply
    assert not any(e["kind"] == "action_requested" for e in slack.incident(incident_id)["timeline"])


def test_someone_who_may_not_run_an_action_cannot_cancel_or_approve_it(llm_service, slack, room):  # noqa: F811
    _, channel = room
    slack.command("/incident rollback", user=PRIYA, channel=channel)
    wait_card(slack, channel, 1, "waiting for confirmation")
    click(slack, channel, 1, "action.cancel", ALEX)  # Alex is not in the incident channel
    wait_for(lambda: any("may not cancel" in t for t in slack.said_to(ALEX)), what="Alex's cancel refused")
    click(slack, channel, 1, "action.confirm", PRIYA)
    wait_card(slack, channel, 1, "waiting for a second person")
    click(slack, channel, 1, "action.approve", ALEX)
    wait_for(lambda: any("may not approve" in t for t in slack.said_to(ALEX)), what="Alex's approval refused")
    slack.settle()
    with transaction(slack.runtime.engine) as session:
        assert session.get(ActionRun, 1).status == "awaiting_approval"
    assert llm_service.state()["bundle"] == "v42"

    click(slack, channel, 1, "action.cancel", SAM)  # a responder may withdraw someone else's request
    wait_card(slack, channel, 1, "cancelled")
    assert llm_service.state()["bundle"] == "v42"


def test_an_approval_after_expiry_runs_nothing_and_says_so(llm_service, slack, room):  # noqa: F811
    incident_id, channel = room
    slack.command("/incident rollback", user=PRIYA, channel=channel)
    click(slack, channel, 1, "action.confirm", PRIYA)
    wait_card(slack, channel, 1, "waiting for a second person")
    with transaction(slack.runtime.engine) as session:  # the request is now 16 minutes old
        run = session.get(ActionRun, 1)
        run.requested_at = utcnow() - timedelta(minutes=16)

    click(slack, channel, 1, "action.approve", SAM)
    said = wait_for(lambda: next((t for t in slack.said_to(SAM) if "expired" in t), None), what="the expiry notice")
    assert "Nothing ran" in said and "15 min" in said
    wait_card(slack, channel, 1, "expired")
    slack.settle()
    assert llm_service.state()["bundle"] == "v42"
    kinds = [e["kind"] for e in slack.incident(incident_id)["timeline"]]
    assert "action_expired" in kinds and "action_approved" not in kinds


def test_waiting_runs_expire_on_their_own_after_the_configured_time(llm_service, slack, room):  # noqa: F811
    from bot import scheduler

    _, channel = room
    slack.command("/incident fallback", user=PRIYA, channel=channel)
    wait_card(slack, channel, 1, "waiting for confirmation")
    assert scheduler._end_stale_actions(slack.warroom, utcnow() + timedelta(minutes=14)) == 0
    assert scheduler._end_stale_actions(slack.warroom, utcnow() + timedelta(minutes=15, seconds=1)) == 1
    slack.runtime.wake.set()
    card = wait_card(slack, channel, 1, "expired")
    assert "action.confirm" not in card  # nothing left to click


def test_resolving_the_incident_cancels_its_pending_approvals(llm_service, slack, room):  # noqa: F811
    incident_id, channel = room
    slack.command("/incident rollback", user=PRIYA, channel=channel)
    click(slack, channel, 1, "action.confirm", PRIYA)
    card = wait_card(slack, channel, 1, "waiting for a second person")
    ts = run_card(slack, channel, 1).ts
    slack.resolve(channel, user=PRIYA)
    slack.settle()
    assert "cancelled" in card_text(slack, channel, 1) and "action.approve" not in card_text(slack, channel, 1)
    # Sam approves from the card as it was before it refreshed (a stale screen): nothing runs.
    slack.emu.driver._send_payload(_approve_payload(slack, channel, ts, card))
    wait_for(lambda: any("nothing to approve" in t for t in slack.said_to(SAM)), what="the late approval refused")
    assert llm_service.state()["bundle"] == "v42"
    assert any(e["kind"] == "action_cancelled" and "resolved" in e["text"]
               for e in slack.incident(incident_id)["timeline"])


def _approve_payload(slack, channel: str, ts: str, _card: str) -> dict:
    from bot.emulator import payloads

    ws = slack.emu.state
    message = slack.emu.driver._message(channel, ts, SAM)
    action = {"type": "button", "action_id": "action.approve", "block_id": "run:1", "value": "1"}
    _, url = slack.emu.driver._response_url(SAM, channel, ts)
    return payloads.block_actions(ws, message, SAM, action, url, ws.new_trigger(SAM))


def test_approval_timeout_is_a_setting():
    from bot.config import Settings

    assert Settings().approval_timeout_minutes == 15
    assert Settings(WARROOM_APPROVAL_TIMEOUT_MINUTES="30").approval_timeout_minutes == 30


def test_alertmanager_resolving_the_incident_cancels_a_waiting_confirmation(llm_service, slack, room):  # noqa: F811
    from tests.alerts.payloads import am_alert, am_payload

    incident_id, channel = room
    slack.command("/incident disable-tool web_search", user=PRIYA, channel=channel)
    wait_card(slack, channel, 1, "waiting for confirmation")
    slack.fire(am_payload([am_alert("primary-70b", status="resolved", ends="2026-03-14T02:30:00Z")]))
    assert slack.incident(incident_id)["status"] == "resolved"
    slack.settle()
    assert "cancelled" in card_text(slack, channel, 1)
    assert llm_service.state()["tools"]["web_search"] is True


def test_an_approval_clicked_many_times_at_once_runs_the_action_once(llm_service, slack, room):  # noqa: F811
    from concurrent.futures import ThreadPoolExecutor

    incident_id, channel = room
    slack.command("/incident rollback", user=PRIYA, channel=channel)
    click(slack, channel, 1, "action.confirm", PRIYA)
    wait_card(slack, channel, 1, "action.approve")
    card_ts = run_card(slack, channel, 1).ts
    with ThreadPoolExecutor(max_workers=6) as pool:  # Sam's impatient clicks, and Slack's retries of them
        list(pool.map(lambda _: slack.emu.click(channel, card_ts, "action.approve", "1", user=SAM), range(6)))
    wait_card(slack, channel, 1, "succeeded")
    slack.settle()
    timeline = [e for e in slack.incident(incident_id)["timeline"] if "run #1" in e["text"]]
    assert [e["kind"] for e in timeline].count("action_approved") == 1
    assert [e["kind"] for e in timeline].count("action_succeeded") == 1
    with transaction(slack.runtime.engine) as session:
        assert session.get(ActionRun, 1).status == "succeeded"
    assert llm_service.state()["bundle"] == "v41"
