from __future__ import annotations

import re

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.emulator import Emulator

CARD = [
    {"type": "header", "text": {"type": "plain_text", "text": "SEV2 llm-gateway"}},
    {"type": "actions", "elements": [
        {"type": "button", "action_id": "incident_ack", "text": {"type": "plain_text", "text": "Acknowledge"},
         "value": "INC-1"}]},
]


def api_error(call, **kwargs) -> str:
    with pytest.raises(SlackApiError) as err:
        call(**kwargs)
    return str(err.value.response["error"])


def test_post_needs_an_existing_channel_the_bot_is_in(client: WebClient, emu: Emulator) -> None:
    outside = emu.state.channels["C0INCIDENTS"]
    outside.members.remove("U0WARROOM")

    assert api_error(client.chat_postMessage, channel="C0INCIDENTS", text="hi") == "not_in_channel"
    assert api_error(client.chat_postMessage, channel="C0MISSING", text="hi") == "channel_not_found"


def test_post_returns_unique_increasing_slack_timestamps_and_stores_blocks(client: WebClient, emu: Emulator) -> None:
    stamps = [client.chat_postMessage(channel="C0INCIDENTS", text=f"n{i}")["ts"] for i in range(20)]
    card = client.chat_postMessage(channel="C0INCIDENTS", text="SEV2 llm-gateway", blocks=CARD)

    assert all(re.fullmatch(r"\d{10}\.\d{6}", ts) for ts in stamps)
    assert stamps == sorted(stamps, key=float) and len(set(stamps)) == 20
    stored = emu.messages("C0INCIDENTS")[-1]
    assert stored.ts == card["ts"] and stored.user == "U0WARROOM"
    assert stored.blocks[1]["elements"][0]["action_id"] == "incident_ack"
    assert all(b["block_id"] for b in stored.blocks), "Slack gives every block a block_id"


def test_thread_replies_keep_their_thread_ts(client: WebClient, emu: Emulator) -> None:
    parent = client.chat_postMessage(channel="C0INCIDENTS", text="parent")["ts"]
    client.chat_postMessage(channel="C0INCIDENTS", text="child", thread_ts=parent)

    assert emu.messages("C0INCIDENTS")[-1].thread_ts == parent
    replies = client.conversations_replies(channel="C0INCIDENTS", ts=parent)["messages"]
    assert [m["text"] for m in replies] == ["parent", "child"]


def test_update_with_text_only_drops_the_blocks(client: WebClient, emu: Emulator) -> None:
    ts = client.chat_postMessage(channel="C0INCIDENTS", text="card", blocks=CARD)["ts"]
    client.chat_update(channel="C0INCIDENTS", ts=ts, text="acknowledged by Priya")

    [msg] = emu.messages("C0INCIDENTS")
    assert msg.text == "acknowledged by Priya" and msg.blocks is None
    assert api_error(client.chat_update, channel="C0INCIDENTS", ts="1.000000", text="x") == "message_not_found"


def test_ephemeral_messages_are_seen_only_by_their_user(client: WebClient, emu: Emulator) -> None:
    client.chat_postEphemeral(channel="C0INCIDENTS", user="U0PRIYA", text="only for Priya")

    assert [m.text for m in emu.messages("C0INCIDENTS", viewer="U0PRIYA")] == ["only for Priya"]
    assert emu.messages("C0INCIDENTS", viewer="U0SAM") == []
    assert client.conversations_history(channel="C0INCIDENTS")["messages"] == []


def test_pins_bookmarks_and_reactions(client: WebClient, emu: Emulator) -> None:
    ts = client.chat_postMessage(channel="C0INCIDENTS", text="card")["ts"]
    client.pins_add(channel="C0INCIDENTS", timestamp=ts)
    client.reactions_add(channel="C0INCIDENTS", timestamp=ts, name="white_check_mark")
    client.bookmarks_add(channel_id="C0INCIDENTS", title="Dashboard", type="link", link="https://grafana.example/d/1")

    assert api_error(client.pins_add, channel="C0INCIDENTS", timestamp=ts) == "already_pinned"
    assert api_error(client.pins_add, channel="C0INCIDENTS", timestamp="1.000000") == "message_not_found"
    assert api_error(client.reactions_add, channel="C0INCIDENTS", timestamp=ts,
                     name="white_check_mark") == "already_reacted"
    assert api_error(client.bookmarks_add, channel_id="C0INCIDENTS", title="x", type="link",
                     link="javascript:alert(1)") == "invalid_link"
    channel = emu.state.channels["C0INCIDENTS"]
    assert channel.pins == [ts]
    assert emu.messages("C0INCIDENTS")[0].reactions == {"white_check_mark": ["U0WARROOM"]}
    assert [(b.title, b.link) for b in channel.bookmarks] == [("Dashboard", "https://grafana.example/d/1")]
