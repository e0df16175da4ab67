"""A local Slack: the Web API subset warroom uses, served on loopback, plus a driver that sends
signed slash commands, clicks, modal submissions and events to the bot, and a page to watch it."""

from __future__ import annotations

from bot.emulator.driver import BotReply
from bot.emulator.server import DEFAULT_SIGNING_SECRET, Emulator, create_app, run
from bot.emulator.state import Call, Channel, Message, Response, View, Workspace

__all__ = ["DEFAULT_SIGNING_SECRET", "BotReply", "Call", "Channel", "Emulator", "Message", "Response", "View",
           "Workspace", "create_app", "run"]
