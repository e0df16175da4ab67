"""Who may do what from Slack, and commands that name an incident by number."""

from __future__ import annotations

from datetime import datetime, timezone

from bot.incidents import service
from bot.store.db import transaction
from tests.alerts.payloads import am_alert, am_payload
from tests.slack.conftest import ALEX, INCIDENTS, PRIYA, SAM, reply_text
from tests.slack.test_traces import post_traces
from tests.support import wait_for


def test_ack_on_a_mitigated_or_resolved_incident_keeps_its_status_and_says_who_acknowledged(slack, opened):
    incident_id, channel = opened
    slack.command("/incident ack", user=PRIYA, channel=channel)
    acked_at = slack.incident(incident_id)["acknowledged_at"]
    with transaction(slack.runtime.engine) as session:
        service.mitigate(session, service.get_for_update(session, incident_id), actor="warroom", reason="fallback")

    reply = reply_text(slack.command("/incident ack", user=SAM, channel=channel))
    assert "already mitigated" in reply and "<@U0PRIYA> acknowledged it at" in reply
    assert datetime.fromisoformat(acked_at.replace("Z", "+00:00")).astimezone(timezone.utc).strftime("%H:%M") in reply
    incident = slack.incident(incident_id)
    assert incident["status"] == "mitigated" and incident["acknowledged_by"] == PRIYA

    slack.resolve(channel, user=PRIYA)
    reply = reply_text(slack.command(f"/incident ack {incident_id}", user=SAM, channel=INCIDENTS))
    assert "already resolved" in reply and "<@U0PRIYA> acknowledged it" in reply
    assert slack.incident(incident_id)["status"] == "resolved"


def test_an_incident_number_that_does_not_exist_is_named_never_this_channels_incident(slack, opened):
    incident_id, channel = opened
    for line, named in (("/incident ack 99999999999", "There is no incident #99999999999"),
                        ("/incident ack #2", "There is no incident #2"),
                        ("/incident ack abc", "`abc` is not an incident number"),
                        ("/incident resolve #12x", "`#12x` is not an incident number"),
                        ("/incident close 123456789012345678901234567890", "There is no incident #1234567890"),
                        ("/incident timeline 99999999999999999999", "There is no incident #99999999999999999999"),
                        ("/incident undo 99999999999", "There is no run #99999999999")):
        reply = reply_text(slack.command(line, user=PRIYA, channel=channel))
        assert named in reply, (line, reply)
        assert "Something went wrong" not in reply
    incident = slack.incident(incident_id)
    assert incident["status"] == "triggered" and not any(e["kind"] == "resolved" for e in incident["timeline"])


def test_changing_the_commander_needs_membership_of_the_channel_but_a_note_does_not(slack, opened):
    incident_id, _ = opened
    reply = reply_text(slack.command(f"/incident commander #{incident_id} <@U0ALEX>", user=ALEX, channel=INCIDENTS))
    assert "Only people in the incident channel" in reply and "change its commander" in reply
    assert slack.incident(incident_id)["commander"] is None

    reply = reply_text(slack.command(f"/incident note #{incident_id} customer reports from EU", user=ALEX,
                                     channel=INCIDENTS))
    assert "Added to the timeline" in reply
    assert any(e["kind"] == "note" and e["actor"] == ALEX for e in slack.incident(incident_id)["timeline"])


def test_labelling_a_trace_needs_membership_of_the_incident_channel(slack):
    post_traces(slack)
    incident_id = slack.fire(am_payload([am_alert("primary-70b", starts=datetime.now(timezone.utc).isoformat())]))
    channel = slack.room(incident_id)
    message = wait_for(lambda: next((m for m in slack.messages(channel) if "failing trace" in m.text), None),
                       what="the failing traces message")
    slack.emu.click(channel, message.ts, "trace.label", "req-0", user=ALEX)  # Alex is not in the channel
    view = wait_for(lambda: next(iter(slack.emu.state.views.values()), None), what="the label form")
    reply = slack.emu.submit_view(view.id, {"failure_type": "hallucination", "expected": "anything"}, user=ALEX)
    assert reply.status == 200
    assert "Only people in the incident channel" in str(view.errors) and not view.closed
    assert not any(e["kind"] == "trace_labelled" for e in slack.incident(incident_id)["timeline"])

    slack.emu.click(channel, message.ts, "trace.label", "req-0", user=PRIYA)
    view = wait_for(lambda: next((v for v in slack.emu.state.views.values() if v.user == PRIYA), None),
                    what="Priya's label form")
    slack.emu.submit_view(view.id, {"failure_type": "hallucination"}, user=PRIYA)
    assert any(e["kind"] == "trace_labelled" for e in slack.incident(incident_id)["timeline"])
