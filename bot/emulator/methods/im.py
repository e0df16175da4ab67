"""conversations.open: the bot's direct-message channel with a person."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from bot.emulator.methods.registry import ApiError, Args, Handler
from bot.emulator.state import Channel, Workspace


def open_im(ws: Workspace, args: Args) -> dict[str, Any]:
    """Slack rules: ``users`` names one user (a multi-person DM is out of scope here:
    ``not_supported``); an unknown user is ``user_not_found``; opening twice returns the same
    ``D…`` channel, whose members are the bot and the user."""
    users = [u for u in args.require("users", "users_list_not_supplied").split(",") if u]
    if len(users) != 1:
        raise ApiError("not_supported", detail="only one-to-one DMs are emulated")
    user = users[0]
    with ws.lock:
        if user not in ws.users:
            raise ApiError("user_not_found")
        channel_id = f"D{user.lstrip('UW')}"
        channel = ws.channels.get(channel_id)
        if channel is None:
            channel = Channel(channel_id, user, True, "", "", [ws.bot_user_id, user])
            ws.channels[channel_id] = channel
        return {"channel": {"id": channel.id, "is_im": True, "user": user}}


# This module's Web API methods, by Slack method name (read by the emulator's API).
METHODS: Mapping[str, Handler] = MappingProxyType({
    "conversations.open": open_im,
})
