"""One `/incident` call, parsed: who, where, which subcommand, which incident, the rest."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_ID = re.compile(r"^#?(\d+)$")
_MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")


@dataclass
class Invocation:
    user: str
    channel: str | None
    sub: str
    args: str
    trigger_id: str | None = None
    explicit_incident: int | None = None
    bad_incident: str | None = None  # what was typed where an incident number belongs, when it is not one
    extra: dict = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str, *, user: str, channel: str | None, trigger_id: str | None = None) -> Invocation:
        sub, _, rest = (text or "").strip().partition(" ")
        rest = rest.strip()
        first, _, after = rest.partition(" ")
        explicit, bad = None, None
        sub = sub.lower()
        if (match := _ID.match(first)) and (first.startswith("#") or sub in NUMBERED_SUBS):
            # Any length: a number no incident has is "no incident #N", never this channel's incident.
            explicit, rest = int(match.group(1)), after.strip()
        elif first and ((sub in NUMBERED_SUBS and first.startswith("#")) or sub in ONLY_NUMBER_SUBS):
            bad = first
        return cls(user=user, channel=channel, sub=sub, args=unescape(rest), trigger_id=trigger_id,
                   explicit_incident=explicit, bad_incident=bad)


# Subcommands where a bare number names the incident (the others take numbers as arguments).
NUMBERED_SUBS = {"ack", "acknowledge", "resolve", "reopen", "close", "timeline", "postmortem", "followups", "actions"}
# Of those, the ones that take nothing else: any word after them must be an incident number.
ONLY_NUMBER_SUBS = {"ack", "acknowledge", "close", "timeline", "postmortem", "followups", "actions"}


def mentions(text: str) -> list[str]:
    return _MENTION.findall(text)


def strip_mentions(text: str) -> str:
    return _MENTION.sub("", text).strip()


def unescape(text: str) -> str:
    """Slack sends ``&``, ``<`` and ``>`` in command text as entities; store what was typed."""
    protected = _MENTION.sub(lambda m: "\x00" + m.group(1) + "\x01", text)
    plain = protected.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return re.sub("\x00([UW][A-Z0-9]+)\x01", r"<@\1>", plain)
