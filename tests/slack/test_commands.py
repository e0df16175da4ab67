"""`/incident` from Slack, signed like Slack, through Bolt: every command in and out of channels."""

from __future__ import annotations

import pytest

from tests.conftest import READER
from tests.slack.conftest import ALEX, INCIDENTS, PRIYA, SAM, reply_text
from tests.support import wait_for


def test_ack_in_the_channel_acknowledges_and_updates_the_card(slack, opened):
    incident_id, channel = opened
    reply = slack.command("/incident ack", user=PRIYA, channel=channel)
    assert reply.status == 200 and reply.elapsed_s < 3
    assert "Acknowledged incident" in reply_text(reply)
    incident = slack.incident(incident_id)
    assert incident["status"] == "acknowledged" and incident["acknowledged_by"] == PRIYA
    assert incident["mtta_seconds"] is not None
    slack.settle()
    card = str(slack.card(channel).blocks)
    assert "<@U0PRIYA> (MTTA" in card and "incident.ack" not in card  # no Acknowledge button once acked
    assert any("Acknowledged by <@U0PRIYA>" in m.text for m in slack.messages(channel))


def test_ack_outside_the_channel_names_the_incident_or_gets_a_hint(slack, opened):
    incident_id, _ = opened
    hint = slack.command("/incident ack", channel=INCIDENTS)
    assert "not an incident channel" in reply_text(hint) and "/incident ack 42" in reply_text(hint)
    named = slack.command(f"/incident ack {incident_id}", user=PRIYA, channel=INCIDENTS)
    assert "Acknowledged" in reply_text(named)


def test_people_outside_the_incident_channel_cannot_ack_or_resolve(slack, opened):
    incident_id, _ = opened
    for line in (f"/incident ack {incident_id}", f"/incident resolve #{incident_id}", "/incident sev 1"):
        reply = slack.command(line, user=ALEX, channel=INCIDENTS)
        text = reply_text(reply)
        assert "Only people in the incident channel" in text or "not an incident channel" in text
    assert slack.incident(incident_id)["status"] == "triggered"


def test_sev_changes_severity_and_rejects_bad_values(slack, opened):
    incident_id, channel = opened
    assert "Usage" in reply_text(slack.command("/incident sev 9", channel=channel))
    assert "SEV1" in reply_text(slack.command("/incident sev 1", channel=channel))
    assert slack.incident(incident_id)["severity"] == 1
    assert "already SEV1" in reply_text(slack.command("/incident sev 1", channel=channel))


def test_note_keeps_text_exactly(slack, opened):
    incident_id, channel = opened
    text = 'retriever returns "policy 2026" & refunds > 30 days = wrong ünïcödé + more'
    slack.command(f"/incident note {text}", user=SAM, channel=channel)
    notes = [e for e in slack.incident(incident_id)["timeline"] if e["kind"] == "note"]
    assert notes[-1]["text"] == text and notes[-1]["actor"] == SAM


def test_a_command_mentioning_payload_is_still_a_command(slack, opened):
    incident_id, channel = opened
    reply = slack.command("/incident note the payload of request 42 was truncated", channel=channel)
    assert reply.status == 200 and "Added to the timeline" in reply_text(reply)
    assert any(e["text"] == "the payload of request 42 was truncated" for e in slack.incident(incident_id)["timeline"])


def test_status_with_and_without_text(slack, opened):
    _incident_id, channel = opened
    slack.command("/incident status rolling back to v41, error rate falling", channel=channel)
    shown = reply_text(slack.command("/incident status", channel=channel))
    assert "rolling back to v41" in shown and "triggered" in shown
    slack.settle()
    assert any("Status update" in m.text for m in slack.messages(channel))


def test_commander_followups_timeline_list(slack, opened):
    incident_id, channel = opened
    assert "<@U0SAM> is the incident commander" in reply_text(slack.command("/incident commander @sam",
                                                                            channel=channel))
    assert slack.incident(incident_id)["commander"] == SAM
    assert "mention exactly one" in reply_text(slack.command("/incident commander nobody", channel=channel))
    slack.command("/incident followup add a refund-policy eval @priya", channel=channel)
    assert "add a refund-policy eval — <@U0PRIYA>" in reply_text(slack.command("/incident followups", channel=channel))
    timeline = reply_text(slack.command("/incident timeline", channel=channel))
    assert "commander" in timeline and "followup" in timeline
    assert f"#{incident_id}" in reply_text(slack.command("/incident list", channel=INCIDENTS))


def test_resolve_reopen_close_lifecycle(slack, opened):
    incident_id, channel = opened
    assert "Only a resolved incident" in reply_text(slack.command("/incident close", channel=channel))
    assert "Resolved" in slack.resolve(channel, "rolled back to v41")
    assert slack.incident(incident_id)["status"] == "resolved"
    assert "Reopened" in reply_text(slack.command("/incident reopen", channel=channel))
    slack.resolve(channel)
    assert "Closed" in reply_text(slack.command("/incident close", channel=channel))
    slack.settle()
    assert slack.emu.state.channels[channel].archived


def test_unknown_subcommand_and_help_answer_with_usage(slack):
    assert "Unknown subcommand `frobnicate`" in reply_text(slack.command("/incident frobnicate"))
    assert "`declare [sev1-4] &lt;title&gt;`" in reply_text(slack.command("/incident help"))
    assert "`declare [sev1-4] &lt;title&gt;`" in reply_text(slack.command("/incident"))


def test_declare_opens_an_incident_and_its_room(slack):
    reply = slack.command("/incident declare sev2 Refund answers look wrong", user=SAM)
    assert "Declared incident #1 (SEV2)" in reply_text(reply)
    channel = slack.room(1)
    assert slack.emu.state.channels[channel].name.endswith("-refund-answers-look-wrong")
    assert slack.incident(1)["severity"] == 2


