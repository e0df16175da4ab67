from __future__ import annotations

import socket

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler, ServerErrorRetryHandler

from bot.emulator import Emulator


def test_posting_faster_than_one_per_second_per_channel_is_rate_limited(client: WebClient, emu: Emulator) -> None:
    emu.set_rate_limits(per_channel_per_second=1.0, channel_burst=2)
    client.chat_postMessage(channel="C0INCIDENTS", text="1")
    client.chat_postMessage(channel="C0INCIDENTS", text="2")
    with pytest.raises(SlackApiError) as err:
        client.chat_postMessage(channel="C0INCIDENTS", text="3")

    response = err.value.response
    assert response.status_code == 429
    assert int(response.headers["Retry-After"][0]) >= 1
    assert response.data == {"ok": False, "error": "ratelimited"}
    assert [m.text for m in emu.messages("C0INCIDENTS")] == ["1", "2"]
    other = client.conversations_create(name="inc-other")["channel"]["id"]
    client.chat_postMessage(channel=other, text="other channels have their own budget")


def test_method_tiers_have_per_minute_budgets(client: WebClient, emu: Emulator) -> None:
    emu.set_rate_limits(tier_per_minute={"T2": 2})
    client.conversations_create(name="one")
    client.conversations_create(name="two")
    with pytest.raises(SlackApiError) as err:
        client.conversations_create(name="three")

    assert err.value.response.status_code == 429
    assert int(err.value.response.headers["Retry-After"][0]) >= 1
    client.conversations_invite(channel=emu.channel_by_name("one").id, users="U0SAM")  # T3: separate budget


def test_slack_sdk_rate_limit_handler_waits_for_retry_after_and_succeeds(client: WebClient, emu: Emulator) -> None:
    emu.set_rate_limits(per_channel_per_second=1.0, channel_burst=1)
    client.retry_handlers.append(RateLimitErrorRetryHandler(max_retry_count=2))
    client.chat_postMessage(channel="C0INCIDENTS", text="first")

    second = client.chat_postMessage(channel="C0INCIDENTS", text="second")

    assert second["ok"] is True
    assert [c.status for c in emu.calls_to("chat.postMessage")] == [200, 429, 200]
    assert [m.text for m in emu.messages("C0INCIDENTS")] == ["first", "second"]


def test_an_injected_500_is_retried_by_the_server_error_handler(client: WebClient, emu: Emulator) -> None:
    emu.inject_fault("pins.add", kind="500", times=1)
    ts = client.chat_postMessage(channel="C0INCIDENTS", text="card")["ts"]
    with pytest.raises(SlackApiError) as err:
        client.pins_add(channel="C0INCIDENTS", timestamp=ts)
    assert err.value.response.status_code == 500

    emu.inject_fault("pins.add", kind="500", times=1)
    client.retry_handlers.append(ServerErrorRetryHandler(max_retry_count=1))
    client.pins_add(channel="C0INCIDENTS", timestamp=ts)
    assert emu.state.channels["C0INCIDENTS"].pins == [ts]


def test_injected_errors_and_429s_are_consumed_one_call_at_a_time(client: WebClient, emu: Emulator) -> None:
    emu.inject_fault("conversations.create", kind="error:restricted_action", times=2)
    emu.inject_fault("conversations.create", kind="429")
    errors = []
    for _ in range(3):
        with pytest.raises(SlackApiError) as err:
            client.conversations_create(name="inc-x")
        errors.append((err.value.response.status_code, err.value.response["error"]))

    assert errors == [(200, "restricted_action"), (200, "restricted_action"), (429, "ratelimited")]
    assert client.conversations_create(name="inc-x")["ok"] is True


def test_a_timed_out_call_still_takes_effect_like_on_real_slack(emu: Emulator) -> None:
    emu.inject_fault("conversations.create", kind="timeout", delay_s=0.5)
    impatient = WebClient(token=emu.token, base_url=emu.api_url, timeout=0.1)
    impatient.retry_handlers.clear()
    with pytest.raises((TimeoutError, socket.timeout, OSError)):
        impatient.conversations_create(name="inc-slow")

    emu.wait_for(lambda: emu.channel_by_name("inc-slow"), timeout=3)
    with pytest.raises(SlackApiError) as err:
        WebClient(token=emu.token, base_url=emu.api_url).conversations_create(name="inc-slow")
    assert err.value.response["error"] == "name_taken"


def test_wait_for_explains_what_it_waited_for(emu: Emulator) -> None:
    with pytest.raises(TimeoutError, match="incident channel"):
        emu.wait_for(lambda: emu.channel_by_name("inc-never"), timeout=0.1, message="incident channel")
