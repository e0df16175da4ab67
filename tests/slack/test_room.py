"""Opening the incident in Slack: channel, owners, card, runbook, pin, bookmarks, announcement."""

from __future__ import annotations

from tests.alerts.payloads import am_alert, am_payload
from tests.slack.conftest import INCIDENTS, PRIYA, SAM


def test_alert_opens_a_room_with_owners_card_runbook_and_announcement(slack):
    incident_id = slack.fire(am_payload([am_alert("primary-70b"), am_alert("primary-8b"), am_alert("rerank-1b")]))
    channel_id = slack.room(incident_id)
    channel = slack.emu.state.channels[channel_id]
    assert channel.name == f"inc-{incident_id}-llm-gateway-hallucination-rate"
    assert {PRIYA, SAM} <= set(channel.members)  # @ml-oncall from the runbook's owners
    assert "SEV2" in channel.topic and "hallucination-rate" in channel.topic

    card = slack.card(channel_id)
    rendered = str(card.blocks)
    assert "3 firing · 0 resolved" in rendered
    assert {"incident.ack", "incident.run_action", "incident.resolve"} <= {
        e.get("action_id") for b in card.blocks if b["type"] == "actions" for e in b["elements"]}
    assert card.ts in slack.emu.state.channels[channel_id].pins
    runbook = [m for m in slack.messages(channel_id) if m.text.startswith("Runbook:")]
    assert len(runbook) == 1 and "fallback" in str(runbook[0].blocks)
    assert any(b.title == "Source query" for b in slack.emu.state.channels[channel_id].bookmarks)

    announcements = [m for m in slack.messages(INCIDENTS) if m.text.startswith("New incident")]
    assert len(announcements) == 1 and f"<#{channel_id}>" in str(announcements[0].blocks)
    timeline = [e["text"] for e in slack.incident(incident_id)["timeline"] if e["kind"] == "setup"]
    assert "Set-up: channel created" in timeline and "Set-up: incident announced" in timeline


def test_duplicate_notifications_never_make_a_second_room(slack):
    body = am_payload([am_alert("a")])
    incident_id = slack.fire(body)
    slack.fire(body)
    slack.room(incident_id)
    slack.settle()
    assert len(slack.emu.calls_to("conversations.create")) == 1
    assert len([m for m in slack.messages(INCIDENTS) if m.text.startswith("New incident")]) == 1


def test_news_updates_the_card_in_place_and_posts_one_line(slack):
    incident_id = slack.fire(am_payload([am_alert("a")]))
    channel_id = slack.room(incident_id)
    before = len(slack.messages(channel_id))
    slack.fire(am_payload([am_alert("a"), am_alert("b")]))
    slack.fire(am_payload([am_alert("a"), am_alert("b")], reason="repeat interval elapsed"))  # not news
    slack.settle()
    assert "2 firing · 0 resolved" in str(slack.card(channel_id).blocks)
    new = slack.messages(channel_id)[before:] if len(slack.messages(channel_id)) > before else []
    lines = [m.text for m in slack.messages(channel_id) if "new alert(s) firing" in m.text]
    assert lines == ["1 new alert(s) firing — now 2 firing, 0 resolved"]
    assert len(new) <= 1


def test_mentions_in_alert_text_ping_nobody(slack):
    evil = {"title": "<!channel> hallucinations <@U0SAM> & <https://evil.example|click>", "summary": "x"}
    incident_id = slack.fire(am_payload([am_alert("a", annotations=evil)]))
    channel_id = slack.room(incident_id)
    for message in slack.messages(channel_id) + slack.messages(INCIDENTS):
        # Slack acts on control sequences in mrkdwn and in the notification text; plain_text is inert.
        for text in [message.text, *mrkdwn_texts(message.blocks or [])]:
            assert "<!channel>" not in text and "<@U0SAM>" not in text and "<https://evil" not in text
    assert "&lt;!channel&gt;" in slack.card(channel_id).text


def test_a_failing_pin_is_retried_and_ends_with_one_of_everything(slack):
    slack.emu.inject_fault("pins.add", kind="error:internal_error", times=1)
    incident_id = slack.fire(am_payload([am_alert("a")]))
    channel_id = slack.room(incident_id)
    slack.settle(timeout=15)
    assert "pin" in slack.steps_done(incident_id)
    assert len(slack.emu.calls_to("conversations.create")) == 1
    cards = [m for m in slack.messages(channel_id)
             if any(b.get("block_id", "").startswith("card:") for b in m.blocks or [])]
    assert len(cards) == 1
    assert slack.card(channel_id).ts in slack.emu.state.channels[channel_id].pins


