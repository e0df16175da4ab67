"""Failing traces in the room, human labels, and the postmortem draft posted from Slack."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import select

from bot.store.db import transaction
from bot.store.models import Trace
from tests.alerts.payloads import am_alert, am_payload
from tests.conftest import ALERT_TOKEN, READER
from tests.slack.conftest import PRIYA, reply_text
from tests.support import wait_for


def post_traces(slack, n_bad: int = 12) -> None:
    now = datetime.now(timezone.utc)
    events = [{"request_id": f"req-{i}", "timestamp": (now - timedelta(minutes=5, seconds=i)).isoformat(),
               "service": "llm-gateway", "bundle_version": "v42", "model": "primary-70b", "prompt_hash": f"h{i % 4}",
               "input": "What is the refund policy? mail me at jane@example.com",
               "output": "Refunds are available within 90 days, no receipt needed.", "hallucination_score": 0.93}
              for i in range(n_bad)]
    events.append({"request_id": "req-good", "timestamp": now.isoformat(), "service": "llm-gateway",
                   "input": "hi", "output": "hello", "hallucination_score": 0.01})
    response = slack.http.post("/api/traces", json=events, headers={"Authorization": f"Bearer {ALERT_TOKEN}"})
    assert response.status_code == 200 and response.json()["accepted"] == n_bad + 1, response.text


def test_failing_traces_show_in_the_room_redacted_and_can_be_labelled(slack):
    post_traces(slack)
    incident_id = slack.fire(am_payload([am_alert("primary-70b", starts=datetime.now(timezone.utc).isoformat())]))
    channel = slack.room(incident_id)
    message = wait_for(lambda: next((m for m in slack.messages(channel) if "failing trace" in m.text), None),
                       what="the failing traces message")
    text = str(message.blocks)
    assert "*12 failing trace(s)*" in text and "top 3" in text
    assert "jane@example.com" not in text and "[email]" in text

    slack.emu.click(channel, message.ts, "trace.label", "req-0", user=PRIYA)
    view = wait_for(lambda: next(iter(slack.emu.state.views.values()), None), what="the label form")
    reply = slack.emu.submit_view(view.id, {"failure_type": "hallucination",
                                            "expected": "Refunds are available within 30 days.",
                                            "claim": "90 days"}, user=PRIYA)
    assert reply.status == 200
    timeline = slack.incident(incident_id)["timeline"]
    assert any(e["kind"] == "trace_labelled" and "30 days" in e["text"] for e in timeline)


def test_a_label_goes_to_the_trace_its_button_was_shown_for_when_its_request_id_comes_again(slack):
    """A trace is known by service, time and request id, so one id can name two traces: the Label
    button in an incident's channel labels that incident's trace, not the newest with the id."""
    post_traces(slack, n_bad=3)
    incident_id = slack.fire(am_payload([am_alert("primary-70b", starts=datetime.now(timezone.utc).isoformat())]))
    channel = slack.room(incident_id)
    message = wait_for(lambda: next((m for m in slack.messages(channel) if "failing trace" in m.text), None),
                       what="the failing traces message")
    again = {"request_id": "req-0", "timestamp": datetime.now(timezone.utc).isoformat(), "service": "search-api",
             "input": "find shoes", "output": "no shoes", "hallucination_score": 0.97}
    response = slack.http.post("/api/traces", json=[again], headers={"Authorization": f"Bearer {ALERT_TOKEN}"})
    assert response.json()["accepted"] == 1, response.text

    slack.emu.click(channel, message.ts, "trace.label", "req-0", user=PRIYA)
    view = wait_for(lambda: next(iter(slack.emu.state.views.values()), None), what="the label form")
    assert slack.emu.submit_view(view.id, {"failure_type": "hallucination", "claim": "90 days"},
                                 user=PRIYA).status == 200
    with transaction(slack.runtime.engine) as session:
        same_id = session.execute(select(Trace).where(Trace.request_id == "req-0")).scalars()
        labels = {t.service: t.label for t in same_id}
    assert labels["llm-gateway"]["unsupported_claim"] == "90 days" and not labels["search-api"]


def test_postmortem_command_posts_a_draft_in_the_channel(slack):
    incident_id = slack.fire(am_payload([am_alert("a")]))
    channel = slack.room(incident_id)
    slack.command("/incident ack", channel=channel)
    slack.resolve(channel, "rolled back")
    reply = slack.command("/incident postmortem", channel=channel)
    assert "Postmortem draft posted" in reply_text(reply)
    draft = wait_for(lambda: next((m for m in slack.messages(channel) if m.text.startswith("Postmortem draft")), None),
                     what="the draft in the channel")
    body = str(draft.blocks)
    for section in ("Summary", "Impact", "Timeline", "Follow-ups"):
        assert section in body
    assert slack.http.get(f"/incidents/{incident_id}/postmortem.md", headers=READER).status_code == 200
