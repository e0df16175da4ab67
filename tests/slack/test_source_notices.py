"""What the incidents channel and the timeline say about notifications that open no room."""

from __future__ import annotations

from bot.compose import compose
from bot.emulator import Emulator
from bot.web import create_app
from tests.alerts.payloads import am_alert, am_payload, grafana_contact_point_test
from tests.conftest import ALERT_TOKEN
from tests.slack.conftest import INCIDENTS, SlackHarness, slack_settings
from tests.support import ServerThread


def test_a_contact_point_test_gets_a_line_in_the_incidents_channel_and_no_room(slack):
    response = slack.http.post("/webhooks/grafana", json=grafana_contact_point_test(),
                               headers={"Authorization": f"Bearer {ALERT_TOKEN}"})
    assert response.status_code == 200 and response.json()["status"] == "test"
    slack.settle()
    lines = [m.text for m in slack.messages(INCIDENTS)]
    assert lines == ["Test notification received from Grafana (receiver warroom): 1 alert(s), no incident opened."]
    assert slack.emu.calls_to("conversations.create") == []


def test_without_an_incidents_channel_the_timeline_does_not_claim_an_announcement(database_url, _emulator: Emulator):
    _emulator.reset()
    warroom = compose(slack_settings(database_url, _emulator, WARROOM_INCIDENTS_CHANNEL=None))
    runtime = warroom.runtime
    server = ServerThread(create_app(warroom)).start()
    try:
        slack = SlackHarness(_emulator, warroom, server.url)
        incident_id = slack.fire(am_payload([am_alert("a")]))
        slack.room(incident_id)
        setup = [e["text"] for e in slack.incident(incident_id)["timeline"] if e["kind"] == "setup"]
        assert "Set-up: incident announced" not in setup
        assert "Set-up: not announced (no WARROOM_INCIDENTS_CHANNEL is set)" in setup
    finally:
        server.stop()
        runtime.engine.dispose()
