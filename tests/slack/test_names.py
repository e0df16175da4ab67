"""People are shown by name, not Slack user id, on the incident page and in the postmortem,
from ``users.info`` asked once per person."""

from __future__ import annotations

from tests.alerts.payloads import am_alert, am_payload
from tests.conftest import READER
from tests.slack.conftest import PRIYA, SAM


def test_pages_and_postmortem_show_names_from_a_cached_users_info(slack):
    incident_id = slack.fire(am_payload([am_alert("a")]))
    channel = slack.room(incident_id)
    slack.command("/incident ack", user=PRIYA, channel=channel)
    slack.command(f"/incident commander <@{SAM}>", user=PRIYA, channel=channel)
    slack.command(f"/incident followup write the refund eval <@{SAM}>", user=PRIYA, channel=channel)

    page = slack.http.get(f"/incidents/{incident_id}", headers=READER).text
    assert "Priya" in page and "Sam" in page
    assert PRIYA not in page and SAM not in page

    postmortem = slack.http.get(f"/incidents/{incident_id}/postmortem.md", headers=READER).text
    assert "Priya" in postmortem and "Sam" in postmortem
    assert PRIYA not in postmortem and SAM not in postmortem

    slack.http.get(f"/incidents/{incident_id}", headers=READER)
    asked = [call.args.get("user") for call in slack.emu.calls_to("users.info")]
    assert sorted(asked) == sorted(set(asked)) and {PRIYA, SAM} <= set(asked)  # once per person
