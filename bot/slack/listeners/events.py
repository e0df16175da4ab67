"""Events API: 📌 on a message in an incident channel adds it to the timeline, once.

Slack retries an event it thinks we missed (``X-Slack-Retry-Num``) and Bolt does not dedupe in
HTTP mode, so every ``event_id`` is recorded in the database first: a retry, or the same event
at a second warroom process, finds it there and does nothing.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone

from slack_bolt import App

from bot.clock import utcnow
from bot.db import insert_or_ignore, transaction
from bot.incidents import service, timeline
from bot.models import SlackEventSeen
from bot.slack.context import SlackContext

log = logging.getLogger(__name__)
PIN = "pushpin"


def already_handled(ctx: SlackContext, event_id: str | None) -> bool:
    if not event_id:
        return False
    with transaction(ctx.engine) as session:
        return session.get(SlackEventSeen, event_id) is not None


def mark_handled(ctx: SlackContext, event_id: str | None) -> None:
    """Recorded after the work, so a failed attempt is redone by Slack's retry; the work itself is
    idempotent (the pin has its own dedupe key), so two concurrent deliveries are harmless too."""
    if event_id:
        with transaction(ctx.engine) as session:
            insert_or_ignore(session, SlackEventSeen, {"event_id": event_id, "seen_at": utcnow()}, ["event_id"])


def register(app: App, ctx: SlackContext) -> None:
    @app.event("reaction_added")
    def reaction_added(body, event) -> None:  # noqa: ANN001
        if event.get("reaction") != PIN or already_handled(ctx, body.get("event_id")):
            return
        item = event.get("item") or {}
        channel, ts = item.get("channel"), item.get("ts")
        incident_id = ctx.incident_for_channel(channel)
        if incident_id is None or not ts:
            return
        message = _fetch_message(ctx, channel, ts)
        author = message.get("user") or message.get("bot_id") or event.get("item_user")
        text = message.get("text") or "(message without text)"
        at = datetime.fromtimestamp(float(ts), tz=timezone.utc)
        pinner = event.get("user")
        with transaction(ctx.engine) as session:
            incident = service.get(session, incident_id)
            # The 📌 is the pinner's decision that this matters: the event is theirs; the author is kept.
            recorded = timeline.record(session, incident, "pinned", text, actor=pinner or author, at=at,
                                       dedupe_key=f"pin:{channel}:{ts}",
                                       data={"channel": channel, "ts": ts, "pinned_by": pinner, "author": author}).id()
        if recorded is not None:
            # Tell the channel it worked; already_reacted (a retry) counts as success.
            ctx.gateway.call("reactions.add", channel=channel, timestamp=ts, name="white_check_mark")
        mark_handled(ctx, body.get("event_id"))

    @app.event("reaction_removed")
    def reaction_removed(body, event) -> None:  # noqa: ANN001
        if event.get("reaction") != PIN or already_handled(ctx, body.get("event_id")):
            return
        item = event.get("item") or {}
        with transaction(ctx.engine) as session:
            timeline.remove(session, f"pin:{item.get('channel')}:{item.get('ts')}")
        mark_handled(ctx, body.get("event_id"))

    @app.event("member_joined_channel")
    def member_joined(body, event) -> None:  # noqa: ANN001
        mark_handled(ctx, body.get("event_id"))  # nothing to do yet; recorded so retries stay no-ops


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
