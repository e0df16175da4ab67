"""From database rows to the plain values the Block Kit renderers take."""

from __future__ import annotations

from sqlalchemy import select
from sqlmodel import Session, col

from bot.alerts.intake import CANNOT_SELF_RESOLVE
from bot.automation import service as automation
from bot.clock import as_utc
from bot.incidents import lifecycle, metrics, service
from bot.incidents.budget import ErrorBudget, impact_window
from bot.incidents.live_bundle import live_bundle
from bot.releases import bundles
from bot.runbooks import RunbookSet
from bot.slack.blocks import CardView
from bot.slack.late_traces import failing_trace_count
from bot.store.models import Incident, IncidentStep, TimelineEvent, saved_id
from bot.traces import impact

STEP_WARNING_AFTER = 3  # failed attempts before a set-up step is shown as a warning


def card_view(session: Session, incident: Incident, runbooks: RunbookSet | None,
              budget: ErrorBudget | None = None) -> CardView:
    """``budget``: the process's error budget reader (`bot.incidents.budget`); without it no budget line."""
    counts = service.alert_counts(session, saved_id(incident))
    runbook = runbooks.get(incident.runbook_id) if runbooks and incident.runbook_id else None
    steps = session.execute(select(IncidentStep).where(col(IncidentStep.incident_id) == incident.id)).scalars()
    warnings = [f"Set-up step '{s.name}' keeps failing ({s.attempts} tries): {s.last_error}"
                for s in steps if s.done_at is None and s.attempts >= STEP_WARNING_AFTER and s.last_error]
    if stuck := cannot_self_resolve(session, incident):
        warnings.append(stuck)
    groups = service.alert_groups(session, saved_id(incident))
    others = [g for g in groups if g.group_id != incident.group_id] if len(groups) > 1 and not incident.storm else []
    start, end = impact_window(session, incident)
    traffic_line = impact.traffic_line(session, incident, start, end)
    measured = budget.of(session, incident, start, end) if budget is not None else None
    budget_line = measured.line() if measured is not None else None
    merged_into = session.get(Incident, incident.merged_into_id) if incident.merged_into_id else None
    return CardView(
        id=saved_id(incident), title=incident.title, status=incident.status, severity=incident.severity,
        service=incident.service, slo=incident.slo, firing=counts["firing"], resolved=counts["resolved"],
        unlisted=incident.alerts_unlisted, burn_rate=(incident.annotations or {}).get("burn_rate"),
        commander=incident.commander, acknowledged_by=incident.acknowledged_by,
        mtta=metrics.human(metrics.mtta(incident)) if incident.acknowledged_at else None,
        mttr=metrics.human(metrics.mttr(incident)) if incident.resolved_at else None,
        channel_id=incident.channel_id, runbook_title=runbook.title if runbook else None,
        bundle_line=bundle_line(session, incident), change_line=change_line(session, incident),
        auto_line=automation.card_line(session, incident), traffic_line=traffic_line, budget_line=budget_line,
        monitoring_gap=incident.monitoring_gap,
        status_text=incident.status_text, links=list(incident.links or []), warnings=warnings,
        failing_traces=failing_trace_count(session, saved_id(incident)),
        other_groups=[g.name for g in others if g.firing], resolved_groups=[g.name for g in others if not g.firing],
        storm_groups=len(groups) if incident.storm else None,
        merged_into=incident.merged_into_id, merged_into_channel=merged_into.channel_id if merged_into else None,
    )


def cannot_self_resolve(session: Session, incident: Incident) -> str | None:
    """Why an open incident of a truncated group will not resolve by itself, if the intake said so."""
    if not incident.alerts_unlisted or not lifecycle.is_open(incident.status):
        return None
    return session.execute(select(col(TimelineEvent.text)).where(
        col(TimelineEvent.incident_id) == incident.id, col(TimelineEvent.kind) == CANNOT_SELF_RESOLVE).limit(1)
    ).scalar()
def change_line(session: Session, incident: Incident) -> str | None:
    """"Changed 17 min before: bundle v42 by deploy-bot": the service's latest change (hours before
    the incident, or since), and how many more there were; once a responder named the cause
    (`/incident cause`), "Cause: bundle v42 (deploy 17 min before, by deploy-bot)"."""
    from bot.releases import cause, changes

    opened = as_utc(incident.opened_at)
    if (named := cause.named(session, incident.id)) is not None:
        return named.card_line(opened)
    found = changes.for_incident(session, incident.service, opened)
    if not found:
        return None
    line = found[0].line(opened)
    more = f" (and {len(found) - 1} earlier change{'s' if len(found) > 2 else ''})" if len(found) > 1 else ""
    return line[0].upper() + line[1:] + more


def bundle_line(session: Session, incident: Incident) -> str | None:
    """"v42 (changed vs v41: prompt answer-v41→answer-v42, …)" when bundles are registered; after a
    rollback (or its undo) in the incident, the bundle it made live, and by which run."""
    live = live_bundle(session, incident)
    if live is None:
        return None
    gated = bundles.newest_gated(session, incident.service, excluding=live.version) if incident.service else None
    # The bundle `/incident rollback` proposes once one has passed the eval gate.
    gate = f" · {gated.version} passed eval gate run #{gated.known_good_run_id}" if gated else ""
    if live.via_run is not None:
        return f"{live.version} (run #{live.via_run} replaced {live.replaced or 'the previous bundle'})" + gate
    previous = bundles.previous_bundle(session, live.bundle) if live.bundle else None
    if previous is None:
        return live.version + gate
    change = bundles.describe_change(bundles.diff(previous, live.bundle))
    return (f"{live.version} (changed vs {previous.version}: {change})" if change else live.version) + gate
