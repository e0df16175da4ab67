"""The incident channel's topic: the card's headline facts, kept current.

``SEV2 · acknowledged · IC <@U…> · bundle v41 · 2 firing, 1 resolved · <title>``: what someone
joining the channel needs first. The title comes last so Slack's 250-character cut drops it first.
"""

from __future__ import annotations

from bot.slack.blocks import CardView
from bot.slack.text import cut

TOPIC_LIMIT = 250


def topic_text(view: CardView) -> str:
    parts = [f"SEV{view.severity}", view.status]
    if view.commander:
        parts.append(f"IC <@{view.commander}>")
    if view.bundle_line:
        parts.append(f"bundle {view.bundle_line.split(' ', 1)[0]}")
    parts.append(f"{view.firing} firing, {view.resolved} resolved")
    parts.append(view.title)
    return cut(" · ".join(parts), TOPIC_LIMIT)
