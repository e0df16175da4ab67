"""chat.*: posting, editing and deleting messages."""

from __future__ import annotations

import re
import secrets
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
from bot.emulator.state import Message, Workspace

MAX_BLOCKS = 50
_EVENT_TYPE = re.compile(r"^[a-zA-Z0-9_.]{1,255}$")


def parse_blocks(args: Args) -> list[dict[str, Any]] | None:
    """Validate ``blocks`` like Slack: a list of at most 50 objects with a ``type`` (else
    ``invalid_blocks`` / ``msg_blocks_too_long``). Slack gives every block without a ``block_id``
    a random one, which block_actions payloads later echo back; so do we."""
    blocks = args.structured("blocks")
    if blocks is None:
        return None
    if not isinstance(blocks, list) or not all(isinstance(b, dict) and b.get("type") for b in blocks):
        raise ApiError("invalid_blocks")
    if len(blocks) > MAX_BLOCKS:
        raise ApiError("msg_blocks_too_long")
    return [{**b, "block_id": b.get("block_id") or secrets.token_hex(3)} for b in blocks]


def parse_metadata(args: Args) -> dict[str, Any] | None:
    """Message metadata as Slack checks it: an object with a word-like ``event_type`` and an object
    ``event_payload`` (``invalid_metadata_format`` otherwise; JSON text in forms, as ``blocks``)."""
    metadata = args.structured("metadata")
    if metadata is None:
        return None
    if not isinstance(metadata, dict) or not isinstance(metadata.get("event_payload", {}), dict):
        raise ApiError("invalid_metadata_format")
    event_type = metadata.get("event_type")
    if not isinstance(event_type, str) or not _EVENT_TYPE.match(event_type):
        raise ApiError("invalid_metadata_format")
    return {"event_type": event_type, "event_payload": dict(metadata.get("event_payload") or {})}


def _message_response(channel_id: str, msg: Message) -> dict[str, Any]:
    return {"channel": channel_id, "ts": msg.ts, "message": msg.to_api()}


def post_message(ws: Workspace, args: Args) -> dict[str, Any]:
    """Slack rules: ``channel_not_found`` for unknown channels, ``not_in_channel`` unless the bot
    is a member (we grant no ``chat:write.public``), ``is_archived``; ``text`` or ``blocks`` is required
    (``no_text``); the answer carries a unique, increasing ``ts`` like ``1700000000.000100``.
    ``metadata`` is kept with the message; conversations.history/replies return it when asked
    with ``include_all_metadata``."""
    blocks = parse_blocks(args)
    metadata = parse_metadata(args)
    text = args.text("text")
    if not text and not blocks:
        raise ApiError("no_text")
    with ws.lock:
        channel = writable_channel(ws, args.require("channel", "channel_not_found"))
        msg = Message(ws.next_ts(), channel.id, ws.bot_user_id, text, blocks, args.get("thread_ts"), metadata=metadata)
        channel.messages.append(msg)
    return _message_response(channel.id, msg)


def update(ws: Workspace, args: Args) -> dict[str, Any]:
    """Slack rules: ``message_not_found`` for an unknown ts; only the bot's own messages
    (``cant_update_message``); sending ``text`` without ``blocks`` DROPS the old blocks."""
    blocks = parse_blocks(args)
    with ws.lock:
        channel = find_channel(ws, args.require("channel", "channel_not_found"))
        msg = channel.message(args.require("ts", "message_not_found"))
        if msg is None:
            raise ApiError("message_not_found")
        if msg.user != ws.bot_user_id:
            raise ApiError("cant_update_message")
        if args.get("text") is not None:
            msg.text = args.text("text")
        msg.blocks = blocks
        msg.edited = True
    return {**_message_response(channel.id, msg), "text": msg.text}


def post_ephemeral(ws: Workspace, args: Args) -> dict[str, Any]:
    """Slack rules: only ``user`` sees it; ``user_not_in_channel`` when they are not a member."""
    blocks = parse_blocks(args)
    text = args.text("text")
    if not text and not blocks:
        raise ApiError("no_text")
    with ws.lock:
        channel = writable_channel(ws, args.require("channel", "channel_not_found"))
        user = args.require("user", "user_not_found")
        if user not in ws.users:
            raise ApiError("user_not_found")
        if user not in channel.members:
            raise ApiError("user_not_in_channel")
        msg = Message(ws.next_ts(), channel.id, ws.bot_user_id, text, blocks, args.get("thread_ts"), ephemeral_to=user)
        channel.messages.append(msg)
    return {"message_ts": msg.ts}


def delete(ws: Workspace, args: Args) -> dict[str, Any]:
    with ws.lock:
        channel = find_channel(ws, args.require("channel", "channel_not_found"))
        msg = channel.message(args.require("ts", "message_not_found"))
        if msg is None:
            raise ApiError("message_not_found")
        if msg.user != ws.bot_user_id:
            raise ApiError("cant_delete_message")
        channel.messages.remove(msg)
    return {"channel": channel.id, "ts": msg.ts}


# This module's Web API methods, by Slack method name (read by the emulator's API).
METHODS: Mapping[str, Handler] = MappingProxyType({
    "chat.postMessage": post_message,
    "chat.update": update,
    "chat.postEphemeral": post_ephemeral,
    "chat.delete": delete,
})
