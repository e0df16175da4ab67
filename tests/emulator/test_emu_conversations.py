from __future__ import annotations

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.emulator import Emulator


def api_error(call, **kwargs) -> str:
    with pytest.raises(SlackApiError) as err:
        call(**kwargs)
    assert err.value.response.status_code == 200, "Slack reports API errors with HTTP 200"
    return str(err.value.response["error"])


def test_channel_names_follow_slack_rules(client: WebClient) -> None:
    assert api_error(client.conversations_create, name="") == "invalid_name_required"
    assert api_error(client.conversations_create, name="a" * 81) == "invalid_name_maxlength"
    assert api_error(client.conversations_create, name="Inc-Upper") == "invalid_name_specials"
    assert api_error(client.conversations_create, name="inc room") == "invalid_name_specials"
    assert api_error(client.conversations_create, name="inc.dot") == "invalid_name_specials"
    assert client.conversations_create(name="a" * 80)["channel"]["name"] == "a" * 80


def test_a_name_stays_taken_after_the_channel_is_archived(client: WebClient) -> None:
    channel = client.conversations_create(name="inc-20260314-llm")["channel"]
    assert api_error(client.conversations_create, name="inc-20260314-llm") == "name_taken"
    client.conversations_archive(channel=channel["id"])

    assert api_error(client.conversations_create, name="inc-20260314-llm") == "name_taken"
    assert api_error(client.conversations_archive, channel=channel["id"]) == "already_archived"
    assert client.conversations_info(channel=channel["id"])["channel"]["is_archived"] is True


def test_the_creating_bot_is_a_member_and_private_channels_are_private(client: WebClient, emu: Emulator) -> None:
    channel = client.conversations_create(name="inc-secret", is_private=True)["channel"]

    assert channel["is_private"] is True
    assert client.conversations_members(channel=channel["id"])["members"] == ["U0WARROOM"]
    assert emu.channel_by_name("inc-secret").is_private


def test_invite_rules(client: WebClient, emu: Emulator) -> None:
    cid = client.conversations_create(name="inc-invite")["channel"]["id"]
    client.conversations_invite(channel=cid, users="U0PRIYA,U0SAM")

    assert emu.state.channels[cid].members == ["U0WARROOM", "U0PRIYA", "U0SAM"]
    assert api_error(client.conversations_invite, channel=cid, users="U0PRIYA,U0SAM") == "already_in_channel"
    assert api_error(client.conversations_invite, channel=cid, users="U0NOBODY") == "user_not_found"
    assert api_error(client.conversations_invite, channel=cid, users="U0WARROOM") == "cant_invite_self"
    client.conversations_invite(channel=cid, users="U0SAM,U0ALEX")  # some new: fine
    assert "U0ALEX" in emu.state.channels[cid].members


def test_topic_and_purpose_are_limited_to_250_characters(client: WebClient, emu: Emulator) -> None:
    cid = client.conversations_create(name="inc-topic")["channel"]["id"]
    client.conversations_setTopic(channel=cid, topic="SEV2 · llm-gateway · hallucination-rate")
    client.conversations_setPurpose(channel=cid, purpose="p" * 250)

    assert api_error(client.conversations_setTopic, channel=cid, topic="t" * 251) == "too_long"
    assert api_error(client.conversations_setPurpose, channel=cid, purpose="p" * 251) == "too_long"
    info = client.conversations_info(channel=cid)["channel"]
    assert info["topic"]["value"] == "SEV2 · llm-gateway · hallucination-rate"
    assert emu.state.channels[cid].purpose == "p" * 250


def test_history_is_newest_first_with_limit_and_bounds(client: WebClient) -> None:
    cid = client.conversations_create(name="inc-history")["channel"]["id"]
    ts = [client.chat_postMessage(channel=cid, text=f"m{i}")["ts"] for i in range(5)]
    client.chat_postMessage(channel=cid, text="reply", thread_ts=ts[0])

    assert [m["text"] for m in client.conversations_history(channel=cid)["messages"]] == ["m4", "m3", "m2", "m1", "m0"]
    page = client.conversations_history(channel=cid, limit=2)
    assert [m["text"] for m in page["messages"]] == ["m4", "m3"] and page["has_more"] is True
    window = client.conversations_history(channel=cid, oldest=ts[1], latest=ts[3])
    assert [m["text"] for m in window["messages"]] == ["m2"]
    one = client.conversations_history(channel=cid, latest=ts[2], inclusive=True, limit=1)
    assert [m["text"] for m in one["messages"]] == ["m2"]


def test_unknown_channels_are_not_found(client: WebClient) -> None:
    assert api_error(client.conversations_info, channel="C0NOPE") == "channel_not_found"
    assert api_error(client.conversations_invite, channel="C0NOPE", users="U0SAM") == "channel_not_found"
