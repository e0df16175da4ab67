"""Socket Mode: with SLACK_APP_TOKEN set, the same app works with no public URL at all.

The emulator gets no bot URL here, so every command, click and event can only reach warroom over
the WebSocket warroom opened itself (``apps.connections.open`` with the app-level token).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bot.compose import compose
from bot.emulator import Emulator
from bot.serving import ServerThread
from bot.web import create_app
from tests.alerts.payloads import am_alert, am_payload
from tests.slack.conftest import INCIDENTS, PRIYA, SlackHarness, reply_text, slack_settings
from tests.support import wait_for


@pytest.fixture
def socket_slack(database_url: str, _emulator: Emulator) -> Iterator[SlackHarness]:
    _emulator.reset()
    _emulator.bot_url = None  # no HTTP route from Slack to warroom
    warroom = compose(slack_settings(database_url, _emulator, SLACK_APP_TOKEN=_emulator.app_token))
    runtime = warroom.runtime
    server = ServerThread(create_app(warroom)).start()
    wait_for(lambda: _emulator.socket_mode.connections == 1, what="warroom's Socket Mode connection")
    yield SlackHarness(_emulator, warroom, server.url)
    server.stop()
    runtime.engine.dispose()
    wait_for(lambda: _emulator.socket_mode.connections == 0, what="the connection to close with warroom")


def test_commands_buttons_and_events_arrive_over_the_socket(socket_slack: SlackHarness) -> None:
    slack = socket_slack
    incident_id = slack.fire(am_payload([am_alert("primary-70b")]))
    channel = slack.room(incident_id)
    assert any(call.method == "apps.connections.open" and call.token == slack.emu.app_token
               for call in slack.emu.calls)

    reply = slack.command("/incident ack", user=PRIYA, channel=channel)
    assert reply.status == 200 and reply.elapsed_s < 3  # the ack frame carried the answer
    assert "Acknowledged incident" in reply_text(reply)
    assert slack.incident(incident_id)["status"] == "acknowledged"

    card = slack.card(channel)
    reply = slack.emu.click(channel, card.ts, "incident.resolve", str(incident_id), user=PRIYA)
    assert reply.status == 200
    prompt = wait_for(lambda: next((m for m in slack.emu.messages(channel, viewer=PRIYA)
                                    if "incident.resolve_anyway" in str(m.blocks)), None),
                      what="the question whether to resolve with an alert firing")
    slack.emu.click(channel, prompt.ts, "incident.resolve_anyway", None, user=PRIYA)
    wait_for(lambda: slack.incident(incident_id)["status"] == "resolved", what="the resolve button")

    runbook = next(m for m in slack.messages(channel) if m.text.startswith("Runbook"))
    assert slack.emu.react(channel, runbook.ts, user=PRIYA, event_id="Ev0SOCKETPIN").status == 200
    wait_for(lambda: any(e["kind"] == "pinned" for e in slack.incident(incident_id)["timeline"]),
             what="the pushpin event on the timeline")


def test_an_envelope_nobody_acks_fails_for_the_user_like_a_timed_out_request(_emulator: Emulator) -> None:
    # A connection that reads envelopes but never acks (a hung app): Slack gives up after 3 s.
    from slack_sdk.socket_mode.builtin import SocketModeClient
    from slack_sdk.web import WebClient

    _emulator.reset()
    _emulator.bot_url = None
    client = SocketModeClient(app_token=_emulator.app_token,
                              web_client=WebClient(token=_emulator.token, base_url=_emulator.api_url))
    client.connect()
    try:
        wait_for(lambda: _emulator.socket_mode.connections == 1, what="the connection")
        reply = _emulator.command("/incident help", user=PRIYA, channel=INCIDENTS)
        assert reply.status == 504 and reply.body == ""
    finally:
        client.close()
    wait_for(lambda: _emulator.socket_mode.connections == 0, what="the connection to close")


def test_an_app_token_slack_refuses_stops_the_start_with_slacks_error(database_url: str, _emulator: Emulator) -> None:
    from bot.slack.socket_mode import SocketModeRefused, start_socket_mode

    warroom = compose(slack_settings(database_url, _emulator, SLACK_APP_TOKEN="xapp-1-revoked"))  # with its Bolt app
    with pytest.raises(SocketModeRefused, match="invalid_auth"):
        start_socket_mode(warroom)
    assert _emulator.socket_mode.connections == 0
    warroom.engine.dispose()
