from __future__ import annotations

from typing import Any

from slack_bolt import App

from bot.emulator import Emulator

CARD = [
    {"type": "section", "text": {"type": "mrkdwn", "text": "*SEV2* llm-gateway"}},
    {"type": "actions", "block_id": "card_actions", "elements": [
        {"type": "button", "action_id": "incident_ack", "text": {"type": "plain_text", "text": "Acknowledge"},
         "value": "INC-1", "style": "primary"},
        {"type": "static_select", "action_id": "incident_sev",
         "placeholder": {"type": "plain_text", "text": "Severity"},
         "options": [{"text": {"type": "plain_text", "text": f"SEV{n}"}, "value": f"sev{n}"} for n in (1, 2)]}]},
]
MODAL = {"type": "modal", "callback_id": "declare", "title": {"type": "plain_text", "text": "Declare"},
         "private_metadata": "C0INCIDENTS", "submit": {"type": "plain_text", "text": "Declare"},
         "blocks": [
             {"type": "input", "block_id": "title", "label": {"type": "plain_text", "text": "Title"},
              "element": {"type": "plain_text_input", "action_id": "value"}},
             {"type": "input", "block_id": "sev", "label": {"type": "plain_text", "text": "Severity"},
              "element": {"type": "static_select", "action_id": "choice", "options": [
                  {"text": {"type": "plain_text", "text": "SEV2"}, "value": "sev2"}]}}]}


def test_slash_command_is_signed_and_shaped_like_slack(bolt_app: App, emu: Emulator) -> None:
    seen: dict[str, Any] = {}

    @bolt_app.command("/incident")
    def incident(ack, command, respond):
        seen.update(command)
        ack(f"you said {command['text']}")
        respond(text="later, in the channel", response_type="in_channel")

    reply = emu.command("/incident declare sev2 GPU on fire", user="U0SAM", channel="C0INCIDENTS")

    assert reply.status == 200 and reply.body == "you said declare sev2 GPU on fire"
    assert seen["user_id"] == "U0SAM" and seen["channel_name"] == "incidents" and seen["team_id"] == "T0WARROOM"
    assert seen["response_url"].startswith(emu.base_url) and seen["trigger_id"] in emu.state.triggers
    emu.wait_for(lambda: any(m.text == "later, in the channel" and m.ephemeral_to is None
                             for m in emu.messages("C0INCIDENTS")))
    assert {m.text for m in emu.messages("C0INCIDENTS", viewer="U0SAM")} == {
        "you said declare sev2 GPU on fire", "later, in the channel"}
    assert emu.messages("C0INCIDENTS", viewer="U0PRIYA")[0].text == "later, in the channel"


def test_a_wrong_signing_secret_is_rejected_by_bolt(bolt_app: App, emu: Emulator) -> None:
    bolt_app.command("/incident")(lambda ack: ack())
    emu.driver.signing_secret = "not-the-secret"

    assert emu.command("/incident ack").status == 401


def test_click_sends_block_actions_and_the_listener_updates_the_card(bolt_app: App, emu: Emulator) -> None:
    payloads: list[dict[str, Any]] = []

    @bolt_app.action("incident_ack")
    def ack_incident(ack, body, client):
        ack()
        payloads.append(body)
        client.chat_update(channel=body["channel"]["id"], ts=body["message"]["ts"], text="Acknowledged by Priya",
                           blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": "Acknowledged by Priya"}}])

    ts = bolt_app.client.chat_postMessage(channel="C0INCIDENTS", text="SEV2", blocks=CARD)["ts"]
    reply = emu.click("C0INCIDENTS", ts, "incident_ack", user="U0PRIYA")

    assert reply.status == 200
    emu.wait_for(lambda: emu.messages("C0INCIDENTS")[0].text == "Acknowledged by Priya")
    [body] = payloads
    assert body["type"] == "block_actions" and body["user"]["id"] == "U0PRIYA"
    assert body["container"] == {"type": "message", "message_ts": ts, "channel_id": "C0INCIDENTS",
                                 "is_ephemeral": False}
    assert body["actions"][0]["value"] == "INC-1" and body["actions"][0]["block_id"] == "card_actions"
    assert body["response_url"].startswith(emu.base_url) and body["trigger_id"]


def test_select_sends_the_chosen_option(bolt_app: App, emu: Emulator) -> None:
    chosen: list[Any] = []

    @bolt_app.action("incident_sev")
    def sev(ack, action, respond):
        ack()
        chosen.append(action["selected_option"]["value"])
        respond(text="Severity set", replace_original=True)

    ts = bolt_app.client.chat_postMessage(channel="C0INCIDENTS", text="SEV2", blocks=CARD)["ts"]
    emu.select("C0INCIDENTS", ts, "incident_sev", "sev1")

    emu.wait_for(lambda: emu.messages("C0INCIDENTS")[0].text == "Severity set")
    assert chosen == ["sev1"] and emu.messages("C0INCIDENTS")[0].blocks is None


def test_a_command_opens_a_modal_and_its_submission_reaches_the_view_listener(bolt_app: App, emu: Emulator) -> None:
    submitted: list[dict[str, Any]] = []

    @bolt_app.command("/incident")
    def declare(ack, command, client):
        ack()
        client.views_open(trigger_id=command["trigger_id"], view=MODAL)

    @bolt_app.view("declare")
    def on_submit(ack, view):
        values = view["state"]["values"]
        if not values["title"]["value"]["value"]:
            ack(response_action="errors", errors={"title": "A title, please"})
            return
        ack()
        submitted.append(view)

    emu.command("/incident declare", user="U0PRIYA")
    [view] = emu.wait_for(lambda: emu.state.open_views("U0PRIYA"))

    emu.submit_view(view.id, {"title": {"value": ""}, "choice": "sev2"})
    assert view.errors == {"title": "A title, please"} and not view.closed
    emu.submit_view(view.id, {"title": {"value": "GPU on fire"}, "choice": "sev2"})

    assert view.closed
    [got] = submitted
    assert got["private_metadata"] == "C0INCIDENTS" and got["callback_id"] == "declare"
    assert got["state"]["values"] == {
        "title": {"value": {"type": "plain_text_input", "value": "GPU on fire"}},
        "sev": {"choice": {"type": "static_select",
                           "selected_option": {"text": {"type": "plain_text", "text": "SEV2"}, "value": "sev2"}}},
    }


def test_reactions_arrive_as_events_with_retry_headers(bolt_app: App, emu: Emulator) -> None:
    events: list[tuple[str, str | None, str]] = []

    @bolt_app.event("reaction_added")
    def pinned(event, body, request):
        events.append((event["reaction"], request.headers.get("x-slack-retry-num", [None])[0], body["event_id"]))

    ts = bolt_app.client.chat_postMessage(channel="C0INCIDENTS", text="the hallucinated refund policy")["ts"]
    emu.react("C0INCIDENTS", ts, "pushpin", user="U0PRIYA", event_id="Ev001")
    emu.react("C0INCIDENTS", ts, "pushpin", user="U0PRIYA", event_id="Ev001", retry_num=1)

    emu.wait_for(lambda: len(events) == 2)
    assert events == [("pushpin", None, "Ev001"), ("pushpin", "1", "Ev001")]
    assert emu.messages("C0INCIDENTS")[0].reactions == {"pushpin": ["U0PRIYA"]}


def test_url_verification_gets_the_challenge_back(bolt_app: App, emu: Emulator) -> None:
    reply = emu.url_verification("abc123")
    assert reply.status == 200 and reply.json == {"challenge": "abc123"}
