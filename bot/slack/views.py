"""From database rows to the plain values the Block Kit renderers take."""

from __future__ import annotations

from sqlalchemy import select
from sqlmodel import Session

from bot.automation import service as automation
from bot.clock import as_utc
from bot.incidents import metrics, service
from bot.models import Incident, IncidentStep
from bot.runbooks import RunbookSet
from bot.slack.blocks import CardView

STEP_WARNING_AFTER = 3  # failed attempts before a set-up step is shown as a warning


def card_view(session: Session, incident: Incident, runbooks: RunbookSet | None) -> CardView:
    counts = service.alert_counts(session, incident.id)
    runbook = runbooks.get(incident.runbook_id) if runbooks and incident.runbook_id else None
    steps = session.execute(select(IncidentStep).where(IncidentStep.incident_id == incident.id)).scalars()
    warnings = [f"Set-up step '{s.name}' keeps failing ({s.attempts} tries): {s.last_error}"
                for s in steps if s.done_at is None and s.attempts >= STEP_WARNING_AFTER and s.last_error]
    return CardView(
        id=incident.id, title=incident.title, status=incident.status, severity=incident.severity,
        service=incident.service, slo=incident.slo, firing=counts["firing"], resolved=counts["resolved"],
        unlisted=incident.alerts_unlisted, burn_rate=(incident.annotations or {}).get("burn_rate"),
        commander=incident.commander, acknowledged_by=incident.acknowledged_by,
        mtta=metrics.human(metrics.mtta(incident)) if incident.acknowledged_at else None,
        mttr=metrics.human(metrics.mttr(incident)) if incident.resolved_at else None,
        channel_id=incident.channel_id, runbook_title=runbook.title if runbook else None,
        bundle_line=bundle_line(session, incident), change_line=change_line(session, incident),
        auto_line=automation.card_line(session, incident), traffic_line=_traffic_line(session, incident),
        monitoring_gap=incident.monitoring_gap,
        status_text=incident.status_text, links=list(incident.links or []), warnings=warnings,
    )


def _traffic_line(session: Session, incident: Incident) -> str | None:
    from bot import impact
    from bot.postmortem.assemble import impact_window

    start, end = impact_window(session, incident)
    return impact.traffic_line(session, incident, start, end)


def change_line(session: Session, incident: Incident) -> str | None:
    """"Changed 17 min before: bundle v42 by deploy-bot": the service's latest change (hours before
    the incident, or since), and how many more there were."""
    from bot import changes

    opened = as_utc(incident.opened_at)
    found = changes.for_incident(session, incident.service, opened)  # type: ignore[arg-type]
    if not found:
        return None
    line = found[0].line(opened)  # type: ignore[arg-type]
    more = f" (and {len(found) - 1} earlier change{'s' if len(found) > 2 else ''})" if len(found) > 1 else ""
    return line[0].upper() + line[1:] + more


def bundle_line(session: Session, incident: Incident) -> str | None:
    """"v42 (changed vs v41: prompt answer-v41→answer-v42, …)" when bundles are registered."""
    if not incident.service:
        return None
    try:
        from bot import bundles
    except ImportError:  # bundles are optional: a team may not register them
        return None
    live = bundles.live_bundle(session, incident.service, incident.opened_at)
    if live is None:
        return None
    previous = bundles.previous_bundle(session, live)
    if previous is None:
        return live.version
    change = bundles.describe_change(bundles.diff(previous, live))
    return f"{live.version} (changed vs {previous.version}: {change})" if change else live.version
