"""A Slack call that fails inside a listener, after the ack, still leaves the person a message
saying what happened, within Slack's 3 s, and by another way when the ephemeral fails."""

from __future__ import annotations

from datetime import datetime, timezone

from tests.alerts.payloads import am_alert, am_payload
from tests.slack.conftest import INCIDENTS, PRIYA
from tests.slack.test_actions import llm_service  # noqa: F401 - fixture
from tests.slack.test_traces import post_traces
from tests.support import wait_for

SLACK_ACK_LIMIT_S = 3.0


def ephemerals_to(slack, user: str, channel: str) -> list[str]:
    return [m.text for m in slack.emu.messages(channel, viewer=user) if m.ephemeral_to == user]


def test_declare_form_whose_trigger_expired_tells_the_person_instead_of_timing_out(slack):
    slack.emu.inject_fault("views.open", "error:expired_trigger_id")
    reply = slack.command("/incident declare", user=PRIYA, channel=INCIDENTS)
    assert reply.status == 200 and reply.elapsed_s < SLACK_ACK_LIMIT_S, (reply.status, reply.body)
    told = wait_for(lambda: ephemerals_to(slack, PRIYA, INCIDENTS), timeout=SLACK_ACK_LIMIT_S, what="the explanation")
    assert "form could not open" in told[0] and "expired_trigger_id" in told[0]


def test_run_action_form_with_an_unknown_trigger_tells_the_person(llm_service, slack):  # noqa: F811
    incident_id = slack.fire(am_payload([am_alert("primary-70b")]))
    channel = slack.room(incident_id)
    card = slack.card(channel)
    slack.emu.inject_fault("views.open", "error:invalid_trigger_id")
    reply = slack.emu.click(channel, card.ts, "incident.run_action", str(incident_id), user=PRIYA)
    assert reply.status == 200 and reply.elapsed_s < SLACK_ACK_LIMIT_S
    told = wait_for(lambda: ephemerals_to(slack, PRIYA, channel), timeout=SLACK_ACK_LIMIT_S, what="the explanation")
    assert "form could not open" in told[0] and "invalid_trigger_id" in told[0]


def test_label_form_failure_reaches_the_person_through_the_response_url_when_the_ephemeral_fails(slack):
    post_traces(slack)
    incident_id = slack.fire(am_payload([am_alert("primary-70b", starts=datetime.now(timezone.utc).isoformat())]))
    channel = slack.room(incident_id)
    message = wait_for(lambda: next((m for m in slack.messages(channel) if "failing trace" in m.text), None),
                       what="the failing traces message")
    slack.emu.inject_fault("views.open", "error:expired_trigger_id")
    slack.emu.inject_fault("chat.postEphemeral", "error:not_in_channel")
    reply = slack.emu.click(channel, message.ts, "trace.label", "req-0", user=PRIYA)
    assert reply.status == 200 and reply.elapsed_s < SLACK_ACK_LIMIT_S
    told = wait_for(lambda: [t for t in slack.said_to(PRIYA) if "form could not open" in t], timeout=SLACK_ACK_LIMIT_S,
                    what="the explanation through the response_url")
    assert "expired_trigger_id" in told[0]


def test_an_event_listener_failure_reaches_the_person_by_direct_message_when_nothing_else_works(slack):
    incident_id = slack.fire(am_payload([am_alert("a")]))
    channel = slack.room(incident_id)
    card = slack.card(channel)
    slack.emu.inject_fault("conversations.history", "error:internal_error")
    slack.emu.inject_fault("chat.postEphemeral", "error:not_in_channel")
    slack.emu.react(channel, card.ts, "pushpin", user=PRIYA)  # events carry no response_url
    dm = wait_for(lambda: [m.text for m in slack.emu.messages(f"D{PRIYA[1:]}")], timeout=SLACK_ACK_LIMIT_S,
                  what="a direct message")
    assert "conversations.history" in dm[0] and "internal_error" in dm[0]


def test_every_listener_is_registered_through_the_guard(slack):
    from bot.slack import guard
    from bot.slack.app import build_slack

    listeners = build_slack(slack.runtime, slack.warroom.actions).app._listeners
    guard_code = guard.guarded(lambda: None, None).__code__  # type: ignore[arg-type]
    assert len(listeners) > 10 and all(listener.ack_function.__code__ is guard_code for listener in listeners)


def test_a_reply_whose_response_url_expired_reaches_the_person_by_direct_message(slack):
    from tests.slack.conftest import ALEX
    incident_id = slack.fire(am_payload([am_alert("a")]))
    channel = slack.room(incident_id)
    card = slack.card(channel)
    slack.emu.inject_fault("response_url", "error:expired_url")
    slack.emu.click(channel, card.ts, "incident.ack", str(incident_id), user=ALEX)  # Alex is not in the channel
    dm = wait_for(lambda: [m.text for m in slack.emu.messages(f"D{ALEX[1:]}")], what="a direct message")
    assert "Only people in the incident channel" in dm[0]


def test_a_stale_trigger_is_refused_by_the_emulator_as_slack_does_and_the_person_is_told(slack, monkeypatch):
    from bot.emulator.methods import views
    monkeypatch.setattr(views, "TRIGGER_TTL_S", -1.0)  # every trigger_id is already older than Slack allows
    reply = slack.command("/incident declare", user=PRIYA, channel=INCIDENTS)
    assert reply.status == 200 and reply.elapsed_s < SLACK_ACK_LIMIT_S
    told = wait_for(lambda: ephemerals_to(slack, PRIYA, INCIDENTS), timeout=SLACK_ACK_LIMIT_S, what="the explanation")
    assert "expired_trigger_id" in told[0]
    assert slack.emu.calls_to("views.open")[-1].response["error"] == "expired_trigger_id"
