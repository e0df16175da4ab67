from __future__ import annotations

import yaml

from bot.emulator.methods import METHODS
from bot.slack.manifest import BOT_SCOPES, EVENTS, METHOD_SCOPES, manifest


def test_manifest_is_yaml_with_the_bot_scopes_events_and_urls() -> None:
    doc = yaml.safe_load(manifest("https://warroom.example.com/", name="warroom-staging"))

    assert doc["display_information"]["name"] == "warroom-staging"
    assert doc["oauth_config"]["scopes"]["bot"] == list(BOT_SCOPES)
    assert doc["settings"]["event_subscriptions"]["bot_events"] == EVENTS
    assert doc["settings"]["event_subscriptions"]["request_url"] == "https://warroom.example.com/slack/events"
    assert doc["settings"]["interactivity"] == {"is_enabled": True,
                                                "request_url": "https://warroom.example.com/slack/events"}
    [command] = doc["features"]["slash_commands"]
    assert command["command"] == "/incident" and "ack" in command["usage_hint"]
    assert doc["features"]["bot_user"]["display_name"] == "warroom-staging"


def test_every_scope_has_a_reason_and_every_emulated_method_is_allowed_by_the_manifest() -> None:
    assert all(reason.strip() for reason in BOT_SCOPES.values())
    for method in METHODS:
        needed = METHOD_SCOPES[method]
        assert not needed or set(needed) & set(BOT_SCOPES), f"{method} needs {needed}"
