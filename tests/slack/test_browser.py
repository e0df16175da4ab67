"""A person in a browser: the emulator page, the real bot, a click on Acknowledge, the card changes."""

from __future__ import annotations

import re

from playwright.sync_api import Browser, expect

from tests.alerts.payloads import am_alert, am_payload
from tests.slack.test_actions import llm_service  # noqa: F401  (fixture)
from tests.slack.test_late_traces import slack_every_second  # noqa: F401  (fixture)


def test_acknowledge_in_the_page_acknowledges_the_incident_and_the_card_changes(slack, browser: Browser, tmp_path):
    incident_id = slack.fire(am_payload([am_alert("primary-70b")]))
    channel = slack.room(incident_id)
    page = browser.new_page()
    page.goto(f"{slack.emu.base_url}/?channel={channel}&user=U0PRIYA")
    card = page.locator("#messages")
    expect(card.get_by_text("🔴 SEV2 · llm-gateway hallucination-rate burning 14.4x")).to_be_visible()

    page.get_by_role("button", name="Acknowledge").first.click()

    expect(card.get_by_text("🟠 SEV2 · llm-gateway hallucination-rate burning 14.4x")).to_be_visible(timeout=10000)
    expect(card.get_by_text("Acknowledged by <@U0PRIYA>", exact=False).or_(card.get_by_text("Acknowledged by @priya",
                                                                                         exact=False)).first).to_be_visible()
    assert slack.incident(incident_id)["status"] == "acknowledged"
    page.screenshot(path=str(tmp_path / "acknowledged.png"), full_page=True)
    page.close()


def test_a_person_signs_in_with_the_link_from_incident_web_and_their_edit_is_attributed(slack, browser: Browser):
    incident_id = slack.fire(am_payload([am_alert("primary-70b")]))
    channel = slack.room(incident_id)
    page = browser.new_page()
    page.goto(f"{slack.url}/incidents")
    expect(page.get_by_role("heading", name="Sign in to see incidents")).to_be_visible()

    page.goto(f"{slack.emu.base_url}/?channel={channel}&user=U0PRIYA")
    page.locator("#command input[name=text]").fill("/incident web")
    page.locator("#command input[name=text]").press("Enter")
    answer = page.locator("#messages").get_by_text("Your sign-in link", exact=False)
    expect(answer).to_be_visible(timeout=10000)
    link = re.search(r"http://\S+/signin/[\w-]+", answer.inner_text())
    assert link is not None and link.group(0).startswith(slack.url)

    page.goto(link.group(0))  # what a click on the link in Slack does
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("link", name=re.compile("hallucination-rate"))).to_be_visible()
    page.goto(f"{slack.url}/incidents/{incident_id}/postmortem")
    page.get_by_label("Postmortem (Markdown)").fill("# Our review\n\nThe retriever snapshot was stale.")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Saved.")).to_be_visible()

    timeline = slack.incident(incident_id)["timeline"]
    assert any(e["kind"] == "postmortem_edit" and e["actor"] == "U0PRIYA" for e in timeline)
    page.goto(link.group(0))  # the link worked once
    expect(page.get_by_text("used already or has expired")).to_be_visible()
    page.close()


def test_a_person_sees_late_failing_traces_to_label_and_a_topic_that_follows_the_rollback(
        llm_service, slack_every_second, browser: Browser):  # noqa: F811  (the service before warroom reads its URL)
    """The README's scenario as a person plays it in the emulator page: failing traces that arrive
    after the incident opened show up with Label buttons, and the channel topic follows the
    incident through a rollback confirmed by Priya and approved by Sam."""
    from datetime import datetime, timezone

    from tests.slack.test_late_traces import failing, send

    slack = slack_every_second
    auth = {"Authorization": "Bearer test-alert-token"}
    for version, good, deployed in (("v41", True, "2026-11-01T00:00:00Z"), ("v42", False, "2026-11-21T00:00:00Z")):
        response = slack.http.post("/api/bundles", headers=auth, json={
            "service": "llm-gateway", "version": version, "components": {"prompt_version": f"answer-{version}"},
            "deployed_at": deployed, "known_good": good})
        assert response.status_code in (200, 201), response.text
    incident_id = slack.fire(am_payload([am_alert("primary-70b")]))
    channel = slack.room(incident_id)
    page = browser.new_page()
    page.goto(f"{slack.emu.base_url}/?channel={channel}&user=U0PRIYA")
    topic = page.locator(".topic")
    expect(topic).to_contain_text("triggered", timeout=10000)

    send(slack, failing("late", 3, datetime.now(timezone.utc)))
    messages = page.locator("#messages")
    expect(messages.get_by_text(re.compile(r"3 failing trace\(s\) since"))).to_be_visible(timeout=15000)
    expect(messages.get_by_role("button", name="Label").first).to_be_visible()

    page.locator("#command input[name=text]").fill("/incident rollback")
    page.locator("#command input[name=text]").press("Enter")
    page.get_by_role("button", name="Confirm").last.click(timeout=15000)
    sam = browser.new_page()
    sam.goto(f"{slack.emu.base_url}/?channel={channel}&user=U0SAM")
    sam.get_by_role("button", name="Approve").last.click(timeout=15000)
    expect(topic).to_contain_text("bundle v41", timeout=20000)
    expect(topic).to_contain_text("mitigated")
    assert llm_service.state()["bundle"] == "v41"
    sam.close()
    page.close()
