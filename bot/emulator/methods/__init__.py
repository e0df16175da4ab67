"""Web API method handlers: ``METHODS`` is the table of every module's methods, by Slack method name.

The table is built here from each module's own read-only table, so it is complete once this
package is imported and nothing can add to it later.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from bot.emulator.methods import chat, conversations, directory, im, items, views
from bot.emulator.methods.registry import ApiError, Args, Handler

METHODS: Mapping[str, Handler] = MappingProxyType({
    **chat.METHODS, **conversations.METHODS, **directory.METHODS, **im.METHODS, **items.METHODS, **views.METHODS,
})

__all__ = ["METHODS", "ApiError", "Args", "Handler", "chat", "conversations", "directory", "im", "items", "views"]
