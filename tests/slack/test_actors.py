"""One stored line, read on every surface: a mention in Slack, a name on the page, in the API's
text and in the postmortem; a row stored before lines had parts reads the same way."""

from __future__ import annotations

import html

from sqlalchemy import select

from bot.incidents import service, timeline
from bot.store.db import transaction
from bot.store.models import TimelineEvent
from tests.conftest import READER
from tests.slack.conftest import PRIYA, SAM, reply_text
from tests.support import wait_for


def _surfaces(slack, incident_id: int, channel: str) -> tuple[str, str, dict[str, dict]]:
    page = html.unescape(slack.http.get(f"/incidents/{incident_id}", headers=READER).text)
    postmortem = slack.http.get(f"/incidents/{incident_id}/postmortem.md", headers=READER).text
    api = {e["kind"]: e for e in slack.incident(incident_id)["timeline"]}
    return page, postmortem, api


def test_an_ack_is_a_mention_in_slack_and_a_name_on_the_page_api_and_postmortem(slack, opened):
    incident_id, channel = opened
    slack.command("/incident ack", user=PRIYA, channel=channel)
    slack.settle()
    with transaction(slack.runtime.engine) as session:
        row = session.execute(select(TimelineEvent).where(TimelineEvent.incident_id == incident_id,
                                                          TimelineEvent.kind == "acknowledged")).scalar_one()
    assert row.actor == PRIYA and "<@" not in row.text
    assert row.data["mentions"] == [{"at": len("Acknowledged by "), "user": PRIYA}]

    assert any(m.text.startswith("Acknowledged by <@U0PRIYA> (MTTA") for m in slack.messages(channel))
    assert "acknowledged: Acknowledged by <@U0PRIYA> (MTTA" in reply_text(
        slack.command("/incident timeline", user=SAM, channel=channel))
    page, postmortem, api = _surfaces(slack, incident_id, channel)
    assert "Acknowledged by @Priya (MTTA" in page and "Acknowledged by @Priya (MTTA" in postmortem
    assert api["acknowledged"]["text"].startswith("Acknowledged by @Priya (MTTA")
    assert api["acknowledged"]["actor"] == PRIYA and api["acknowledged"]["people"] == [PRIYA]  # ids where ids matter
    assert "data" not in api["acknowledged"]  # the stored offsets are the stored text's, not the API's


def test_a_row_stored_with_slack_markup_still_reads_right_everywhere(slack, opened):
    incident_id, channel = opened
    with transaction(slack.runtime.engine) as session:  # as warroom wrote lines before they had parts
        timeline.record(session, service.get(session, incident_id), "severity", "Severity SEV3 → SEV1 by <@U0SAM>",
                        actor=SAM, echo=True)
    slack.runtime.wake.set()
    wait_for(lambda: any(m.text == "Severity SEV3 → SEV1 by <@U0SAM>" for m in slack.messages(channel)),
             what="the old line in the channel, as a mention")
    page, postmortem, api = _surfaces(slack, incident_id, channel)
    assert "Severity SEV3 → SEV1 by @Sam" in page and "Severity SEV3 → SEV1 by @Sam" in postmortem
    assert api["severity"]["text"] == "Severity SEV3 → SEV1 by @Sam" and api["severity"]["actor"] == SAM
    assert "U0SAM" not in page and "<@" not in postmortem
