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
    # Credentials out before the cut: a token cut in half is no longer recognisable as one. The
    # default rules here; the gateway then applies the process's own redactor to the whole call
    # (its site patterns, and its known secrets by any fragment of FRAGMENT_MIN characters).
    text = redact.DEFAULT.redact_credentials(text)
    return text if len(text) <= limit else text[: max(0, limit - 1)].rstrip() + "…"


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
