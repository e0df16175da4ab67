from __future__ import annotations

from datetime import datetime

import httpx
from playwright.sync_api import Browser, expect
from slack_bolt import App

from bot.emulator import Emulator
from bot.emulator.page import mrkdwn

CARD = [
    {"type": "header", "text": {"type": "plain_text", "text": "SEV2 · llm-gateway · hallucination-rate"}},
    {"type": "section", "fields": [{"type": "mrkdwn", "text": "*Status:* triggered"},
                                   {"type": "mrkdwn", "text": "*On call:* <!subteam^S0MLONCALL>"}]},
    {"type": "actions", "elements": [
        {"type": "button", "action_id": "incident_ack", "style": "primary", "value": "INC-1",
         "text": {"type": "plain_text", "text": "Acknowledge"}}]},
]




def test_clicking_acknowledge_on_the_page_reaches_the_bot_and_shows_the_updated_card(
        bolt_app: App, emu: Emulator, browser: Browser) -> None:
    @bolt_app.action("incident_ack")
    def acknowledge(ack, body, client):
        ack()
        who = body["user"]["name"]
        client.chat_update(channel=body["channel"]["id"], ts=body["message"]["ts"], text=f"Acknowledged by {who}",
                           blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": f"*Acknowledged* by {who}"}}])

    bolt_app.client.chat_postMessage(channel="C0INCIDENTS", text="SEV2 llm-gateway", blocks=CARD)
    page = browser.new_page()
    page.goto(f"{emu.base_url}/?channel=C0INCIDENTS&user=U0SAM")

    expect(page.locator("strong", has_text="On call:")).to_be_visible()  # mrkdwn *bold*, as Slack shows it
    expect(page.locator(".mention", has_text="@ml-oncall")).to_be_visible()
    page.get_by_role("button", name="Acknowledge").click()

    expect(page.locator("#messages").get_by_text("Acknowledged by sam")).to_be_visible(timeout=5000)
    expect(page.get_by_role("button", name="Acknowledge")).to_have_count(0)
    assert emu.calls_to("chat.update")[0].response["ok"] is True
    page.close()


def test_typing_a_slash_command_sends_it_to_the_bot_and_shows_the_ephemeral_answer(
        bolt_app: App, emu: Emulator, browser: Browser) -> None:
    bolt_app.command("/incident")(lambda ack, command: ack(f"Nothing to {command['text']} here"))
    page = browser.new_page()
    page.goto(f"{emu.base_url}/?channel=C0INCIDENTS&user=U0ALEX")

    page.get_by_placeholder("/incident help").fill("/incident ack")
    page.get_by_role("button", name="Send").click()

    messages = page.locator("#messages")
    expect(messages.get_by_text("Nothing to ack here")).to_be_visible(timeout=5000)
    expect(messages.get_by_text("Only visible to you")).to_be_visible()
    assert emu.replies[-1].request["user_id"] == "U0ALEX"
    page.close()


def test_message_text_is_escaped_not_interpreted(emu: Emulator) -> None:
    emu.state.channels["C0INCIDENTS"].messages.clear()
    httpx.post(f"{emu.api_url}chat.postMessage", headers={"Authorization": f"Bearer {emu.token}"},
               json={"channel": "C0INCIDENTS", "text": "&lt;img src=x onerror=alert(1)&gt; &amp; <@U0PRIYA>"})

    html = httpx.get(f"{emu.base_url}/?channel=C0INCIDENTS").text

    assert "<img src=x" not in html
    assert '&lt;img src=x onerror=alert(1)&gt; &amp; <span class="mention">@priya</span>' in html


def test_a_modal_opened_by_the_bot_is_a_form_on_the_page(bolt_app: App, emu: Emulator, browser: Browser) -> None:
    titles: list[str] = []
    modal = {"type": "modal", "callback_id": "declare", "title": {"type": "plain_text", "text": "Declare incident"},
             "submit": {"type": "plain_text", "text": "Declare"},
             "blocks": [{"type": "input", "block_id": "title", "label": {"type": "plain_text", "text": "Title"},
                         "element": {"type": "plain_text_input", "action_id": "value"}}]}

    @bolt_app.command("/incident")
    def declare(ack, command, client):
        ack()
        client.views_open(trigger_id=command["trigger_id"], view=modal)

    @bolt_app.view("declare")
    def submitted(ack, view):
        titles.append(view["state"]["values"]["title"]["value"]["value"])
        ack()

    page = browser.new_page()
    page.goto(f"{emu.base_url}/?channel=C0INCIDENTS&user=U0PRIYA")
    page.get_by_placeholder("/incident help").fill("/incident declare")
    page.get_by_role("button", name="Send").click()

    expect(page.get_by_text("Declare incident")).to_be_visible(timeout=5000)
    page.get_by_label("Title").fill("GPU on fire")
    page.get_by_role("button", name="Declare").click()

    expect(page.get_by_text("Declare incident")).to_have_count(0, timeout=5000)
    assert titles == ["GPU on fire"]
    page.close()


def test_mrkdwn_shows_bold_code_links_and_mentions_and_keeps_help_placeholders(emu: Emulator) -> None:
    ws = emu.state
    assert mrkdwn(ws, "*Status:* triggered · `/incident ack` · _soon_ · ~old~") == (
        "<strong>Status:</strong> triggered · <code>/incident ack</code> · <em>soon</em> · <del>old</del>")
    assert mrkdwn(ws, "<https://grafana.example/d/1?a=1&amp;b=2|dashboard> by <@U0PRIYA> in <#C0INCIDENTS>") == (
        '<a href="https://grafana.example/d/1?a=1&amp;b=2" target="_blank" rel="noopener">dashboard</a> by '
        '<span class="mention">@priya</span> in <span class="mention">#incidents</span>')
    # Help text: `<title>` is a placeholder to fill in, not a link; snake_case is not italic.
    assert mrkdwn(ws, "• `declare [sev1-4] <title>` — open an incident") == (
        "• <code>declare [sev1-4] &lt;title&gt;</code> — open an incident")
    assert mrkdwn(ws, "disable web_search_tool now") == "disable web_search_tool now"
    # Nothing the text says becomes markup: not a script, not a javascript: link.
    assert mrkdwn(ws, "*<script>*") == "<strong>&lt;script&gt;</strong>"
    assert "href" not in mrkdwn(ws, "<javascript:alert(1)|click>")


def test_messages_show_the_time_of_day_not_the_raw_ts(emu: Emulator) -> None:
    posted = httpx.post(f"{emu.api_url}chat.postMessage", headers={"Authorization": f"Bearer {emu.token}"},
                        json={"channel": "C0INCIDENTS", "text": "hello"}).json()
    html = httpx.get(f"{emu.base_url}/?channel=C0INCIDENTS").text
    when = datetime.fromtimestamp(float(posted["ts"])).strftime("%H:%M:%S")
    assert f'<time title="ts {posted["ts"]}">{when}</time>' in html
    assert f">{posted['ts']}<" not in html


def test_a_plain_message_typed_on_the_page_is_posted_as_that_person_for_the_bot_to_read(
        emu: Emulator, browser: Browser) -> None:
    page = browser.new_page()
    page.goto(f"{emu.base_url}/?channel=C0INCIDENTS&user=U0SAM")
    page.get_by_placeholder("/incident help").fill("rollback looks <safe> & *done*")
    page.get_by_role("button", name="Send").click()

    message = page.locator("#messages article", has_text="rollback looks")
    expect(message).to_be_visible(timeout=5000)
    expect(message.locator(".meta strong")).to_have_text("sam")
    expect(message.locator("strong", has_text="done")).to_be_visible()
    # Stored as Slack stores a person's text, so the bot reading history (a 📌 on it) gets it as Slack sends it.
    history = httpx.post(f"{emu.api_url}conversations.history", headers={"Authorization": f"Bearer {emu.token}"},
                         data={"channel": "C0INCIDENTS"}).json()["messages"]
    mine = [m for m in history if m["user"] == "U0SAM"]
    assert [m["text"] for m in mine] == ["rollback looks &lt;safe&gt; &amp; *done*"]
    page.close()


def test_the_page_follows_new_messages_when_scrolled_to_the_bottom(emu: Emulator, browser: Browser) -> None:
    post = lambda text: httpx.post(f"{emu.api_url}chat.postMessage",  # noqa: E731
                                   headers={"Authorization": f"Bearer {emu.token}"},
                                   json={"channel": "C0INCIDENTS", "text": text})
    for n in range(60):
        post(f"earlier message {n}")
    page = browser.new_page(viewport={"width": 1000, "height": 500})
    page.goto(f"{emu.base_url}/?channel=C0INCIDENTS&user=U0PRIYA")
    expect(page.get_by_text("earlier message 59")).to_be_in_viewport()

    post("the newest message")

    expect(page.get_by_text("the newest message")).to_be_in_viewport(timeout=5000)
    page.close()
