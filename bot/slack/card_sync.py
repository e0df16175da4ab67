"""Keep the card and the channel topic telling the truth after every change.

The ``slack.card`` effect re-renders the card (`SlackEffects.refresh_card`) and now also sets the
channel topic when its text changed (the last one set is kept in the room's ``topic`` step, so
an unchanged topic costs no Slack call: setTopic is a tier-2 method). An action run changing
state (a rollback finishing, its undo) re-renders the card too, since the live bundle and the
status come from the runs.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select
from sqlmodel import col

from bot.effects import ActionCard, Handlers, RefreshCard
from bot.incidents import service
from bot.slack.effects import SlackEffects, unless_archived
from bot.slack.topic import topic_text
from bot.slack.views import card_view
from bot.store.db import transaction
from bot.store.models import IncidentStep

FINISHED = ("succeeded", "failed", "unknown", "cancelled")


class CardSync:
    def __init__(self, effects: SlackEffects) -> None:
        self.effects = effects
        self.room = effects.room

    def handlers(self, action_card: Callable[[ActionCard], object] | None = None) -> Handlers:
        """``slack.card`` with the topic; ``action_card`` (the run card's handler, when there is
        one) followed by a refresh of the incident's card."""
        handlers = Handlers()
        handlers.on(RefreshCard, lambda effect: self.refresh(effect.incident_id, card_only=bool(effect.card_only)))
        if action_card is not None:
            def action_card_then_incident_card(effect: ActionCard) -> None:
                action_card(effect)
                self.refresh(effect.incident_id)
            handlers.on(ActionCard, action_card_then_incident_card)
        return handlers

    def refresh(self, incident_id: int, *, card_only: bool = False) -> None:
        if self.room.budget is not None:
            self.room.budget.fetch(self.room.engine, incident_id)  # Prometheus' figure, asked outside a transaction
        self.effects.refresh_card(incident_id, card_only=card_only)
        if not card_only:
            self.sync_topic(incident_id)

    def sync_topic(self, incident_id: int) -> None:
        with transaction(self.room.engine) as session:
            incident = service.get(session, incident_id)
            view = card_view(session, incident, self.room.runbooks, self.room.budget)
            step = session.execute(select(IncidentStep).where(col(IncidentStep.incident_id) == incident_id,
                                                              col(IncidentStep.name) == "topic")).scalar_one_or_none()
            if step is None or step.done_at is None or not incident.channel_id:
                return  # the room's set-up sets the first topic
            wanted, last = topic_text(view), (step.result or {}).get("text")
            channel = incident.channel_id
        if wanted == last:
            return
        with unless_archived():
            self.room.gateway.call("conversations.setTopic", channel=channel, topic=wanted)
        with transaction(self.room.engine) as session:
            step = session.execute(select(IncidentStep).where(col(IncidentStep.incident_id) == incident_id,
                                                              col(IncidentStep.name) == "topic")).scalar_one()
            step.result = {**(step.result or {}), "text": wanted}
