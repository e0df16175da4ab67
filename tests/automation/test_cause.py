"""`/incident cause`: a responder names the cause, a listed change or their own words; the card,
the timeline and the postmortem follow."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.alerts.payloads import am_alert, am_payload
from tests.automation.conftest import AUTH
from tests.conftest import READER
from tests.slack.conftest import ALEX, INCIDENTS, PRIYA, reply_text
from tests.support import wait_for


def card_text(harness, channel: str) -> str:
    return str(harness.card(channel).blocks)


def changed_before(slack) -> int:
    """v42 deployed 17 min ago by deploy-bot, and a prompt edit 40 min ago (its change id)."""
    now = datetime.now(UTC)
    assert slack.http.post("/api/bundles", headers=AUTH, json={
        "service": "llm-gateway", "version": "v42", "components": {"prompt_version": "answer-v42"},
        "deployed_at": (now - timedelta(minutes=17, seconds=10)).isoformat(),
        "deployed_by": "deploy-bot"}).status_code == 201
    prompt = slack.http.post("/api/changes", headers=AUTH, json={
        "service": "llm-gateway", "kind": "prompt", "summary": "prompt answer-v42b (stricter citations)",
        "who": "priya", "when": (now - timedelta(minutes=40)).isoformat()})
    assert prompt.status_code == 201, prompt.text
    return prompt.json()["id"]


def postmortem(slack, incident_id: int, channel: str) -> str:
    slack.command("/incident postmortem", user=PRIYA, channel=channel)
    return slack.http.get(f"/api/incidents/{incident_id}/postmortem", headers=READER).json()["text"]


def test_a_responder_names_a_listed_change_and_the_postmortem_counts_from_it(start_warroom, llm_service):
    slack = start_warroom(WARROOM_AUTOMATION=False)
    prompt_id = changed_before(slack)
    incident_id = slack.fire(am_payload([am_alert("primary-70b")]))
    channel = slack.room(incident_id)
    assert "Changed 17 min before: bundle v42 by deploy-bot" in card_text(slack, channel)  # the latest, until named

    reply = reply_text(slack.command(f"/incident cause change {prompt_id}", user=PRIYA, channel=channel))
    assert reply.startswith("Cause recorded: prompt answer-v42b (stricter citations), prompt at")
    wait_for(lambda: "Cause: prompt answer-v42b (stricter citations) (prompt 40 min before, by priya)"
             in card_text(slack, channel), what="the card to name the cause")

    slack.command("/incident cause v42", user=PRIYA, channel=channel)  # a second look: the deploy it was
    wait_for(lambda: "Cause: bundle v42 (deploy 17 min before, by deploy-bot)" in card_text(slack, channel),
             what="the card to name the deploy")
    named = [e for e in slack.incident(incident_id)["timeline"] if e["kind"] == "cause"]
    assert [e["actor"] for e in named] == [PRIYA, PRIYA]
    assert "named the cause: bundle v42 (deploy at" in named[-1]["text"] and "by deploy-bot)" in named[-1]["text"]
    slack.settle()
    assert any("named the cause: bundle v42" in m.text for m in slack.messages(channel))  # said in the channel

    assert slack.resolve(channel, "rolled back by hand").startswith("Resolved")
    draft = postmortem(slack, incident_id, channel)
    assert "Cause, named by Priya: bundle v42 (`deploy` at" in draft and "by deploy-bot)." in draft
    assert "Time to detect: 17 m 10 s (from that change to the incident opening)" in draft
    duration = draft.split("- Duration: ")[1].splitlines()[0]
    assert duration.startswith("17 m"), duration  # from the deploy, not from the alert


def test_a_cause_in_the_responder_s_words_has_no_change_time(start_warroom, llm_service):
    slack = start_warroom(WARROOM_AUTOMATION=False)
    changed_before(slack)
    incident_id = slack.fire(am_payload([am_alert("primary-70b")]))
    channel = slack.room(incident_id)
    reply = reply_text(slack.command("/incident cause upstream provider outage", user=PRIYA, channel=channel))
    assert reply.startswith("Cause recorded: upstream provider outage (your words")
    wait_for(lambda: "Cause: upstream provider outage" in card_text(slack, channel), what="the card")
    assert slack.resolve(channel).startswith("Resolved")
    draft = postmortem(slack, incident_id, channel)
    assert "Cause, named by Priya: upstream provider outage (not a reported change" in draft
    assert "time to detect is unknown" in draft and "Time to detect: 17 m" not in draft
    assert "| `deploy` | bundle v42 | deploy-bot |" in draft  # the changes are still listed


def test_naming_a_cause_is_for_the_channel_and_an_unknown_change_is_refused(start_warroom, llm_service):
    slack = start_warroom(WARROOM_AUTOMATION=False)
    changed_before(slack)
    incident_id = slack.fire(am_payload([am_alert("primary-70b")]))
    channel = slack.room(incident_id)
    reply = reply_text(slack.command(f"/incident cause #{incident_id} v42", user=ALEX, channel=INCIDENTS))
    assert "Only people in the incident channel" in reply and "name its cause" in reply
    reply = reply_text(slack.command("/incident cause 99999", user=PRIYA, channel=channel))
    assert "No change 99999 is listed for this incident's service" in reply and "bundle v42" in reply
    usage = reply_text(slack.command("/incident cause", user=PRIYA, channel=channel))
    assert "Usage: `/incident cause" in usage and "`change 12` for the id `POST /api/changes` answered" in usage
    assert not [e for e in slack.incident(incident_id)["timeline"] if e["kind"] == "cause"]
    helped = reply_text(slack.command("/incident help", user=PRIYA, channel=channel))
    assert "— name the cause: a change on the card (`v42`, `change 12`) or your words" in helped