def test_incidents_of_one_alert_kind_get_their_own_names_without_a_clash(slack):
    ids = [slack.fire(am_payload([am_alert("a")], group=f"storm-{i}")) for i in range(5)]
    names = [slack.emu.state.channels[slack.room(i)].name for i in ids]
    assert names == [f"inc-{i}-llm-gateway-hallucination-rate" for i in ids]
    assert [c.response.get("error", "ok") for c in slack.emu.calls_to("conversations.create")] == ["ok"] * 5


def test_channel_name_clash_gets_the_incident_number(slack_dated_names):
    slack = slack_dated_names
    first = slack.fire(am_payload([am_alert("a")], group="one"))
    second = slack.fire(am_payload([am_alert("a")], group="two"))
    names = {i: slack.emu.state.channels[slack.room(i)].name for i in (first, second)}
    # The rooms are set up side by side (worker threads): whichever asks second gets its number.
    (_, base), (later, suffixed) = sorted(names.items(), key=lambda item: len(item[1]))
    assert suffixed == f"{base}-{later}"


def mrkdwn_texts(node) -> list[str]:
    if isinstance(node, dict):
        found = [node["text"]] if node.get("type") == "mrkdwn" else []
        return found + [t for v in node.values() for t in mrkdwn_texts(v)]
    if isinstance(node, list):
        return [t for v in node for t in mrkdwn_texts(v)]
    return []


def test_alert_storm_under_slack_rate_limits_ends_with_every_room_and_nothing_dropped(slack):
    """Announcements hit #incidents' ~1 msg/s budget: a 429 puts the room's set-up back until
    Retry-After (the worker goes on with other rooms meanwhile), and it resumes at that step."""
    # Slack's real tiers would make 40 conversations.create take two minutes; the per-channel
    # message budget is what a storm of announcements meets first, so that one stays tight.
    slack.emu.set_rate_limits(enabled=True, per_channel_per_second=10, channel_burst=2,
                              tier_per_minute={"T2": 1200, "T3": 3000, "T4": 6000})
    slack.emu.inject_fault("chat.postMessage", kind="429", times=2)  # met for sure, however fast the worker is
    try:
        ids = [slack.fire(am_payload([am_alert("a")], group=f"storm-{i}")) for i in range(40)]
        for incident_id in ids:
            slack.room(incident_id, timeout=60)
        slack.settle(timeout=60)
    finally:
        slack.emu.set_rate_limits(enabled=False)
    limited = [c for c in slack.emu.calls if c.status == 429]
    assert limited, "the storm should have met Slack's rate limit at least once"
    assert len([c for c in slack.emu.calls_to("conversations.create") if c.response.get("ok")]) == 40
    announcements = [m for m in slack.messages(INCIDENTS) if m.text.startswith("New incident")]
    assert len(announcements) == 40
    assert all("announce" in slack.steps_done(i) for i in ids)


def test_low_severity_gets_a_thread_in_incidents_until_promoted(slack):
    from tests.slack.conftest import reply_text
    assert "Declared incident #1 (SEV4)" in reply_text(slack.command("/incident declare sev4 Slightly slow answers"))
    slack.settle()
    assert slack.emu.calls_to("conversations.create") == []
    card = next(m for m in slack.messages(INCIDENTS) if any(
        b.get("block_id", "").startswith("card:") for b in m.blocks or []))
    assert "Promote to channel" in str(card.blocks)
    replies = [m for m in slack.emu.state.channels[INCIDENTS].messages if m.thread_ts == card.ts]
    assert replies and replies[0].text.startswith("Runbook:")

    slack.emu.click(INCIDENTS, card.ts, "incident.promote", "1", user=PRIYA)
    channel = slack.room(1)
    assert slack.emu.state.channels[channel].name.endswith("-slightly-slow-answers")
    slack.settle()
    assert "Promote to channel" not in str(next(m for m in slack.messages(INCIDENTS) if m.ts == card.ts).blocks)
