"""The ``/incident`` subcommands of one Slack app, and the help generated from their definitions.

A definition (`command`) is an immutable value: its names, its handler and its line in
``/incident help``, written next to the handler. A `CommandTable` is built per app when the
listeners are registered, so two apps in one process (tests, a second workspace) never share or
overwrite each other's commands. The order of the help lines is `bot.slack.replies.HELP_LINES`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bot.slack.replies import HELP_FOOTER, HELP_LINES, HELP_TITLE
from bot.slack.text import escape_placeholders

if TYPE_CHECKING:
    from bot.slack.context import SlackContext
    from bot.slack.invocation import Invocation

Reply = str | dict[str, Any]
Handler = Callable[["SlackContext", "Invocation"], Reply]


@dataclass(frozen=True)
class Command:
    names: tuple[str, ...]  # the first is the one the help lists; the others are aliases
    run: Handler
    help: str | None = None  # its part of a line in `/incident help`; None: not listed

    @property
    def name(self) -> str:
        return self.names[0]


def command(*names: str, help: str | None = None) -> Callable[[Handler], Command]:
    """Define a subcommand (register it in an app's table with `CommandTable.add`)."""
    def define(fn: Handler) -> Command:
        return Command(names=names, run=fn, help=help)
    return define


class CommandTable:
    def __init__(self) -> None:
        self._by_name: dict[str, Command] = {}
        self._defined: list[Command] = []

    def add(self, *commands: Command) -> None:
        for cmd in commands:
            taken = [name for name in cmd.names if name in self._by_name]
            if taken:  # two definitions of one name: the second would silently win
                raise ValueError(f"/incident {taken[0]} is defined twice")
            self._by_name.update(dict.fromkeys(cmd.names, cmd))
            self._defined.append(cmd)

    def get(self, name: str) -> Command | None:
        return self._by_name.get(name)

    def names(self) -> list[str]:
        return list(self._by_name)

    def help(self) -> str:
        """``/incident help``: every listed command's help, in the lines of `HELP_LINES`; a
        command missing from those lines still shows, on a line of its own at the end."""
        listed = {cmd.name: cmd.help for cmd in self._defined if cmd.help}
        lines = [" · ".join(listed.pop(name) for name in line if name in listed) for line in HELP_LINES]
        lines += list(listed.values())
        body = "\n".join(f"• {line}" for line in lines if line)
        return escape_placeholders(f"{HELP_TITLE}\n{body}\n{HELP_FOOTER}")
