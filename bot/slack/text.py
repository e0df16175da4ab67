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


# Text as Slack gets it, read as a person reads it: "&amp;", "&lt;" and "&gt;" are the characters
# they stand for, while Slack's own brackets (``<@U…>``, links) and a bare "&" stand apart as
# noncharacters, which nobody types (one in the text is dropped), so each goes back as it came.
_AS_READ = re.compile(r"&(amp|lt|gt);|[<>&\ufdd0-\ufdd2]")
_ESCAPED_CHAR = {"amp": "&", "lt": "<", "gt": ">"}
_APART = {"<": "\ufdd0", ">": "\ufdd1", "&": "\ufdd2"}
_AS_WRITTEN = re.compile("[&<>\ufdd0-\ufdd2]")
_WRITTEN = {"&": "&amp;", "<": "&lt;", ">": "&gt;", "\ufdd0": "<", "\ufdd1": ">", "\ufdd2": "&"}


def _read(match: re.Match[str]) -> str:
    return _ESCAPED_CHAR[match.group(1)] if match.group(1) else _APART.get(match.group(0), "")


def redact_as_read(text: str, redactor: redact.Redactor) -> str:
    """``redactor.redact_credentials`` over Slack text as people read it. The text is escaped
    already, so a secret or site pattern with "&", "<" or ">" in it would not match what is
    written ("&amp;"), yet Slack would show it whole."""
    if _AS_READ.search(text) is None:
        return redactor.redact_credentials(text)
    shown = _AS_READ.sub(_read, text)
    redacted = redactor.redact_credentials(shown)
    if redacted == shown:
        return text
    return _AS_WRITTEN.sub(lambda match: _WRITTEN[match.group(0)], redacted)


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
