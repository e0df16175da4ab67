"""People by name, not by Slack user id, wherever warroom writes for humans (pages, postmortem).

The domain only knows a `Names` function (user id → name, or None when unknown); the Slack side
provides one backed by a cached ``users.info`` (`bot.slack.directory`). Without one, or for an id
it cannot name, the id is shown as it is, so a page never fails because Slack is away.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from bot.said import Said

Names = Callable[[str], "str | None"]

USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")
_MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^<>]*)?>")
# Slack tokens in text (<@U1>, <#C1|name>, <https://x|label>, <!here>) read as words.
_SLACK_TOKEN = re.compile(r"<([@#!][^<>|\s]*|https?://[^<>|\s]+)(?:\|([^<>]*))?>")


def person(actor: str | None, names: Names | None) -> str | None:
    """A timeline actor or a column holding a user id, as a name; other actors ("warroom") as they are."""
    if not actor or names is None or not USER_ID.match(actor):
        return actor
    return names(actor) or actor


def named_mentions(text: str, names: Names | None) -> str:
    """``<@U0PRIYA>`` in Slack text as ``<@U0PRIYA|Priya>``: Slack's own labelled form, which the
    plain-text conversion (`bot.postmortem.assemble.plain_slack_text`) shows as the label."""
    if names is None or "<@" not in text:
        return text

    def one(match: re.Match[str]) -> str:
        name = names(match.group(1))
        return f"<@{match.group(1)}|@{name}>" if name else match.group(0)

    return _MENTION.sub(one, text)


def plain_slack_text(text: str) -> str:
    """Slack's tokens in text as words: ``<@U1|@Priya>`` → ``@Priya``, ``<#C1|inc>`` → ``#inc``."""
    def one(match: re.Match[str]) -> str:
        target, label = match.group(1), match.group(2)
        if label:
            return ("#" + label) if target.startswith("#") else label
        if target.startswith("!subteam^"):
            return "@" + target[len("!subteam^"):]
        return "@" + target[1:] if target.startswith("!") else target

    return _SLACK_TOKEN.sub(one, text)


def display(line: Said, names: Names | None) -> str:
    """A line as people read it off Slack (pages, the API's text, the postmortem): each person as
    ``@`` and their name (their id when it cannot be named). The words may hold mentions a person
    typed in Slack, or be a row stored before lines had parts (``<@U…>``): those read the same."""
    return line.render(lambda user: "@" + (person(user, names) or user),
                       lambda text: plain_slack_text(named_mentions(text, names)))
