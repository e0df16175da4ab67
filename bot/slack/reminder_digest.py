"""A reminder digest's line: one mention, then the incidents it covers, most urgent first.

    ⏰ @ml-oncall 5 unacknowledged incidents: #12 Hallucination rate spike (SEV2, 14 min, #inc-12-…),
    #13 … and 3 more. Paging the owners again. Acknowledge each with `/incident ack` in its channel.

The list stops after `LISTED` incidents ("and N more"): the line is read on a phone during a
storm, and each listed channel link is one tap away.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from bot.effects import PostReminderDigest
from bot.slack.text import cut

LISTED = 10
TITLE_CHARS = 60


@dataclass(frozen=True)
class Listed:
    """What the line says of one incident, read when it is posted (the channel may be new since)."""

    number: int
    title: str
    severity: int
    channel: str | None


def digest_line(effect: PostReminderDigest, incidents: Mapping[int, Listed], mentions: Iterable[str]) -> str:
    """The digest's text, with Slack references (``<@U…>``, ``<#C…>``) for `escape_keep_mentions`."""
    items = [(incidents[i.incident_id], i.minutes) for i in effect.incidents if i.incident_id in incidents]
    listed = ", ".join(_item(incident, minutes) for incident, minutes in items[:LISTED])
    more = f" and {len(items) - LISTED} more" if len(items) > LISTED else ""
    mention = " ".join(mentions)
    return f"⏰ {mention + ' ' if mention else ''}{len(items)} {effect.label}: {listed}{more}. {effect.text}"


def _item(incident: Listed, minutes: int) -> str:
    where = f", <#{incident.channel}>" if incident.channel else ""
    return f"#{incident.number} {_plain(incident.title)} (SEV{incident.severity}, {minutes} min{where})"


def _plain(title: str) -> str:
    # A title comes from an alert: one that holds "<@U…>" must not ping anybody from this line,
    # which keeps the references warroom writes (escape_keep_mentions).
    return cut(title, TITLE_CHARS).replace("<", "‹").replace(">", "›")
