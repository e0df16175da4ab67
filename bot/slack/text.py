"""Untrusted text made safe for Slack mrkdwn, and cut to Block Kit's limits.

Slack reads ``<!channel>``, ``<@U123>`` and ``<http://x|y>`` as control sequences; escaping ``&``,
``<`` and ``>`` (Slack's own rule) turns an alert annotation that contains them into plain text
that pings nobody.
"""

from __future__ import annotations

import re

from bot import redact
from bot.said import Said

SECTION_TEXT_LIMIT = 3000
PLAIN_TEXT_LIMIT = 150  # button labels, headers
MAX_BLOCKS = 50


def escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def cut(text: str, limit: int) -> str:
    """``text`` within ``limit`` characters, ending in "…" when it was longer.

    The gateway redacts every Slack call with the process's own redactor (its site patterns, the
    rules it disabled, its known secrets by any fragment), so this cut must not leave half of a
    secret, which no pattern would recognise: it ends before the word it would split. Text with
    no space to end at is one long token; the default credential rules go over it first.
    """
    if len(text) <= limit:
        return text
    head = text[: max(0, limit - 1)]
    if not text[len(head)].isspace():
        end = max(head.rfind(" "), head.rfind("\n"), head.rfind("\t"))
        if end > 0:
            head = head[:end]
        else:
            text = redact.DEFAULT.redact_credentials(text)
            if len(text) <= limit:
                return text
            head = text[: max(0, limit - 1)]
    return head.rstrip() + "…"


def safe(text: str | None, limit: int = 500) -> str:
    """Escape then cut: the usual treatment for a value that came from an alert or a trace."""
    return escape(cut(text or "", limit))


def code(text: str, limit: int = 2900) -> str:
    body = cut(text, limit).replace("```", "ˋˋˋ")
    return f"```{escape(body)}```"


_ESCAPED_REF = re.compile(r"&lt;([@#][UWC][A-Z0-9]+)&gt;")


def mrkdwn(line: Said | str) -> str:
    """A line for Slack: each person as a mention (``<@U…>``), the words as they are (the caller
    escapes them with `escape_keep_mentions`, as for any line)."""
    return line.render(lambda user: f"<@{user}>") if isinstance(line, Said) else line


def escape_keep_mentions(text: str) -> str:
    """Escape everything but user and channel references (``<@U…>``, ``<#C…>``) that warroom
    writes into timeline text; ``<!channel>``, ``<!here>`` and links stay inert."""
    return _ESCAPED_REF.sub(r"<\1>", escape(text))


# `<title>` in help and usage text is a placeholder to fill in. Slack would read it as a control
# sequence and drop it, so it goes out escaped; mentions (`<@U…>`), `<!here>` and links
# (`<https://…|x>`) do not match (they start with @, # or ! or hold a colon).
_PLACEHOLDER = re.compile(r"<([a-z][a-z0-9_-]*(?: [a-z0-9_-]+)*)>")


def escape_placeholders(text: str) -> str:
    return _PLACEHOLDER.sub(r"&lt;\1&gt;", text)
