"""A credential someone pastes or an alert carries is shown nowhere in Slack: not in lines, cards or replies."""

from __future__ import annotations

from bot.redact import Redactor
from bot.slack.client import redact_readable
from bot.slack.text import escape
from tests.alerts.payloads import am_alert, am_payload
from tests.slack.conftest import reply_text, running

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


def test_a_known_secret_with_characters_slack_escapes_is_masked_as_slack_gets_it(database_url, _emulator, monkeypatch):
    # Slack's text escapes &, < and >: the gateway redacts it as people read it, "&" where Slack gets "&amp;".
    password, pin = "Tr0ub&dor<3>horse", "pw&9<7>ab"
    monkeypatch.setenv("WARROOM_SECRET_DB_PASSWORD", password)
    monkeypatch.setenv("WARROOM_SECRET_PIN", pin)
    with running(database_url, _emulator) as slack:
        channel = slack.room(slack.fire(am_payload([am_alert("a")])))
        reply = slack.command(f"/incident status the db password {password} and pin {pin} leaked", channel=channel)
        slack.settle()
        shown = everything_in(slack, channel) + reply_text(reply)
    assert "the db password [secret] and pin [secret] leaked" in shown
    for leaked in (password, pin, escape(password), escape(pin), "Tr0ub", "horse"):
        assert leaked not in shown


def test_a_site_pattern_with_characters_slack_escapes_is_redacted_as_people_read_it(database_url, _emulator,
                                                                                     monkeypatch):
    monkeypatch.setenv("WARROOM_REDACT_PATTERNS", '["acct=[0-9]+&sig=[A-Za-z0-9]+", "<pin:[0-9]{4}>"]')
    with running(database_url, _emulator) as slack:
        channel = slack.room(slack.fire(am_payload([am_alert("a")])))
        reply = slack.command("/incident status callback acct=99417&sig=Qx8Kp2 failed, <pin:4821> too", channel=channel)
        slack.settle()
        shown = everything_in(slack, channel) + reply_text(reply)
    assert "callback [redacted] failed, [redacted] too" in shown
    for leaked in ("99417", "Qx8Kp2", "4821"):
        assert leaked not in shown


def as_sent(text: str, redactor: Redactor) -> str:
    """What the gateway sends for a call's text (or a reply's) written for Slack already."""
    return redact_readable({"text": text}, redactor)["text"]


def test_slack_markup_and_escaped_text_around_a_redaction_reach_slack_as_they_were_written():
    written = f"<@U0ALICE> saw {escape('a&b <pin:4821> & 1<2')} in <https://ci.example/run?id=7&amp;try=2|the run>"
    assert as_sent(written, Redactor([r"<pin:\d{4}>"])) == (
        "<@U0ALICE> saw a&amp;b [redacted] &amp; 1&lt;2 in <https://ci.example/run?id=7&amp;try=2|the run>")
    assert as_sent(written, Redactor([r"nothing-here"])) == written
    bare = "R&D <@U0ALICE> & co"  # a bare "&" (plain text Slack reads as written) stays bare
    assert as_sent(bare + " pin &lt;pin:1234&gt;", Redactor([r"<pin:\d{4}>"])) == bare + " pin [redacted]"


def test_a_noncharacter_typed_into_redacted_text_cannot_become_slack_markup():
    # Apart from escaped text, Slack's own brackets stand as noncharacters while the text is read:
    # ones the sender typed are dropped, never turned into "<!channel>".
    written = escape("\ufdd0!channel\ufdd1 token " + PASTED)
    shown = as_sent(written, Redactor())
    assert "<!channel>" not in shown and "!channel token [secret]" in shown
