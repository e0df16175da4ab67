"""Things attached to messages and channels: pins, reactions, bookmarks."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from bot.emulator.methods.registry import (
    ApiError,
    Args,
    Handler,
    find_channel,
    writable_channel,
)
from bot.emulator.state import Bookmark, Workspace


def pins_add(ws: Workspace, args: Args) -> dict[str, Any]:
    """Slack rules: ``message_not_found`` for an unknown ``timestamp``, ``already_pinned`` the second time."""
    with ws.lock:
        channel = writable_channel(ws, args.require("channel", "channel_not_found"))
        ts = args.require("timestamp", "no_item_specified")
        if channel.message(ts) is None:
            raise ApiError("message_not_found")
        if ts in channel.pins:
            raise ApiError("already_pinned")
        channel.pins.append(ts)
    return {}


def reactions_add(ws: Workspace, args: Args) -> dict[str, Any]:
    """Slack rules: ``name`` without colons (``invalid_name``), ``message_not_found``, and
    ``already_reacted`` when the bot already left that reaction."""
    with ws.lock:
        channel = find_channel(ws, args.require("channel", "channel_not_found"))
        name = args.require("name", "invalid_name")
        if ":" in name:
            raise ApiError("invalid_name")
        msg = channel.message(args.require("timestamp", "no_item_specified"))
        if msg is None:
            raise ApiError("message_not_found")
        users = msg.reactions.setdefault(name, [])
        if ws.bot_user_id in users:
            raise ApiError("already_reacted")
        users.append(ws.bot_user_id)
    return {}


def reactions_get(ws: Workspace, args: Args) -> dict[str, Any]:
    with ws.lock:
        channel = find_channel(ws, args.require("channel", "channel_not_found"))
        msg = channel.message(args.require("timestamp", "no_item_specified"))
        if msg is None:
            raise ApiError("message_not_found")
    return {"type": "message", "channel": channel.id, "message": msg.to_api()}


def bookmarks_add(ws: Workspace, args: Args) -> dict[str, Any]:
    """Slack rules: ``type`` is ``link``; ``link`` must be an http(s) URL (``invalid_link``);
    ``channel_not_found`` for unknown ``channel_id``."""
    with ws.lock:
        channel = find_channel(ws, args.require("channel_id", "channel_not_found"))
        if channel.archived:
            raise ApiError("is_archived")
        kind = args.text("type", "link")
        link = args.text("link")
        if kind != "link" or not link.startswith(("http://", "https://")):
            raise ApiError("invalid_link")
        bookmark = Bookmark(ws.new_id("Bk"), channel.id, args.require("title", "invalid_title"), link,
                            kind, args.get("emoji"))
        channel.bookmarks.append(bookmark)
    return {"bookmark": {"id": bookmark.id, "channel_id": channel.id, "title": bookmark.title,
                         "link": link, "type": kind, "emoji": bookmark.emoji}}


# This module's Web API methods, by Slack method name (read by the emulator's API).
METHODS: Mapping[str, Handler] = MappingProxyType({
    "pins.add": pins_add,
    "reactions.add": reactions_add,
    "reactions.get": reactions_get,
    "bookmarks.add": bookmarks_add,
})
