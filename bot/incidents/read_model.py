"""What the incident pages and the incident API show, each read in one transaction of its own.

Reading never writes. The rows come back loaded (sessions do not expire them on commit), so the
templates and the JSON encoder use them after the transaction has ended.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlmodel import col

from bot.clock import utcnow
from bot.incidents import metrics, service, timeline
from bot.incidents.burn_chart import BurnChart, Moments, burn_chart
from bot.people import Names
from bot.postmortem import store
from bot.postmortem.assemble import incident_ref
from bot.store.db import transaction
from bot.store.models import (
    ActionRun,
    Alert,
    Followup,
    Incident,
    Postmortem,
    TimelineEvent,
    Trace,
)
from bot.traces import ingest as traces

LIST_LIMIT = 500
TIMELINE_LIMIT = 1000  # the page shows this many; the postmortem summarises all of them
CHART_TRACE_LIMIT = 100_000


@dataclass(frozen=True)
class IncidentRow:
    """One line of ``/incidents``."""

    incident: Incident
    ref: str
    mtta: timedelta | None
    mttr: timedelta | None


@dataclass(frozen=True)
class IncidentPage:
    """Everything ``/incidents/{id}`` shows; the names of people are the page's to add."""

    incident: Incident
    ref: str
    mtta: timedelta | None
    mttr: timedelta | None
    alerts: list[Alert]
    events: list[TimelineEvent]
    events_total: int
    actions: list[ActionRun]
    trace_counts: dict[str, int]
    chart: BurnChart
    followups: list[Followup]
    postmortem: Postmortem | None


def incident_rows(engine: Engine, *, status: str | None) -> list[IncidentRow]:
    with transaction(engine) as session:
        return [IncidentRow(i, incident_ref(i), metrics.mtta(i), metrics.mttr(i))
                for i in service.list_incidents(session, status=status, limit=LIST_LIMIT)]


def incident_page(engine: Engine, incident_id: int) -> IncidentPage:
    """Raises `NotFound` for an unknown incident."""
    with transaction(engine) as session:
        incident = service.get(session, incident_id)
        total = session.execute(select(func.count()).select_from(TimelineEvent)
                                .where(col(TimelineEvent.incident_id) == incident_id)).scalar_one()
        alerts = list(session.execute(select(Alert).where(col(Alert.incident_id) == incident_id)
                                      .order_by(col(Alert.id))).scalars())
        runs = list(session.execute(select(ActionRun).where(col(ActionRun.incident_id) == incident_id)
                                    .order_by(col(ActionRun.requested_at), col(ActionRun.id))).scalars())
        failing = [t for (t,) in session.execute(
            select(col(Trace.timestamp)).where(col(Trace.incident_id) == incident_id, col(Trace.failed).is_(True))
            .limit(CHART_TRACE_LIMIT))]
        chart = burn_chart(Moments(opened=incident.opened_at, acknowledged=incident.acknowledged_at,
                                   mitigated=incident.mitigated_at, resolved=incident.resolved_at),
                           [(a.starts_at, a.ends_at) for a in alerts], failing, now=utcnow())
        return IncidentPage(
            incident=incident, ref=incident_ref(incident), mtta=metrics.mtta(incident), mttr=metrics.mttr(incident),
            alerts=alerts, events=timeline.events(session, incident_id, limit=TIMELINE_LIMIT), events_total=total,
            actions=runs, trace_counts=traces.counts_by_failure(session, incident_id), chart=chart,
            followups=service.followups(session, incident_id), postmortem=store.get(session, incident_id))


def incident_dicts(engine: Engine, *, status: str | None, limit: int) -> list[dict[str, Any]]:
    """The body of ``GET /api/incidents`` (shape documented in README), before redaction."""
    with transaction(engine) as session:
        return [service.as_dict(session, i) for i in service.list_incidents(session, status=status, limit=limit)]


def incident_dict(engine: Engine, incident_id: int, names: Names | None = None) -> dict[str, Any]:
    """The body of ``GET /api/incidents/{id}``, before redaction (people in timeline text by
    ``names``); raises `NotFound`."""
    with transaction(engine) as session:
        return service.as_dict(session, service.get(session, incident_id), full=True, names=names)
