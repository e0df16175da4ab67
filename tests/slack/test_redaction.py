"""A credential someone pastes or an alert carries is shown nowhere in Slack: not in lines, cards or replies."""

from __future__ import annotations

from tests.alerts.payloads import am_alert, am_payload
from tests.slack.conftest import reply_text

PASTED = "xoxp-" + "1234567890-0987654321-Zq8vK2mN4bX7cR1tY5uW"
AWS_ID = "AKIA" + "Q3EXAMPLE7ZXW2MB"


def everything_in(slack, channel: str) -> str:
    return "\n".join(f"{m.text} {m.blocks}" for m in slack.messages(channel))


def test_a_credential_in_a_status_update_or_alert_never_reaches_the_channel_or_a_reply(slack):
    annotations = {"summary": f"deploy bot used {AWS_ID} for the rollout", "description": "x"}
    incident_id = slack.fire(am_payload([am_alert("a", annotations=annotations)]))
    channel = slack.room(incident_id)
    reply = slack.command(f"/incident status rotating the token {PASTED} now", channel=channel)
    assert "Status update posted" in reply_text(reply)
    slack.settle()
    timeline_reply = reply_text(slack.command("/incident timeline", channel=channel))
    shown = everything_in(slack, channel) + timeline_reply
    assert "Status update from" in shown and "rotating the token [secret] now" in shown
    for leaked in (PASTED, PASTED[:12], PASTED[-12:], AWS_ID):
        assert leaked not in shown


def test_a_credential_cut_by_the_card_limit_leaves_no_prefix_on_the_card(slack):
    incident_id = slack.fire(am_payload([am_alert("a")]))
    channel = slack.room(incident_id)
    # The card shows the status cut at 500 characters: right inside the token.
    slack.command(f"/incident status {'x' * 480} {PASTED}", channel=channel)
    slack.settle()
    card = str(slack.card(channel).blocks)
    assert "x" * 100 in card and PASTED[:10] not in card
