"""The card and the channel topic tell the truth: status, severity, commander, live bundle after a
rollback or its undo, alert counts; resolving while alerts fire is a question; one line per
finished action; a 📌 credits whoever pinned."""

from __future__ import annotations

from bot.emulator.state import Message
from tests.alerts.payloads import am_alert, am_payload
from tests.slack.conftest import ALEX, PRIYA, SAM, reply_text
from tests.slack.test_action_decisions import click
from tests.slack.test_actions import llm_service, room, run_card  # noqa: F401 - fixtures
from tests.support import wait_for


def topic(slack, channel: str) -> str:
    return slack.emu.state.channels[channel].topic


def card_text(slack, channel: str) -> str:
    return str(slack.card(channel).blocks)


def test_topic_follows_status_severity_commander_and_alert_counts(slack):
    incident_id = slack.fire(am_payload([am_alert("a"), am_alert("b")]))
    channel = slack.room(incident_id)
    assert "triggered" in topic(slack, channel) and "2 firing, 0 resolved" in topic(slack, channel)

    slack.command("/incident ack", channel=channel)
    slack.command("/incident sev 1", channel=channel)
    slack.command(f"/incident commander <@{SAM}>", channel=channel)
    slack.fire(am_payload([am_alert("a", status="resolved", ends="2026-03-14T02:20:00Z"), am_alert("b")]))
    wait_for(lambda: topic(slack, channel).startswith(f"SEV1 · acknowledged · IC <@{SAM}>")
             and "1 firing, 1 resolved" in topic(slack, channel), what="the topic to follow the incident")
    wait_for(lambda: "SEV1" in card_text(slack, channel) and f"<@{SAM}>" in card_text(slack, channel),
             what="the card to follow the incident")


def test_card_and_topic_show_the_bundle_a_rollback_made_live_and_its_undo_brought_back(llm_service, slack, room):  # noqa: F811
    _incident_id, channel = room
    slack.command("/incident rollback", user=PRIYA, channel=channel)
    card = run_card(slack, channel, 1)
    slack.emu.click(channel, card.ts, "action.confirm", "1", user=PRIYA)
    wait_for(lambda: "action.approve" in str(run_card(slack, channel, 1).blocks), what="the approval step")
    slack.emu.click(channel, card.ts, "action.approve", "1", user=SAM)
    wait_for(lambda: "Live bundle v41" in card_text(slack, channel) and "bundle v41" in topic(slack, channel),
             what="the card and topic to show v41 live")
    assert "mitigated" in topic(slack, channel)

    assert "press Confirm" in reply_text(slack.command("/incident undo 1", user=SAM, channel=channel))
    click(slack, channel, 2, "action.confirm", SAM)  # an undo is an action: confirmed, then approved by another
    click(slack, channel, 2, "action.approve", PRIYA)
    wait_for(lambda: "Live bundle v42" in card_text(slack, channel) and "bundle v42" in topic(slack, channel),
             what="the card and topic to show v42 live again after the undo")


def test_a_finished_action_is_one_line_in_the_channel(llm_service, slack, room):  # noqa: F811
    incident_id, channel = room
    slack.command("/incident fallback", user=PRIYA, channel=channel)
    slack.emu.click(channel, run_card(slack, channel, 1).ts, "action.confirm", "1", user=PRIYA)
    wait_for(lambda: slack.incident(incident_id)["status"] == "mitigated", what="the fallback to mitigate")
    slack.settle()
    lines = [m.text for m in slack.messages(channel) if m.ephemeral_to is None and "run #1" in m.text
             and not (m.blocks and any(b.get("block_id") == "run:1" for b in m.blocks))]
    assert len(lines) == 1 and "succeeded" in lines[0] and "incident mitigated" in lines[0], lines
    assert not any(m.text.startswith("Mitigated") for m in slack.messages(channel))


def test_resolve_while_alerts_fire_asks_first_and_says_how_many(slack):
    incident_id = slack.fire(am_payload([am_alert("a"), am_alert("b")]))
    channel = slack.room(incident_id)
    reply = slack.command("/incident resolve rolled back", channel=channel)
    assert "2 alerts are still firing" in reply_text(reply)
    assert slack.incident(incident_id)["status"] == "triggered"
    prompt = next(m for m in slack.emu.messages(channel, viewer=PRIYA) if "incident.resolve_keep_open" in str(m.blocks))
    slack.emu.click(channel, prompt.ts, "incident.resolve_keep_open", None, user=PRIYA)
    wait_for(lambda: any("stays open" in t for t in slack.said_to(PRIYA)), what="the prompt to be answered")
    assert slack.incident(incident_id)["status"] == "triggered"

    assert "with 2 alert(s) still firing" in slack.resolve(channel, "rolled back")
    incident = slack.incident(incident_id)
    assert incident["status"] == "resolved" and incident["alerts_firing"] == 2


def test_the_card_resolve_button_asks_too_and_non_members_are_still_refused(slack):
    incident_id = slack.fire(am_payload([am_alert("a")]))
    channel = slack.room(incident_id)
    card = slack.card(channel)
    slack.emu.click(channel, card.ts, "incident.resolve", str(incident_id), user=PRIYA)
    wait_for(lambda: any("1 alert is still firing" in t for t in slack.said_to(PRIYA)), what="the question")
    slack.emu.click(channel, card.ts, "incident.resolve", str(incident_id), user=ALEX)
    wait_for(lambda: any("Only people in the incident channel" in t for t in slack.said_to(ALEX)), what="the refusal")
    assert slack.incident(incident_id)["status"] == "triggered"


def test_a_pin_is_credited_to_whoever_pinned_not_the_author(slack):
    incident_id = slack.fire(am_payload([am_alert("a")]))
    channel = slack.room(incident_id)
    ws = slack.emu.state
    with ws.lock:
        said = Message(ws.next_ts(), channel, PRIYA, "the refund answers started at 02:04")
        ws.channels[channel].messages.append(said)
    slack.emu.react(channel, said.ts, "pushpin", user=SAM)
    pin = wait_for(lambda: next((e for e in slack.incident(incident_id)["timeline"] if e["kind"] == "pinned"), None),
                   what="the pin on the timeline")
    assert pin["actor"] == SAM and pin["data"]["author"] == PRIYA
