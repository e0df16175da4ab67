from __future__ import annotations

import json

import httpx
import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from bot.emulator import Emulator
from bot.slack.manifest import BOT_SCOPES


def test_auth_test_tells_the_bot_who_it_is(client: WebClient) -> None:
    me = client.auth_test()
    assert (me["user_id"], me["bot_id"], me["team_id"]) == ("U0WARROOM", "B0WARROOM", "T0WARROOM")
    assert me["url"].startswith("https://")


def test_missing_token_is_not_authed_and_wrong_token_is_invalid_auth(emu: Emulator) -> None:
    with pytest.raises(SlackApiError) as none:
        WebClient(base_url=emu.api_url).auth_test()
    with pytest.raises(SlackApiError) as wrong:
        WebClient(token="xoxb-stolen", base_url=emu.api_url).auth_test()

    assert none.value.response.status_code == 200 and none.value.response["error"] == "not_authed"
    assert wrong.value.response["error"] == "invalid_auth"


def test_method_outside_the_manifest_is_missing_scope_with_needed_and_provided(client: WebClient) -> None:
    with pytest.raises(SlackApiError) as err:
        client.conversations_join(channel="C0INCIDENTS")

    body = err.value.response
    assert body["error"] == "missing_scope"
    assert body["needed"] == "channels:join"
    assert body["provided"].split(",") == list(BOT_SCOPES)


def test_unknown_method_is_reported(client: WebClient) -> None:
    with pytest.raises(SlackApiError) as err:
        client.api_call("made.up")
    assert err.value.response["error"] == "unknown_method"


def test_form_json_and_query_string_arguments_are_all_understood(emu: Emulator) -> None:
    auth = {"Authorization": f"Bearer {emu.token}"}
    form = httpx.post(f"{emu.api_url}conversations.create", data={"name": "from-form"}, headers=auth).json()
    as_json = httpx.post(f"{emu.api_url}conversations.create", json={"name": "from-json"}, headers=auth).json()
    query = httpx.get(f"{emu.api_url}conversations.create", params={"name": "from-query"}, headers=auth).json()
    legacy = httpx.post(f"{emu.api_url}conversations.create", data={"name": "from-token-arg",
                                                                    "token": emu.token}).json()

    assert [r["channel"]["name"] for r in (form, as_json, query, legacy)] == [
        "from-form", "from-json", "from-query", "from-token-arg"]


def test_every_call_is_recorded_with_args_token_and_answer(client: WebClient, emu: Emulator) -> None:
    client.chat_postMessage(channel="C0INCIDENTS", text="hello", blocks=[{"type": "divider"}])
    with pytest.raises(SlackApiError):
        client.chat_postMessage(channel="C404", text="nowhere")

    ok, failed = emu.calls_to("chat.postMessage")
    assert ok.args["text"] == "hello" and ok.args["blocks"] == [{"type": "divider"}]
    assert ok.token == emu.token and ok.response["ok"] is True
    assert failed.response == {"ok": False, "error": "channel_not_found"}


def test_socket_mode_urls_need_the_app_level_token_and_are_single_use(emu: Emulator) -> None:
    with pytest.raises(SlackApiError) as bot_token:
        WebClient(token=emu.token, base_url=emu.api_url).apps_connections_open(app_token=emu.token)
    assert bot_token.value.response["error"] == "not_allowed_token_type"

    url = WebClient(base_url=emu.api_url).apps_connections_open(app_token=emu.app_token)["url"]
    assert url.startswith("ws://127.0.0.1:") and "ticket=" in url
    with connect(url) as first:
        assert json.loads(first.recv(timeout=5))["type"] == "hello"
    with pytest.raises((InvalidStatus, ConnectionClosed)), connect(url) as again:  # the ticket was used
        again.recv(timeout=5)
