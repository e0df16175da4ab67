"""What people do to an incident. Keyword-only functions with an explicit session.

Each change is checked against the state machine, stamped, written to the timeline and queues
its Slack effects (card refresh, a line in the channel) through the outbox, in one transaction.
Nothing here knows about Slack: the worker turns outbox rows into Web API calls.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, select
from sqlmodel import Session, col

from bot.alerts.correlation import group_name
from bot.clock import as_utc, utcnow
from bot.effects import ActionCard, ArchiveChannel, OpenRoom, PostFailingTraces, PostmortemDue, Priority, RefreshCard
from bot.errors import InvalidTransition, NotFound, UserError
from bot.incidents import lifecycle, metrics, timeline
from bot.people import Names, display
from bot.said import MENTIONS, USER_ID, Said, said, who
from bot.store import changeset, outbox
from bot.store.models import ActionRun, Alert, Followup, Incident, TimelineEvent, saved_id

# Incident ids are the database's INTEGER: a number beyond it names no incident (and must not
# reach the database, where PostgreSQL refuses it and SQLite overflows).
MAX_ID = 2**31 - 1


def get(session: Session, incident_id: int) -> Incident:
    incident = session.get(Incident, incident_id) if 0 < incident_id <= MAX_ID else None
    if incident is None:
        raise NotFound(f"There is no incident #{incident_id}.")
    return incident


def get_for_update(session: Session, incident_id: int) -> Incident:
    if not 0 < incident_id <= MAX_ID:
        raise NotFound(f"There is no incident #{incident_id}.")
    stmt = select(Incident).where(col(Incident.id) == incident_id).with_for_update()
    incident = session.execute(stmt).scalar_one_or_none()
    if incident is None:
        raise NotFound(f"There is no incident #{incident_id}.")
    return incident


def by_channel(session: Session, channel_id: str) -> Incident | None:
    stmt = select(Incident).where(col(Incident.channel_id) == channel_id).order_by(col(Incident.id).desc()).limit(1)
    return session.execute(stmt).scalar_one_or_none()


def list_incidents(session: Session, *, status: str | None = None, limit: int = 100) -> list[Incident]:
    stmt = select(Incident).order_by(col(Incident.opened_at).desc(), col(Incident.id).desc()).limit(limit)
    if status == "open":
        stmt = stmt.where(col(Incident.status).in_(lifecycle.OPEN_STATUSES))
    elif status:
        stmt = stmt.where(col(Incident.status) == status)
    return list(session.execute(stmt).scalars())


def alert_counts(session: Session, incident_id: int) -> dict[str, int]:
    rows = session.execute(
        select(col(Alert.status), func.count()).where(col(Alert.incident_id) == incident_id).group_by(col(Alert.status))
    ).all()
    counts = {"firing": 0, "resolved": 0}
    counts.update({status: n for status, n in rows})
    return counts


@dataclass(frozen=True)
class GroupSummary:
    """One alert group of an incident (correlation gives an incident several), as the card and
    the API show it."""

    group_id: int
    name: str  # "schema-valid-rate (ticket)"
    firing: int
    resolved: int


def alert_groups(session: Session, incident_id: int) -> list[GroupSummary]:
    """The incident's alert groups in the order they came, each with its alerts' counts."""
    rows = session.execute(
        select(col(Alert.group_id), func.min(col(Alert.id)),
               func.sum(case((col(Alert.status) == "firing", 1), else_=0)), func.count())
        .where(col(Alert.incident_id) == incident_id).group_by(col(Alert.group_id)).order_by(func.min(col(Alert.id)))
    ).all()
    first_alerts = {a.id: a.labels for a in session.execute(
        select(Alert).where(col(Alert.id).in_([row[1] for row in rows]))).scalars()}
    return [GroupSummary(group_id, group_name(first_alerts.get(first) or {}), int(firing), total - int(firing))
            for group_id, first, firing, total in rows]


def refresh_card(session: Session, incident: Incident, *, by: str | None = None, news: bool = False) -> None:
    """Queue a re-render of the incident card (and the announcement) from current state: at once
    when ``by`` is a person (they are looking for it) or the change is ``news`` responders must see
    now (a deploy or flag flip during the incident), else merged with others (`card_effect`)."""
    assert incident.id is not None
    incident.updated_at = utcnow()
    outbox.enqueue_many(session, card_effects(incident.id, urgent=news or bool(by and USER_ID.match(by))))


def card_effect(incident_id: int) -> outbox.Queued:
    """The outbox row that re-renders the incident's card, announcement and topic: cosmetic, and
    merged with a waiting one (one card update per ten seconds at most)."""
    return outbox.Queued(RefreshCard(incident_id=incident_id), key=f"card:{incident_id}", incident_id=incident_id,
                         merge=True)


def card_effects(incident_id: int, *, urgent: bool = False) -> list[outbox.Queued]:
    """``urgent``: a person's action. Their card is updated before anything less urgent, with a
    share of Slack's budget kept for people; the announcement and the topic follow with the next
    cosmetic refresh (in a storm Slack's ``chat.update`` allowance is what an ack waits for)."""
    if not urgent:
        return [card_effect(incident_id)]
    card = outbox.Queued(RefreshCard(incident_id=incident_id, card_only=True), incident_id=incident_id,
                         priority=Priority.PERSON)
    return [card, card_effect(incident_id)]


def declare(session: Session, *, title: str, severity: int, actor: str, service: str | None = None,
            description: str | None = None, runbook_id: str | None = None) -> Incident:
    title = title.strip()
    if not title:
        raise UserError("An incident needs a title: `/incident declare [sev1-4] <title>`.")
    if severity not in (1, 2, 3, 4):
        raise UserError("Severity is 1 (worst) to 4.")
    now = utcnow()
    incident = Incident(title=title[:300], severity=severity, service=service, source="declared", declared_by=actor,
                        opened_at=now, updated_at=now, summary=description, runbook_id=runbook_id)
    session.add(incident)
    session.flush()
    timeline.record(session, incident, "opened", said("Incident declared by ", who(actor), f": {title}"),
                    actor=actor, at=now)
    open_room(session, incident)
    return incident


def open_room(session: Session, incident: Incident) -> None:
    """Queue the room set-up, and bring in the failing traces seen just before the incident."""
    from bot.traces import ingest as traces

    assert incident.id is not None
    linked = traces.link_failing_traces(session, incident)
    queue_room(changeset.of(session), incident.id, traces_linked=lambda: linked > 0)


def queue_room(changes: changeset.ChangeSet, incident_id: int, *, traces_linked: Callable[[], bool]) -> None:
    """The room's rows of a new incident: its set-up first, then its failing traces, if
    ``traces_linked`` says any were linked once the writes before it are answered (the alert
    intake links them with its batch's writes, `bot.alerts.store.PendingWrites.link_traces`)."""
    changes.effect(room_effect(incident_id))
    changes.effect(traces_effect(incident_id), only_if=traces_linked)


def room_effect(incident_id: int) -> outbox.Queued:
    """The outbox row that sets up the incident's Slack room (channel, owners, card, runbook)."""
    return outbox.Queued(OpenRoom(incident_id=incident_id), key=f"room:{incident_id}", incident_id=incident_id)


def traces_effect(incident_id: int) -> outbox.Queued:
    """The outbox row that posts the failing traces linked to the incident to its room."""
    return outbox.Queued(PostFailingTraces(incident_id=incident_id), key=f"traces:{incident_id}",
                         incident_id=incident_id)


def acknowledge(session: Session, incident: Incident, *, actor: str, at: datetime | None = None) -> None:
    if incident.status in (lifecycle.ACKNOWLEDGED, lifecycle.MITIGATED, lifecycle.RESOLVED):
        # Acknowledging never moves an incident back (mitigated → acknowledged would hide the mitigation).
        raise InvalidTransition(said(f"Incident #{incident.id} is already {incident.status}", said(
            "; ", who(incident.acknowledged_by), f" acknowledged it at {as_utc(incident.acknowledged_at):%H:%M} UTC "
            f"on {as_utc(incident.acknowledged_at):%Y-%m-%d}.") if incident.acknowledged_at and incident.acknowledged_by
            else "; nobody acknowledged it."))
    lifecycle.check(incident.status, lifecycle.ACKNOWLEDGED)
    now = at or utcnow()
    incident.status = lifecycle.ACKNOWLEDGED
    if incident.acknowledged_at is None:
        incident.acknowledged_at, incident.acknowledged_by = now, actor
    took = metrics.human(metrics.mtta(incident))
    timeline.record(session, incident, "acknowledged", said("Acknowledged by ", who(actor), f" (MTTA {took})"),
                    actor=actor, at=now, echo=True)
    refresh_card(session, incident, by=actor)


def set_severity(session: Session, incident: Incident, severity: int, *, actor: str) -> None:
    if severity not in (1, 2, 3, 4):
        raise UserError("Severity is 1 (worst) to 4: `/incident sev 2`.")
    if severity == incident.severity:
        raise UserError(f"The incident is already SEV{severity}.")
    old, incident.severity = incident.severity, severity
    timeline.record(session, incident, "severity", said(f"Severity SEV{old} → SEV{severity} by ", who(actor)),
                    actor=actor, echo=True)
    refresh_card(session, incident, by=actor)


def set_commander(session: Session, incident: Incident, user_id: str, *, actor: str) -> None:
    incident.commander = user_id
    timeline.record(session, incident, "commander",
                    said(who(user_id), " is incident commander (set by ", who(actor), ")"), actor=actor, echo=True)
    refresh_card(session, incident, by=actor)


def post_status(session: Session, incident: Incident, text: str, *, actor: str) -> None:
    incident.status_text = text
    timeline.record(
        session, incident, "status", said("Status update from ", who(actor), ": ", text), actor=actor, echo=True
    )
    refresh_card(session, incident, by=actor)


def add_note(session: Session, incident: Incident, text: str, *, actor: str) -> None:
    if not text.strip():
        raise UserError("A note needs text: `/incident note <text>`.")
    timeline.record(session, incident, "note", text, actor=actor)


def add_followup(session: Session, incident: Incident, text: str, *, actor: str, owner: str | None) -> Followup:
    if not text.strip():
        raise UserError("A follow-up needs text: `/incident followup <text> [@owner]`.")
    item = Followup(incident_id=saved_id(incident), text=text, owner=owner, created_by=actor, created_at=utcnow())
    session.add(item)
    session.flush()
    owned = said(" (owner ", who(owner), ")") if owner else None
    timeline.record(session, incident, "followup", said("Follow-up: ", text, owned), actor=actor)
    return item


def followups(session: Session, incident_id: int) -> list[Followup]:
    return list(session.execute(select(Followup).where(col(Followup.incident_id) == incident_id)
                                .order_by(col(Followup.id))).scalars())


def mitigate(session: Session, incident: Incident, *, actor: str, reason: str, echo: bool = True) -> bool:
    """Mark the incident mitigated; whether it changed. ``echo=False`` when the caller already
    tells the channel (an action's result line says it mitigated: one line, not two)."""
    if incident.status == lifecycle.MITIGATED or not lifecycle.is_open(incident.status):
        return False
    lifecycle.check(incident.status, lifecycle.MITIGATED)
    incident.status, incident.mitigated_at = lifecycle.MITIGATED, incident.mitigated_at or utcnow()
    timeline.record(session, incident, "mitigated", f"Mitigated: {reason}", actor=actor, echo=echo)
    refresh_card(session, incident, by=actor)
    return True


def resolve(session: Session, incident: Incident, *, actor: str, summary: str | None = None,
            at: datetime | None = None) -> None:
    lifecycle.check(incident.status, lifecycle.RESOLVED)
    now = at or utcnow()
    incident.status, incident.resolved_at, incident.resolved_by = lifecycle.RESOLVED, now, actor
    if summary:
        incident.summary = summary
    took = metrics.human(metrics.mttr(incident))
    text = said("Resolved by ", who(actor), f" (MTTR {took})", f": {summary}" if summary else None)
    timeline.record(session, incident, "resolved", text, actor=actor, at=now, echo=True)
    cancel_waiting_actions(session, incident)
    refresh_card(session, incident, by=actor)
    outbox.enqueue(
        session,
        PostmortemDue(incident_id=saved_id(incident)),
        key=f"pm-due:{incident.id}:{now.isoformat()}",
        incident_id=incident.id,
    )


WAITING_RUN_STATUSES = ("awaiting_confirmation", "awaiting_approval")


def cancel_waiting_actions(session: Session, incident: Incident) -> int:
    """An incident that ends takes its undecided actions with it: a late Confirm or Approve must
    not change production for an incident nobody is working on any more (reopen it to act)."""
    runs = list(session.execute(select(ActionRun).where(col(ActionRun.incident_id) == incident.id,
                                                        col(ActionRun.status).in_(WAITING_RUN_STATUSES))
                                .with_for_update()).scalars())
    for run in runs:
        run.status = "cancelled"
        timeline.record(
            session,
            incident,
            "action_cancelled",
            f"run #{run.id} `{run.playbook}` was cancelled: the incident is {incident.status}",
            actor="warroom",
            data={"run": run.id},
        )
        outbox.enqueue(
            session, ActionCard(incident_id=saved_id(incident), run_id=saved_id(run)), incident_id=incident.id
        )
    return len(runs)


def reopen(session: Session, incident: Incident, *, actor: str, reason: str = "") -> None:
    target = lifecycle.ACKNOWLEDGED if incident.acknowledged_at else lifecycle.TRIGGERED
    lifecycle.check(incident.status, target)
    incident.status, incident.resolved_at, incident.resolved_by = target, None, None
    timeline.record(session, incident, "reopened", said("Reopened by ", who(actor), f": {reason}" if reason else None),
                    actor=actor, echo=True)
    refresh_card(session, incident, by=actor)


def close(session: Session, incident: Incident, *, actor: str, reason: str = "") -> None:
    lifecycle.check(incident.status, lifecycle.CLOSED)
    incident.status, incident.closed_at = lifecycle.CLOSED, utcnow()
    text = said("Closed by ", who(actor), f": {reason}" if reason else None, "; the channel will be archived")
    timeline.record(session, incident, "closed", text, actor=actor, echo=True)
    cancel_waiting_actions(session, incident)
    refresh_card(session, incident, by=actor)
    outbox.enqueue(session, ArchiveChannel(incident_id=saved_id(incident)), key=f"archive:{incident.id}",
                   incident_id=incident.id)


def as_dict(session: Session, incident: Incident, *, full: bool = False, names: Names | None = None) -> dict[str, Any]:
    """The JSON shape of ``/api/incidents`` (documented in README). A timeline line's ``text`` is
    for reading (people by ``names``, `bot.people.display`); its ``actor`` and ``people`` are ids."""
    from bot.clock import iso

    counts = alert_counts(session, incident.id) if incident.id else {"firing": 0, "resolved": 0}
    mtta, mttr = metrics.mtta(incident), metrics.mttr(incident)
    body: dict[str, Any] = {
        "id": incident.id, "title": incident.title, "status": incident.status, "severity": incident.severity,
        "service": incident.service, "slo": incident.slo, "source": incident.source,
        "group_key": None, "channel_id": incident.channel_id, "channel_name": incident.channel_name,
        "runbook": incident.runbook_id, "commander": incident.commander,
        "opened_at": iso(incident.opened_at), "acknowledged_at": iso(incident.acknowledged_at),
        "acknowledged_by": incident.acknowledged_by, "mitigated_at": iso(incident.mitigated_at),
        "resolved_at": iso(incident.resolved_at), "closed_at": iso(incident.closed_at),
        "alerts_firing": counts["firing"], "alerts_resolved": counts["resolved"],
        "alerts_unlisted": incident.alerts_unlisted, "monitoring_gap": incident.monitoring_gap,
        "mtta_seconds": mtta.total_seconds() if mtta is not None else None,
        "mttr_seconds": mttr.total_seconds() if mttr is not None else None,
        "labels": incident.labels, "links": incident.links, "previous_incident_id": incident.previous_incident_id,
    }
    if incident.group_id:
        from bot.store.models import AlertGroup
        group = session.get(AlertGroup, incident.group_id)
        body["group_key"] = group.group_key if group else None
    if full:
        body["groups"] = [{"group_id": g.group_id, "name": g.name, "alerts_firing": g.firing,
                           "alerts_resolved": g.resolved} for g in alert_groups(session, saved_id(incident))]
        body["storm"] = incident.storm
        body["merged_into"] = incident.merged_into_id
        alerts = session.execute(select(Alert).where(col(Alert.incident_id) == incident.id)
                                 .order_by(col(Alert.id))).scalars()
        body["alerts"] = [{
            "fingerprint": a.fingerprint, "status": a.status, "starts_at": iso(a.starts_at), "ends_at": iso(a.ends_at),
            "labels": a.labels, "annotations": a.annotations, "generator_url": a.generator_url,
            "severity": a.severity, "monitoring_gap": a.monitoring_gap, **({"extra": a.extra} if a.extra else {}),
        } for a in alerts]
        body["timeline"] = [_api_line(e, names) for e in timeline.events(session, saved_id(incident))]
        body["followups"] = [{"text": f.text, "owner": f.owner, "done": f.done}
                             for f in followups(session, saved_id(incident))]
    return body


def _api_line(event: TimelineEvent, names: Names | None) -> dict[str, Any]:
    """A timeline event in the API. The offsets of its people are the stored text's, which the API
    does not show, so the people are given as their ids instead."""
    from bot.clock import iso

    line = Said.from_row(event.text, event.data)
    data = {k: v for k, v in (event.data or {}).items() if k != MENTIONS}
    return {"at": iso(event.at), "kind": event.kind, "actor": event.actor, "text": display(line, names),
            "people": line.people, **({"data": data} if data else {})}
