"""Shared plumbing for Web API method handlers: the handler type, argument access and channel checks."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from bot.emulator.state import Channel, Workspace


class ApiError(Exception):
    """An API-level failure: Slack reports it as HTTP 200 ``{"ok": false, "error": code, ...}``."""

    def __init__(self, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.extra = extra


class Args:
    """Method arguments merged from query string, form and JSON; form values arrive as strings."""

    def __init__(self, raw: dict[str, Any]) -> None:
        self.raw = raw

    def get(self, name: str, default: Any = None) -> Any:
        value = self.raw.get(name)
        return default if value is None or value == "" else value

    def text(self, name: str, default: str = "") -> str:
        value = self.get(name)
        return default if value is None else str(value)

    def require(self, name: str, error: str | None = None) -> str:
        value = self.get(name)
        if value is None:
            raise ApiError(error or "invalid_arguments", detail=f"missing required argument {name}")
        return str(value)

    def flag(self, name: str) -> bool:
        value = self.get(name)
        if isinstance(value, bool):
            return value
        return str(value).lower() in ("1", "true", "yes") if value is not None else False

    def number(self, name: str, default: int) -> int:
        value = self.get(name)
        try:
            return int(value) if value is not None else default
        except (TypeError, ValueError) as exc:
            raise ApiError("invalid_arguments", detail=f"{name} must be an integer") from exc

    def structured(self, name: str) -> Any:
        """Structured args (blocks, view) come as JSON text in forms and as objects in JSON bodies."""
        value = self.get(name)
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError as exc:
                raise ApiError("invalid_arguments", detail=f"{name} is not valid JSON") from exc
        return value


Handler = Callable[[Workspace, Args], dict[str, Any]]


def find_channel(ws: Workspace, ref: str) -> Channel:
    """Resolve a channel id, or a ``#name``/``name`` (chat.postMessage accepts names too)."""
    channel = ws.channels.get(ref) or ws.channel_by_name(ref)
    if channel is None:
        raise ApiError("channel_not_found")
    # A private channel the bot is not in is invisible to it: Slack says channel_not_found.
    if channel.is_private and ws.bot_user_id not in channel.members:
        raise ApiError("channel_not_found")
    return channel


def writable_channel(ws: Workspace, ref: str) -> Channel:
    """A channel the bot can act in: it exists, is not archived, and the bot is a member."""
    channel = find_channel(ws, ref)
    if channel.archived:
        raise ApiError("is_archived")
    if ws.bot_user_id not in channel.members:
        raise ApiError("not_in_channel")
    return channel
