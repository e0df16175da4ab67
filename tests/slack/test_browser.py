"""A person in a browser: the emulator page, the real bot, a click on Acknowledge, the card changes."""

from __future__ import annotations

from playwright.sync_api import Browser, expect

from tests.alerts.payloads import am_alert, am_payload


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
