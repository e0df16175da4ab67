"""conversations.*: channels, their members, topic, purpose and history."""

from __future__ import annotations

import re
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
from bot.emulator.state import Channel, Workspace

_NAME_CHARS = re.compile(r"^[a-z0-9_-]+$")
MAX_NAME = 80
MAX_TOPIC = 250


def create(ws: Workspace, args: Args) -> dict[str, Any]:
    """Slack rules: a name is required (``invalid_name_required``), at most 80 chars
    (``invalid_name_maxlength``), only lowercase a-z, 0-9, ``-`` and ``_`` (``invalid_name_specials``),
    not only punctuation (``invalid_name_punctuation``), and unique among all channels *including
    archived ones* (``name_taken``). The creating bot becomes the channel's first member."""
    name = args.text("name")
    if not name:
        raise ApiError("invalid_name_required")
    if len(name) > MAX_NAME:
        raise ApiError("invalid_name_maxlength")
    if not _NAME_CHARS.match(name):
        raise ApiError("invalid_name_specials")
    if not re.search(r"[a-z0-9]", name):
        raise ApiError("invalid_name_punctuation")
    with ws.lock:
        if ws.channel_by_name(name) is not None:
            raise ApiError("name_taken")
        channel = Channel(ws.new_id("C"), name, is_private=args.flag("is_private"), members=[ws.bot_user_id])
        ws.channels[channel.id] = channel
    return {"channel": channel.to_api()}


def invite(ws: Workspace, args: Args) -> dict[str, Any]:
    """Slack rules: ``users`` is a comma-separated list of up to 100 ids; the bot must be in the
    channel (``not_in_channel``); inviting yourself is ``cant_invite_self``; an unknown id is
    ``user_not_found``; if everyone is already a member the call fails with ``already_in_channel``."""
    with ws.lock:
        channel = writable_channel(ws, args.require("channel", "channel_not_found"))
        users = [u.strip() for u in args.require("users", "no_user").split(",") if u.strip()]
        if len(users) > 100:
            raise ApiError("too_many_users")
        for user in users:
            if user == ws.bot_user_id:
                raise ApiError("cant_invite_self")
            if user not in ws.users:
                raise ApiError("user_not_found")
        new = [u for u in users if u not in channel.members]
        if not new:
            raise ApiError("already_in_channel")
        channel.members.extend(dict.fromkeys(new))
    return {"channel": channel.to_api()}


def _set_text(ws: Workspace, args: Args, field: str) -> dict[str, Any]:
    with ws.lock:
        channel = writable_channel(ws, args.require("channel", "channel_not_found"))
        value = args.text(field)
        if len(value) > MAX_TOPIC:
            raise ApiError("too_long")
        setattr(channel, field, value)
    return {"channel": channel.to_api(), field: value}


def set_topic(ws: Workspace, args: Args) -> dict[str, Any]:
    """Slack rule: plain text, at most 250 characters (``too_long``); bot must be a member."""
    return _set_text(ws, args, "topic")


def set_purpose(ws: Workspace, args: Args) -> dict[str, Any]:
    """Slack rule: plain text, at most 250 characters (``too_long``); bot must be a member."""
    return _set_text(ws, args, "purpose")


def archive(ws: Workspace, args: Args) -> dict[str, Any]:
    """Slack rules: ``already_archived`` for an archived channel, ``cant_archive_general`` for #general."""
    with ws.lock:
        channel = find_channel(ws, args.require("channel", "channel_not_found"))
        if channel.archived:
            raise ApiError("already_archived")
        if channel.name == "general":
            raise ApiError("cant_archive_general")
        if ws.bot_user_id not in channel.members:
            raise ApiError("not_in_channel")
        channel.archived = True
    return {}


def info(ws: Workspace, args: Args) -> dict[str, Any]:
    """Slack rule: any visible channel, member or not; unknown ids are ``channel_not_found``."""
    channel = find_channel(ws, args.require("channel", "channel_not_found"))
    return {"channel": channel.to_api()}


def members(ws: Workspace, args: Args) -> dict[str, Any]:
    channel = find_channel(ws, args.require("channel", "channel_not_found"))
    return {"members": list(channel.members), "response_metadata": {"next_cursor": ""}}


def list_(ws: Workspace, args: Args) -> dict[str, Any]:
    """Public channels by default; ``types`` may add ``private_channel`` (only those the bot is in)."""
    types = set(args.text("types", "public_channel").split(","))
    exclude_archived = args.flag("exclude_archived")
    with ws.lock:
        out = [
            c.to_api()
            for c in ws.channels.values()
            if (("private_channel" in types and c.is_private and ws.bot_user_id in c.members)
                or ("public_channel" in types and not c.is_private))
            and not (exclude_archived and c.archived)
        ]
    return {"channels": out, "response_metadata": {"next_cursor": ""}}


def _bounded(ts: str, oldest: str | None, latest: str | None, inclusive: bool) -> bool:
    t = float(ts)
    if oldest is not None and (t < float(oldest) or (t == float(oldest) and not inclusive)):
        return False
    if latest is not None and (t > float(latest) or (t == float(latest) and not inclusive)):
        return False
    return True


def history(ws: Workspace, args: Args) -> dict[str, Any]:
    """Slack rules: newest first; ``limit`` (default 100, max 999); ``oldest``/``latest`` bounds are
    exclusive unless ``inclusive``; thread replies are not listed; the bot must be a member; message
    metadata only with ``include_all_metadata``."""
    with ws.lock:
        channel = find_channel(ws, args.require("channel", "channel_not_found"))
        if ws.bot_user_id not in channel.members:
            raise ApiError("not_in_channel")
        limit = max(1, min(args.number("limit", 100), 999))
        oldest, latest, inclusive = args.get("oldest"), args.get("latest"), args.flag("inclusive")
        found = [
            m for m in reversed(channel.messages)
            if m.ephemeral_to is None and (m.thread_ts is None or m.thread_ts == m.ts)
            and _bounded(m.ts, oldest, latest, inclusive)
        ]
    page = found[:limit]
    with_metadata = args.flag("include_all_metadata")
    return {"messages": [m.to_api(with_metadata=with_metadata) for m in page], "has_more": len(found) > limit,
            "response_metadata": {"next_cursor": ""}}


def replies(ws: Workspace, args: Args) -> dict[str, Any]:
    """The thread parent followed by its replies, oldest first; metadata with ``include_all_metadata``."""
    with ws.lock:
        channel = find_channel(ws, args.require("channel", "channel_not_found"))
        ts = args.require("ts", "thread_not_found")
        thread = [m for m in channel.messages if m.ephemeral_to is None and (m.ts == ts or m.thread_ts == ts)]
        if not thread:
            raise ApiError("thread_not_found")
    with_metadata = args.flag("include_all_metadata")
    return {"messages": [m.to_api(with_metadata=with_metadata) for m in thread], "has_more": False}


# This module's Web API methods, by Slack method name (read by the emulator's API).
METHODS: Mapping[str, Handler] = MappingProxyType({
    "conversations.create": create,
    "conversations.invite": invite,
    "conversations.setTopic": set_topic,
    "conversations.setPurpose": set_purpose,
    "conversations.archive": archive,
    "conversations.info": info,
    "conversations.members": members,
    "conversations.list": list_,
    "conversations.history": history,
    "conversations.replies": replies,
})
