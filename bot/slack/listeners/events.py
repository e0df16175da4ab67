"""Events API: 📌 on a message in an incident channel adds it to the timeline, once.

Slack retries an event it thinks we missed and Bolt does not dedupe in HTTP mode: every
``event_id`` is recorded (`bot.slack.events_seen`), and a retry, or the same event at a second
warroom process, finds it there and does nothing.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone

from slack_bolt import App

from bot.incidents import operations
from bot.slack.context import SlackContext
from bot.slack.events_seen import already_handled, mark_handled

log = logging.getLogger(__name__)
PIN = "pushpin"


def register(app: App, ctx: SlackContext) -> None:
    @app.event("reaction_added")
    def reaction_added(body, event) -> None:  # noqa: ANN001
        if event.get("reaction") != PIN or already_handled(ctx.engine, body.get("event_id")):
            return
        item = event.get("item") or {}
        channel, ts = item.get("channel"), item.get("ts")
        incident_id = ctx.incident_for_channel(channel)
        if incident_id is None or not channel or not ts:
            return
        message = _fetch_message(ctx, channel, ts)
        author = message.get("user") or message.get("bot_id") or event.get("item_user")
        text = message.get("text") or "(message without text)"
        at = datetime.fromtimestamp(float(ts), tz=timezone.utc)
        pinner = event.get("user")
        if operations.pin(ctx.engine, incident_id, text=text, at=at, channel=channel, ts=ts, pinner=pinner,
                          author=author):
            # Tell the channel it worked; already_reacted (a retry) counts as success.
            ctx.gateway.call("reactions.add", channel=channel, timestamp=ts, name="white_check_mark")
        mark_handled(ctx.engine, body.get("event_id"))

    @app.event("reaction_removed")
    def reaction_removed(body, event) -> None:  # noqa: ANN001
        if event.get("reaction") != PIN or already_handled(ctx.engine, body.get("event_id")):
            return
        item = event.get("item") or {}
        operations.unpin(ctx.engine, channel=item.get("channel"), ts=item.get("ts"))
        mark_handled(ctx.engine, body.get("event_id"))

    @app.event("member_joined_channel")
    def member_joined(body, event) -> None:  # noqa: ANN001
        mark_handled(ctx.engine, body.get("event_id"))  # nothing to do yet; recorded so retries stay no-ops


def _fetch_message(ctx: SlackContext, channel: str, ts: str) -> dict:
    history = ctx.gateway.call("conversations.history", channel=channel, latest=ts, oldest=ts, inclusive=True, limit=1)
    messages = history.get("messages") or []
    if messages and messages[0].get("ts") == ts:
        return messages[0]
    # A reply in a thread is not in the channel history.
    replies = ctx.gateway.call("conversations.replies", channel=channel, ts=ts, limit=1)
    for message in replies.get("messages") or []:
        if message.get("ts") == ts:
            return message
    return {}