def test_declare_without_title_opens_a_form(slack):
    slack.command("/incident declare", user=SAM)
    view = wait_for(lambda: next(iter(slack.emu.state.views.values()), None), what="the declare form")
    reply = slack.emu.submit_view(view.id, {"title": "Guardrail blocks everything", "severity": "1"}, user=SAM)
    assert reply.status == 200
    wait_for(lambda: slack.http.get("/api/incidents", headers=READER).json(), what="the declared incident")
    assert slack.http.get("/api/incidents", headers=READER).json()[0]["title"] == "Guardrail blocks everything"


def test_ack_button_on_the_announcement(slack, opened):
    incident_id, _ = opened
    announcement = next(m for m in slack.messages(INCIDENTS) if m.text.startswith("New incident"))
    reply = slack.emu.click(INCIDENTS, announcement.ts, "incident.ack", str(incident_id), user=PRIYA)
    assert reply.status == 200 and reply.elapsed_s < 3
    wait_for(lambda: slack.incident(incident_id)["status"] == "acknowledged", what="the ack")


def test_resolve_button_refused_for_non_members_with_a_visible_reason(slack, opened):
    incident_id, channel = opened
    card = slack.card(channel)
    slack.emu.state.channels[channel].members.append(ALEX)  # let Alex see the card …
    slack.emu.state.channels[channel].members.remove(ALEX)  # … then leave again
    reply = slack.emu.click(channel, card.ts, "incident.resolve", str(incident_id), user=ALEX)
    assert reply.status == 200
    wait_for(lambda: any("Only people in the incident channel" in text for text in slack.said_to(ALEX)),
             what="the refusal shown to Alex")
    assert slack.incident(incident_id)["status"] == "triggered"


def test_pushpin_adds_the_message_to_the_timeline_once_even_when_slack_retries(slack, opened):
    incident_id, channel = opened
    message = next(m for m in slack.messages(channel) if m.text.startswith("Runbook"))
    for retry in (None, 1, 2):
        assert slack.emu.react(channel, message.ts, user=PRIYA, event_id="Ev0PIN1", retry_num=retry).status == 200
    def pins():
        return [e for e in slack.incident(incident_id)["timeline"] if e["kind"] == "pinned"]
    wait_for(pins, what="the pin on the timeline")  # events are acked first and handled after
    slack.emu.react(channel, message.ts, user=PRIYA, event_id="Ev0PIN1", retry_num=3)
    slack.settle()
    assert len(pins()) == 1 and pins()[0]["text"] == message.text
    pinned = next(m for m in slack.messages(channel) if m.ts == message.ts)
    assert pinned.reactions.get("white_check_mark") == ["U0WARROOM"]  # the channel sees it worked
    assert pins()[0]["at"].startswith(slack.incident(incident_id)["opened_at"][:10])  # the message's own time
    slack.emu.react(channel, message.ts, user=PRIYA, removed=True, event_id="Ev0PIN2")
    wait_for(lambda: not pins(), what="the pin to leave the timeline")


def test_bad_signatures_and_timestamps_are_401_not_500(slack):
    import httpx
    for headers in ({"X-Slack-Request-Timestamp": "not-a-number", "X-Slack-Signature": "v0=00"},
                    {"X-Slack-Request-Timestamp": "1700000000", "X-Slack-Signature": "v0=00"}):
        response = httpx.post(slack.url + "/slack/events", content=b"command=%2Fincident&text=help",
                              headers={"Content-Type": "application/x-www-form-urlencoded", **headers})
        assert response.status_code == 401


def test_mtta_and_mttr_are_exposed_in_metrics(slack, opened):
    incident_id, channel = opened
    slack.command("/incident ack", channel=channel)
    slack.resolve(channel)
    metrics = slack.http.get("/metrics").text
    assert "warroom_mtta_incidents_30d 1.0" in metrics and "warroom_mttr_incidents_30d 1.0" in metrics
    mttr = float(next(line.split()[1] for line in metrics.splitlines()
                      if line.startswith("warroom_mttr_seconds_mean_30d")))
    assert mttr == pytest.approx(slack.incident(incident_id)["mttr_seconds"])


def test_a_command_whose_slow_part_takes_10_s_is_answered_within_3_s(slack, opened):
    """Slack itself is slow here (conversations.members takes 10 s, within the client's 15 s
    timeout): the answer comes at once and the result follows through response_url."""
    incident_id, channel = opened
    slack.emu.inject_fault("conversations.members", kind="timeout", times=1, delay_s=10)
    reply = slack.command("/incident ack", user=PRIYA, channel=channel)
    assert reply.status == 200 and reply.elapsed_s < 3
    assert "Working on it" in reply_text(reply)
    wait_for(lambda: any("Acknowledged incident" in t for t in slack.said_to(PRIYA)), timeout=30,
             what="the result through response_url")
    assert slack.incident(incident_id)["status"] == "acknowledged"


def test_help_placeholders_reach_slack_escaped_and_mentions_stay_mentions():
    from bot.slack.text import escape_placeholders

    # Slack reads a bare `<title>` as a control sequence and drops it; `&lt;title&gt;` shows as typed.
    assert escape_placeholders("`declare [sev1-4] <title>` · `undo <run>`") == (
        "`declare [sev1-4] &lt;title&gt;` · `undo &lt;run&gt;`")
    kept = "<@U0PRIYA> <#C0123|inc> <!here> <https://example.com|link>"
    assert escape_placeholders(kept) == kept
