from __future__ import annotations

import ast
import socket
from pathlib import Path

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler, ServerErrorRetryHandler

from bot.emulator import Emulator
from bot.emulator.limits import METHOD_TIERS
from bot.emulator.methods import METHODS

BOT = Path(__file__).resolve().parents[2] / "bot"


def slack_methods_warroom_calls() -> set[str]:
    """Web API methods named in warroom's own code (not the emulator's): the gateway's
    ``.call("chat.update", …)``, ``client.api_call("…")`` and slack-sdk's ``client.views_open(…)``."""
    found: set[str] = set()
    for path in BOT.rglob("*.py"):
        if BOT / "emulator" in path.parents:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            name, receiver = node.func.attr, node.func.value
            if name in ("call", "api_call") and node.args and isinstance(node.args[0], ast.Constant) \
                    and isinstance(node.args[0].value, str) and "." in node.args[0].value:
                found.add(node.args[0].value)
            elif isinstance(receiver, ast.Name) and receiver.id == "client" and hasattr(WebClient, name) \
                    and "_" in name and name != "api_call":
                found.add(name.replace("_", "."))  # views_open -> views.open
    return found


def test_every_method_warroom_calls_is_served_and_has_slacks_tier() -> None:
    called = slack_methods_warroom_calls()
    assert {"conversations.create", "chat.postMessage", "usergroups.list", "views.open"} <= called  # the scan sees them

    assert sorted(called - set(METHODS)) == [], "warroom calls methods the emulator does not serve"
    assert sorted(set(METHODS) - set(METHOD_TIERS)) == [], "served methods without Slack's rate-limit tier"
    assert set(METHOD_TIERS.values()) <= {"T1", "T2", "T3", "T4", "special"}
    assert METHOD_TIERS["usergroups.list"] == "T2"


def test_an_over_budget_call_gets_429_with_retry_after_and_ratelimited(client: WebClient, emu: Emulator) -> None:
    emu.set_rate_limits(tier_per_minute={"T2": 1})
    assert client.usergroups_list()["ok"] is True
    with pytest.raises(SlackApiError) as err:
        client.usergroups_list()

    response = err.value.response
    assert response.status_code == 429
    assert int(response.headers["Retry-After"][0]) >= 1
    assert response.data == {"ok": False, "error": "ratelimited"}
    assert client.usergroups_users_list(usergroup="S0MLONCALL")["ok"] is True  # same tier, its own budget


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


def test_reset_keeps_the_limits_an_emulator_was_started_with_at_slacks_budgets() -> None:
    with Emulator(rate_limits=True) as limited:
        limited.set_rate_limits(channel_burst=1000)
        limited.reset()
        client = WebClient(token=limited.token, base_url=limited.api_url)
        statuses = []
        for i in range(10):
            try:
                statuses.append(client.chat_postMessage(channel="C0INCIDENTS", text=str(i)).status_code)
            except SlackApiError as exc:
                statuses.append(exc.response.status_code)
    assert 429 in statuses
