"""Outbox handlers for actions: perform a run, and post or update its card in the incident channel."""

from __future__ import annotations

from sqlalchemy import select
from sqlmodel import col

from bot.actions.service import Actions, describe, live_now, what_changes
from bot.clock import as_utc
from bot.effects import ActionCard, Handlers, RunAction
from bot.incidents import service as incidents
from bot.slack.action_card import action_card
from bot.slack.context import SlackContext
from bot.store.db import insert_or_ignore, transaction
from bot.store.models import IncidentStep


class ActionEffects:
    """``action.run`` (the worker performs the run) and ``action.card`` (its card follows its state)."""

    def __init__(self, ctx: SlackContext, actions: Actions) -> None:
        self.ctx, self.actions = ctx, actions

    def handlers(self) -> Handlers:
        """The run's; its card's handler is `card`, which `bot.slack.card_sync` follows with the
        incident's card."""
        handlers = Handlers()
        handlers.on(RunAction, lambda effect: self.actions.perform(effect.run_id))
        return handlers

    def card(self, effect: ActionCard) -> None:
        run_id = effect.run_id
        with transaction(self.ctx.engine) as session:
            run = self.actions.get_run(session, run_id)
            incident = incidents.get(session, run.incident_id)
            pb = self.actions.playbook(run.playbook)
            preview = None
            if run.status in ("awaiting_confirmation", "awaiting_approval"):
                dry = self.actions.dry_run(session, run)
                preview = [s.request_preview_masked for s in dry.steps]
            undone = self.actions.undone_result(session, run)
            expires = as_utc(run.requested_at) + self.actions.approval_timeout
            blocks = action_card(run, description=pb.description, change_line=what_changes(session, incident, run),
                                 preview=preview, destructive=pb.destructive,
                                 restores=undone.saved if undone else None, live=live_now(run),
                                 expires_at=f"{expires:%H:%M} UTC")
            text, channel = describe(run) + f" — {run.status}", incident.channel_id
            step_name = f"run-card:{run_id}"
            insert_or_ignore(session, IncidentStep, {"incident_id": incident.id, "name": step_name, "result": {},
                                                     "attempts": 0}, ["incident_id", "name"])
            step = session.execute(select(IncidentStep).where(col(IncidentStep.incident_id) == incident.id,
                                                              col(IncidentStep.name) == step_name)).scalar_one()
            posted = dict(step.result or {})
        if not channel:
            return
        if posted.get("ts"):
            self.ctx.gateway.update(posted["channel"], posted["ts"], text, blocks)
            return
        answer = self.ctx.room.post_for_effect(channel, text, blocks)
        with transaction(self.ctx.engine) as session:
            step = session.execute(select(IncidentStep).where(col(IncidentStep.incident_id) == incident.id,
                                                              col(IncidentStep.name) == step_name)).scalar_one()
            step.result = {"channel": answer["channel"], "ts": answer["ts"]}
