"""The postmortem's "what changed" and "how warroom responded": the changes before the incident,
time to detect, and the automatic actions and guard verdicts with their timings."""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlmodel import Session, col

from bot.clock import as_utc
from bot.incidents.permissions import AUTOMATION
from bot.releases import changes
from bot.releases.cause import named as named_cause
from bot.store.models import ActionGuard, ActionRun, Incident

from .context import _UtcModel


class ChangeRecord(_UtcModel):
    at: datetime
    kind: str
    summary: str
    actor: str | None = None
    link: str | None = None
    before_opened: timedelta


class GuardRecord(_UtcModel):
    playbook: str
    run_id: int
    verdict: str  # watching | improved | not_improved | ended
    after_alert: timedelta | None = None
    evidence: str | None = None


class ResponseFacts(BaseModel):
    changes: list[ChangeRecord] = Field(default_factory=list)
    time_to_detect: timedelta | None = None  # opened − the cause, else − the last change before it
    cause: ChangeRecord | None = None  # the change a responder named, else the one the fix undid (a rolled-back deploy)
    cause_named_by: str | None = None  # who named it (`/incident cause`); None: the rollback implied it
    cause_words: str | None = None  # a cause a responder named in their own words: no change, no time
    auto_runs: int = 0
    auto_verified_after: timedelta | None = None  # alert received → first automatic action verified
    guards: list[GuardRecord] = Field(default_factory=list)


def response_facts(session: Session, incident: Incident, rolled_back_from: str | None = None) -> ResponseFacts:
    """``rolled_back_from``: the bundle a succeeded rollback replaced; its deploy is then the cause,
    unless a responder named one (`/incident cause`)."""
    opened = as_utc(incident.opened_at)
    assert opened is not None
    found = changes.changes_before(session, incident.service, opened)
    records = [ChangeRecord(at=c.at, kind=c.kind, summary=c.summary, actor=c.actor, link=c.link,
                            before_opened=opened - c.at) for c in found]
    cause = next((r for r in records if rolled_back_from and r.summary == changes.bundle_summary(rolled_back_from)),
                 None)
    named = named_cause(session, incident.id)
    if named is not None:
        cause = (ChangeRecord(at=named.at, kind=named.kind or "other", summary=named.summary, actor=named.by,
                              before_opened=opened - named.at) if named.at is not None else None)
    time_to_detect = (cause.before_opened if cause is not None and cause.before_opened >= timedelta(0)
                      else None if cause is not None  # a change after it opened did not start it: no time
                      else None if named is not None  # the responder's words name no change: no time to count from
                      else records[0].before_opened if records else None)
    runs = list(session.execute(select(ActionRun).where(col(ActionRun.incident_id) == incident.id)
                                .order_by(col(ActionRun.id))).scalars())
    auto = [r for r in runs if r.requested_by == AUTOMATION and not r.undo_of]
    verified = [as_utc(r.finished_at) for r in auto if r.status == "succeeded" and (r.result or {}).get("verify", {})
                and r.result["verify"].get("ok") and r.finished_at]
    by_id = {r.id: r for r in runs}
    guards = []
    for guard in session.execute(select(ActionGuard).where(col(ActionGuard.incident_id) == incident.id)
                                 .order_by(col(ActionGuard.id))).scalars():
        run = by_id.get(guard.run_id)
        verdict_at = as_utc(guard.verdict_at)
        guards.append(GuardRecord(playbook=run.playbook if run else "?", run_id=guard.run_id, verdict=guard.status,
                                  after_alert=verdict_at - opened if verdict_at else None, evidence=guard.evidence))
    return ResponseFacts(changes=records, time_to_detect=time_to_detect, cause=cause,
                         cause_named_by=named.named_by if named else None,
                         cause_words=named.summary if named is not None and named.at is None else None,
                         auto_runs=len(auto), auto_verified_after=min(verified) - opened if verified else None,
                         guards=guards)
