"""warroom's own first response: when an incident opens, run (or propose) what its runbook's
``auto:`` list declares, within the limits a user expects.

Automation is a user: every request goes through `Actions.request_automatic`, so the permission
table, parameters, idempotency key, verify and undo are a person's; it is recorded as
``warroom (auto)``. The alert intake queues ``auto.consider`` with the new incident (in the same
transaction); the worker calls `Automation.consider`. A rule with a delay is looked at again
later (its own outbox row), and every condition is checked again then.

Limits, checked in this order, each recorded on the timeline when it stops an action:
the global switch (``WARROOM_AUTOMATION``), the incident's switch (``/incident auto off``), an
incident that is no longer open or was silenced, a low severity (``WARROOM_AUTOMATION_MAX_SEVERITY``),
the rule's own conditions, the same action already requested for the incident, and at most
``WARROOM_AUTOMATION_MAX_PER_HOUR`` automatic requests per service per hour.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, text
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from bot.actions.runner import RunResult
from bot.actions.service import Actions, describe, what_changes
from bot.automation.rules import AutoRule, Facts, why_not
from bot.clock import as_utc, utcnow
from bot.config import Settings
from bot.effects import ConsiderAutomation, Handlers, PostMessage
from bot.errors import UserError
from bot.incidents import lifecycle, timeline
from bot.incidents import service as incidents
from bot.incidents.permissions import AUTOMATION
from bot.releases import changes
from bot.runbooks import Runbook, RunbookSet
from bot.said import Said, of_error, said, who
from bot.store import outbox
from bot.store.db import transaction
from bot.store.models import ActionRun, Incident, TimelineEvent, saved_id
from bot.telemetry import Metrics

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class Limits:
    enabled: bool = True
    max_severity: int = 2
    max_per_hour: int = 3

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(enabled=settings.automation, max_severity=settings.automation_max_severity,
                   max_per_hour=settings.automation_max_per_hour)


def consider_effect(incident_id: int) -> outbox.Queued:
    """Queued with a new incident (after its room, so the run's card has a channel to go to)."""
    return outbox.Queued(
        ConsiderAutomation(incident_id=incident_id), key=f"auto:{incident_id}", incident_id=incident_id
    )


class Automation:
    def __init__(self, engine: Engine, runbooks: RunbookSet, actions: Actions, limits: Limits,
                 metrics: Metrics | None = None) -> None:
        self.engine, self.runbooks, self.actions, self.limits, self.metrics = engine, runbooks, actions, limits, metrics

    def handlers(self) -> Handlers:
        handlers = Handlers()
        handlers.on(ConsiderAutomation, lambda effect: self.consider(effect.incident_id, effect.rule))
        return handlers

    def consider(self, incident_id: int, rule_index: int | None = None, *, now: datetime | None = None) -> list[int]:
        """Apply the incident's runbook rules (all, or the one a delay brought back); the runs requested."""
        now = now or utcnow()
        requested: list[int] = []
        with transaction(self.engine) as session:
            incident = incidents.get_for_update(session, incident_id)
            runbook = self.runbooks.get(incident.runbook_id) if incident.runbook_id else None
            if runbook is None or not runbook.auto:
                return []
            _one_at_a_time_per_service(session, incident.service)
            indexes = [rule_index] if rule_index is not None else list(range(len(runbook.auto)))
            for index in indexes:
                if not 0 <= index < len(runbook.auto):
                    continue
                rule = runbook.auto[index]
                if rule.delay_seconds and rule_index is None:
                    outbox.enqueue(
                        session,
                        ConsiderAutomation(incident_id=saved_id(incident), rule=index),
                        key=f"auto:{incident.id}:{index}",
                        delay=rule.delay_seconds,
                    )  # no incident order: it waits
                    timeline.record(session, incident, "auto_scheduled",
                                    f"{AUTOMATION} will consider `{rule.playbook}` in {rule.delay_seconds} s "
                                    f"(runbook {runbook.id})", actor=AUTOMATION)
                    continue
                run_id = self._apply(session, incident, runbook, rule, now)
                if run_id is not None:
                    requested.append(run_id)
        return requested

    def _apply(self, session: Session, incident: Incident, runbook: Runbook, rule: AutoRule,
               now: datetime) -> int | None:
        verb = "propose" if rule.proposes else "run"
        blocked = self._blocked(session, incident, rule, now)
        if blocked is not None:
            text, loud = blocked
            timeline.record(
                session,
                incident,
                "auto_skipped",
                said(f"{AUTOMATION} did not {verb} `{rule.playbook}`: ", text),
                actor=AUTOMATION,
                echo=loud,
                data={"playbook": rule.playbook},
            )
            return None
        why = (f"runbook *{runbook.title}* declares it for {rule.describe()} "
               f"(this is SEV{incident.severity}{', SLO ' + incident.slo if incident.slo else ''})")
        try:
            run, new = self.actions.request_automatic(session, incident, rule.playbook, dict(rule.params),
                                                      propose=rule.proposes, why=why)
        except UserError as exc:  # PermissionDenied, InvalidTransition, a parameter the labels lack
            timeline.record(session, incident, "auto_refused",
                            said(f"{AUTOMATION} could not {verb} `{rule.playbook}`: ", of_error(exc)),
                            actor=AUTOMATION, echo=True, data={"playbook": rule.playbook})
            return None
        if not new:
            return None
        assert run.id is not None
        self._announce(session, incident, run, rule, why)
        incidents.refresh_card(session, incident)
        return run.id

    def _announce(self, session: Session, incident: Incident, run: ActionRun, rule: AutoRule, why: str) -> None:
        """The channel hears what warroom does, why, and how to stop or undo it, before it happens."""
        pb = self.actions.playbook(run.playbook)
        change = what_changes(session, incident, run)
        who = ", ".join(pb.allowed) if pb.allowed else "anyone in this channel"
        if rule.proposes:
            text = (f"🤖 warroom proposes {describe(run)}{' (' + change + ')' if change else ''}: {why}. "
                    f"It runs only when a person approves it on its card ({who} may).")
        else:
            what = describe(run) + (f" ({change})" if change else "")
            text = (f"🤖 warroom is running {what} automatically: {why}. "
                    f"Undo: `/incident undo {run.id}` ({who} may; it asks you to confirm). "
                    "Stop automation for this incident: `/incident auto off`.")
        outbox.enqueue(
            session,
            PostMessage(incident_id=saved_id(incident), text=text),
            key=f"auto-said:{run.id}",
            incident_id=incident.id,
        )

    def _blocked(
        self, session: Session, incident: Incident, rule: AutoRule, now: datetime
    ) -> tuple[Said | str, bool] | None:
        """Why this rule must not act now (and whether to say so in the channel), or None."""
        if not self.limits.enabled:
            return "automation is switched off for this warroom (WARROOM_AUTOMATION=false)", False
        if incident.automation_off_by:
            return said("automation was switched off for this incident by ", who(incident.automation_off_by)), False
        if not lifecycle.is_open(incident.status):
            return f"the incident is {incident.status}", False
        if _silenced(session, incident):
            return "the incident's alerts are silenced", True
        if incident.severity > self.limits.max_severity:
            return (f"SEV{incident.severity} is below the automation threshold "
                    f"(SEV{self.limits.max_severity} or worse, WARROOM_AUTOMATION_MAX_SEVERITY)"), False
        last = changes.last_change_before(session, incident.service, as_utc(incident.opened_at))
        facts = Facts(severity=incident.severity, slo=incident.slo, labels=dict(incident.labels or {}),
                      last_change_at=last.at if last else None, opened_at=as_utc(incident.opened_at))
        reason = why_not(rule, facts)
        if reason is not None:
            return reason, False
        earlier = session.execute(select(ActionRun).where(
            col(ActionRun.incident_id) == incident.id, col(ActionRun.playbook) == rule.playbook,
                                                          col(ActionRun.undo_of).is_(None))
            .order_by(col(ActionRun.id))).scalars().all()
        for run in earlier:
            if run.requested_by == AUTOMATION:
                return f"it already requested it for this incident (run #{run.id}); never twice", False
            if run.status in ("awaiting_confirmation", "awaiting_approval", "queued", "running", "succeeded"):
                return said(who(run.requested_by), f" already requested it (run #{run.id})"), False
        if incident.service and self._requests_last_hour(session, incident.service, now) >= self.limits.max_per_hour:
            return (f"{self.limits.max_per_hour} automatic actions already ran for {incident.service} in the last hour "
                    "(WARROOM_AUTOMATION_MAX_PER_HOUR); a person decides now"), True
        return None

    def _requests_last_hour(self, session: Session, service: str, now: datetime) -> int:
        return session.execute(select(func.count()).select_from(ActionRun)
                               .join(Incident, col(Incident.id) == col(ActionRun.incident_id))
                               .where(col(Incident.service) == service, col(ActionRun.requested_by) == AUTOMATION,
                                      col(ActionRun.undo_of).is_(None),
                                      col(ActionRun.requested_at) > now - timedelta(hours=1))).scalar_one()

    def after_finish(self, session: Session, run: ActionRun, incident: Incident, result: RunResult) -> None:
        """Metrics for warroom's own runs: alert received → automatic action verified."""
        if run.requested_by != AUTOMATION or run.undo_of or result.status != "succeeded" or self.metrics is None:
            return
        opened = as_utc(incident.opened_at)
        if opened is not None:
            self.metrics.observe_auto_verified((utcnow() - opened).total_seconds())


def _one_at_a_time_per_service(session: Session, service: str | None) -> None:
    """Two incidents of one service opening together (a storm, several replicas) must not both see
    room under the hourly limit: their decisions take turns. SQLite's writers already do (BEGIN
    IMMEDIATE); PostgreSQL takes a transaction-scoped advisory lock on the service's name."""
    if not service or session.get_bind().dialect.name != "postgresql":
        return
    key = int.from_bytes(hashlib.sha256(f"warroom-automation:{service}".encode()).digest()[:8], "big", signed=True)
    session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


def set_switch(session: Session, incident: Incident, *, on: bool, actor: str) -> str:
    """``/incident auto on|off``: what warroom may do on its own for this one incident."""
    if on == (incident.automation_off_by is None):
        return f"Automatic actions are already {'on' if on else 'off'} for incident #{incident.id}."
    incident.automation_off_by = None if on else actor
    text = said(who(actor), f" switched automatic actions {'on' if on else 'off'} for this incident",
                None if on else ": warroom will not run, undo or propose anything on its own")
    timeline.record(session, incident, "automation", text, actor=actor, echo=True)
    incidents.refresh_card(session, incident, by=actor)
    return f"Automatic actions are {'on' if on else 'off'} for incident #{incident.id}."


def _silenced(session: Session, incident: Incident) -> bool:
    return session.execute(select(func.count()).select_from(TimelineEvent).where(
        col(TimelineEvent.incident_id) == incident.id, col(TimelineEvent.kind) == "silenced")).scalar_one() > 0


def card_line(session: Session, incident: Incident) -> str | None:
    """For the incident card: warroom's own latest action and what the guard said of it."""
    from bot.store.models import ActionGuard

    run = session.execute(select(ActionRun).where(col(ActionRun.incident_id) == incident.id,
                                                  col(ActionRun.requested_by) == AUTOMATION,
                                                  col(ActionRun.undo_of).is_(None))
                          .order_by(col(ActionRun.id).desc()).limit(1)).scalar_one_or_none()
    guard = session.execute(select(ActionGuard).where(col(ActionGuard.incident_id) == incident.id)
                            .order_by(col(ActionGuard.id).desc()).limit(1)).scalar_one_or_none()
    parts = []
    if run is not None:
        verb = "proposed" if run.status == "awaiting_approval" else "ran"
        text = f"🤖 warroom {verb} `{run.playbook}` on its own (run #{run.id}, {run.status.replace('_', ' ')})"
        if run.status == "succeeded":
            text += f"; anyone who may run it can undo: `/incident undo {run.id}`"
        parts.append(text)
    if guard is not None:
        verdict = {"watching": "watching", "improved": "improved", "not_improved": "not improved",
                   "ended": "ended"}.get(guard.status, guard.status)
        parts.append(f"guard: {verdict}" + (f" — {guard.evidence}" if guard.evidence else ""))
    if incident.automation_off_by:
        parts.append("automatic actions switched off for this incident (`/incident auto on` to resume)")
    return " · ".join(parts) or None
