"""Web API method handlers; importing this package fills ``METHODS``."""

from __future__ import annotations

from bot.emulator.methods import chat, conversations, directory, im, items, views
from bot.emulator.methods.registry import METHODS, ApiError, Args

__all__ = ["METHODS", "ApiError", "Args", "chat", "conversations", "directory", "im", "items", "views"]
