"""Outbox handlers that talk to Slack: the worker calls these with the row's typed effect.

Every post goes through `_post`: keyed by the outbox row, so a retried row (its earlier run's
answer lost, or its process killed after posting) finds its post in Slack instead of posting twice.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlmodel import col

from bot.effects import (
    ArchiveChannel,
    Handlers,
    OpenRoom,
    PostLine,
    PostMessage,
    PostmortemDue,
    PostNotice,
    PostReminder,
    PostReminderDigest,
)
from bot.incidents import service, timeline
from bot.said import Said
from bot.slack import blocks
from bot.slack.client import SlackCallError
from bot.slack.reminder_digest import Listed, digest_line
from bot.slack.room import Room
from bot.slack.text import escape_keep_mentions, mrkdwn, safe
from bot.slack.views import card_view
from bot.store.db import transaction
from bot.store.models import Incident, IncidentStep, TimelineEvent

log = logging.getLogger(__name__)


@contextmanager
def unless_archived() -> Iterator[None]:
    """A change to an archived incident channel (a merged incident's) is not needed any more:
    its card and topic stay as they were, and the rest of the effect (the announcement) goes on."""
    try:
        yield
    except SlackCallError as exc:
        if exc.error != "is_archived":
            raise


@dataclass
class SlackEffects:
    room: Room

    @property
    def gateway(self):  # noqa: ANN201
        return self.room.gateway

    def handlers(self) -> Handlers:
        """All but the card's (`bot.slack.card_sync`, which also keeps the topic) and the traces'
        (`bot.slack.late_traces`)."""
        handlers = Handlers()
        handlers.on(OpenRoom, lambda effect: self.room.open(effect.incident_id))
        handlers.on(PostLine, self.post_line)
        handlers.on(PostReminder, self.post_reminder)
        handlers.on(PostReminderDigest, self.post_reminder_digest)
        handlers.on(ArchiveChannel, self.archive)
        handlers.on(PostMessage, self.post_message)
        handlers.on(PostmortemDue, self.postmortem_nudge)
        handlers.on(PostNotice, self.post_notice)
        return handlers

    def _post(self, channel: str, text: str, blocks_: list[dict] | None = None, **extra: Any) -> dict[str, Any]:
        return self.room.post_for_effect(channel, text, blocks_, **extra)

    def _step_result(self, incident_id: int, name: str) -> dict[str, Any] | None:
        with transaction(self.room.engine) as session:
            step = session.execute(select(IncidentStep).where(
                col(IncidentStep.incident_id) == incident_id, col(IncidentStep.name) == name)).scalar_one_or_none()
            # A message step records its ts as soon as it is posted, before the step is done: from
            # then on it can be updated (a person may act while the rest of the step finishes).
            return dict(step.result) if step and (step.done_at or (step.result or {}).get("ts")) else None

    def refresh_card(self, incident_id: int, *, card_only: bool = False) -> None:
        """The card (in the room, or the thread's), then the announcement unless ``card_only``."""
        with transaction(self.room.engine) as session:
            view = card_view(session, service.get(session, incident_id), self.room.runbooks, self.room.budget)
        card = self._step_result(incident_id, "card")
        if card:  # before the card exists there is nothing to update: it is posted from current state
            with unless_archived():
                self.gateway.update(card["channel"], card["ts"], blocks.card_text(view), blocks.card(view))
        thread_card = self._step_result(incident_id, "thread_card")
        if thread_card:
            view.thread_only = self._step_result(incident_id, "promoted") is None
            self.gateway.update(thread_card["channel"], thread_card["ts"], blocks.card_text(view), blocks.card(view))
        announcement = None if card_only else self._step_result(incident_id, "announce")
        if announcement and announcement.get("ts"):
            self.gateway.update(announcement["channel"], announcement["ts"], blocks.card_text(view),
                                blocks.announcement(view))

    def _channel(self, incident_id: int) -> str | None:
        with transaction(self.room.engine) as session:
            return service.get(session, incident_id).channel_id

    def post_line(self, effect: PostLine) -> None:
        with transaction(self.room.engine) as session:
            event = session.get(TimelineEvent, effect.event_id)
            incident = service.get(session, effect.incident_id)
            channel, text = incident.channel_id, mrkdwn(Said.from_row(event.text, event.data)) if event else None
        thread = self._step_result(effect.incident_id, "thread_card") if not channel else None
        if text and (channel or thread):
            self._post(channel or thread["channel"], escape_keep_mentions(text), blocks.line(text),  # type: ignore[index]
                       thread_ts=None if channel else thread["ts"])  # type: ignore[index]

    def post_message(self, effect: PostMessage) -> None:
        channel = self._channel(effect.incident_id)
        if channel:
            self._post(channel, escape_keep_mentions(effect.text), effect.blocks or blocks.line(effect.text))

    def post_notice(self, effect: PostNotice) -> None:
        """A line for the incidents channel that belongs to no incident (a test notification)."""
        channel = self.room.settings.incidents_channel
        if channel:
            self._post(channel, escape_keep_mentions(effect.text), blocks.line(effect.text))
        else:
            log.info("no WARROOM_INCIDENTS_CHANNEL for the notice: %s", effect.text)

    def post_reminder(self, effect: PostReminder) -> None:
        with transaction(self.room.engine) as session:
            incident = service.get(session, effect.incident_id)
            channel, mentions = incident.channel_id, self._mentions(incident, effect.mention)
        text = f"⏰ {''.join(m + ' ' for m in mentions)}{effect.text}"
        target = channel or self.room.settings.incidents_channel
        if target:
            self._post(target, escape_keep_mentions(text), blocks.line(text))

    def post_reminder_digest(self, effect: PostReminderDigest) -> None:
        """One reminder for several incidents, in the incidents channel: everyone any of them
        would mention, once, then the list (`bot.slack.reminder_digest`)."""
        channel = self.room.settings.incidents_channel
        if not channel:  # the scheduler digests only with one set; it was unset since
            log.warning("no WARROOM_INCIDENTS_CHANNEL for the reminder digest of %d %s",
                        len(effect.incidents), effect.label)
            return
        ids = [item.incident_id for item in effect.incidents]
        with transaction(self.room.engine) as session:
            rows = {i.id: i for i in session.execute(select(Incident).where(col(Incident.id).in_(ids))).scalars()}
            mentions: dict[str, None] = {}  # in list order, each once
            for incident_id in ids:
                if incident_id in rows:
                    mentions.update(dict.fromkeys(self._mentions(rows[incident_id], effect.mention)))
            listed = {incident_id: Listed(number=incident_id, title=row.title, severity=row.severity,
                                          channel=row.channel_id) for incident_id, row in rows.items()
                      if incident_id is not None}
        text = digest_line(effect, listed, mentions)
        self._post(channel, escape_keep_mentions(text), blocks.line(text))

    def _mentions(self, incident: Incident, mention: str) -> list[str]:
        """Whom a reminder about ``incident`` pings: its commander, or its runbook's owners."""
        if mention == "commander":
            return [f"<@{incident.commander}>"] if incident.commander else []
        runbook = self.room.runbooks.get(incident.runbook_id) if mention == "owners" and incident.runbook_id else None
        return [self._mention(owner) for owner in runbook.owners] if runbook else []

    def _mention(self, owner: str) -> str:
        if owner.startswith("@"):
            return f"@{safe(owner[1:], 80)}"
        return f"<@{owner}>" if owner[:1] in "UW" else safe(owner, 80)

    def archive(self, effect: ArchiveChannel) -> None:
        channel = self._channel(effect.incident_id)
        if channel:
            self.gateway.call("conversations.archive", channel=channel)

    def postmortem_nudge(self, effect: PostmortemDue) -> None:
        channel = self._channel(effect.incident_id)
        if channel:
            text = ("The incident is resolved. Postmortem due in 48 h: "
                    "`/incident postmortem` drafts it from the timeline.")
            self._post(channel, text, blocks.line(text))

    def report_give_up(self, kind: str, incident_id: int | None, error: str) -> None:
        """A side effect failed for good: say so where people look, and on the timeline."""
        text = f"⚠️ warroom could not complete `{kind}`: {error}. Run `warroom incidents resume {incident_id}` to retry."
        if incident_id is not None:
            with transaction(self.room.engine) as session:
                incident = service.get(session, incident_id)
                timeline.record(session, incident, "effect_failed", text, actor="warroom")
        for channel in (self._channel(incident_id) if incident_id else None, self.room.settings.incidents_channel):
            if channel:
                try:
                    self.gateway.post(channel, text, blocks.line(text))
                    return
                except Exception:
                    log.warning("could not post the failure notice to %s", channel)
