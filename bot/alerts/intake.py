"""Turn a validated notification into durable incident state, exactly once.

Identity: the incident is keyed on the payload's ``groupKey``; an alert on
``(group, fingerprint, startsAt)``. The group row is taken with ``FOR UPDATE`` (SQLite: the
``BEGIN IMMEDIATE`` writer lock) so two copies of one notification arriving together at two
processes serialise on it, and alert rows go in with INSERT … ON CONFLICT DO NOTHING against the
unique constraint, so a duplicate delivery changes nothing and announces nothing.

Rules a user relies on (see README "Alert intake"):
* per-alert status comes from each alert, never from the payload's top-level status;
* an incident resolves only when every alert it knows is resolved and the payload is complete
  (``truncatedAlerts == 0``);
* a resolved notification for a group with no open incident is accepted and ignored;
* a new episode (new ``startsAt``) of a group whose incident ended opens a new incident that
  points at the previous one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import select
from sqlmodel import Session

from bot.alerts.normalize import NormalAlert, Notification
from bot.alerts.severity import severity_from_labels, worst
from bot.clock import as_utc, utcnow
from bot.db import insert_or_ignore
from bot.incidents import lifecycle, service, timeline
from bot.models import Alert, AlertGroup, Incident

Outcome = Literal["opened", "updated", "duplicate", "ignored"]
MAX_LINKS = 12


@dataclass
class IntakeRules:
    severity_map: dict[str, int]
    default_severity: int = 3
    # (labels, annotations) -> (runbook id, severity override or None)
    choose_runbook: Callable[[dict[str, str], dict[str, str]], tuple[str | None, int | None]] | None = None


@dataclass
class IngestResult:
    outcome: Outcome
    incident_id: int | None
    new_alerts: int = 0
    resolved_alerts: int = 0


def ingest(session: Session, note: Notification, rules: IntakeRules, *, now: datetime | None = None) -> IngestResult:
    now = now or utcnow()
    group = _locked_group(session, note, now)
    known = _known_alerts(session, group.id, note)
    incident = session.get(Incident, group.current_incident_id) if group.current_incident_id else None
    new_firing = [a for a in note.alerts if a.status == "firing" and (a.fingerprint, a.starts_at) not in known]

    opened = False
    if incident is None or not lifecycle.is_open(incident.status):
        if not new_firing:
            # A resolve for a group we never saw, or a late copy of an episode that already ended.
            _update_known_quietly(note, known, now)
            return IngestResult("ignored", incident.id if incident else None)
        incident = _open(session, group, note, rules, now, previous=incident)
        opened = True

    added, resolved = _apply_alerts(session, incident, group, note, known, rules, now)
    incident.alerts_unlisted = note.truncated
    if any(a.monitoring_gap for a in note.alerts) and not incident.monitoring_gap:
        incident.monitoring_gap = True
        timeline.record(session, incident, "monitoring_gap", "Monitoring gap: the alert source reports NoData/Error, "
                        "so the SLO cannot be evaluated", actor=note.source, at=now, echo=not opened)

    if not opened and (added or resolved):
        counts = service.alert_counts(session, incident.id)
        parts = [f"{len(added)} new alert(s) firing"] if added else []
        parts += [f"{len(resolved)} alert(s) resolved"] if resolved else []
        summary = f"{', '.join(parts)} — now {counts['firing']} firing, {counts['resolved']} resolved"
        if note.truncated:
            summary += f", {note.truncated} not listed by Alertmanager"
        timeline.record(session, incident, "alerts_changed", summary, actor=note.source, at=now, echo=True)
        incident.severity = min(incident.severity, worst((a.severity for a in added), incident.severity))
        service.refresh_card(session, incident)

    _maybe_resolve(session, incident, note, now)
    if opened:
        return IngestResult("opened", incident.id, len(added), len(resolved))
    return IngestResult("updated" if added or resolved else "duplicate", incident.id, len(added), len(resolved))


def _locked_group(session: Session, note: Notification, now: datetime) -> AlertGroup:
    insert_or_ignore(session, AlertGroup, {
        "source": note.source, "group_key_hash": note.group_key_hash, "group_key": note.group_key,
        "group_labels": note.group_labels, "created_at": now,
    }, ["group_key_hash"])
    stmt = select(AlertGroup).where(AlertGroup.group_key_hash == note.group_key_hash).with_for_update()
    return session.execute(stmt).scalar_one()


def _known_alerts(session: Session, group_id: int | None, note: Notification) -> dict[tuple[str, datetime], Alert]:
    fingerprints = {a.fingerprint for a in note.alerts}
    rows = session.execute(select(Alert).where(Alert.group_id == group_id, Alert.fingerprint.in_(fingerprints))).scalars()
    return {(row.fingerprint, as_utc(row.starts_at)): row for row in rows}  # type: ignore[misc]


def _update_known_quietly(note: Notification, known: dict[tuple[str, datetime], Alert], now: datetime) -> None:
    for alert in note.alerts:
        row = known.get((alert.fingerprint, alert.starts_at))
        if row is not None and row.status == "firing" and alert.status == "resolved":
            row.status, row.ends_at, row.last_seen_at = "resolved", alert.ends_at or now, now


def _open(session: Session, group: AlertGroup, note: Notification, rules: IntakeRules, now: datetime,
          previous: Incident | None) -> Incident:
    firing = [a for a in note.alerts if a.status == "firing"] or note.alerts
    labels = note.common_labels or firing[0].labels
    annotations = note.common_annotations or firing[0].annotations
    severity = worst((severity_from_labels(a.labels, rules.severity_map, rules.default_severity) for a in firing),
                     rules.default_severity)
    runbook_id, override = rules.choose_runbook(labels, annotations) if rules.choose_runbook else (None, None)
    incident = Incident(
        title=_title(labels, annotations, firing[0]),
        status=lifecycle.TRIGGERED,
        severity=override or severity,
        service=labels.get("service") or labels.get("sloth_service") or labels.get("job"),
        slo=labels.get("slo") or labels.get("sloth_slo"),
        group_id=group.id, source=note.source, labels=labels, annotations=annotations,
        links=_links(note), runbook_id=runbook_id, opened_at=now, updated_at=now,
        previous_incident_id=previous.id if previous else None,
    )
    session.add(incident)
    session.flush()
    group.current_incident_id = incident.id
    text = f"Incident opened from {note.source}: {incident.title}"
    if previous is not None:
        text += f" (re-fired after incident #{previous.id} ended)"
        timeline.record(session, previous, "refired", f"The alert group fired again as incident #{incident.id}",
                        actor=note.source, at=now)
    timeline.record(session, incident, "opened", text, actor=note.source, at=now)
    service.open_room(session, incident)
    return incident


def _apply_alerts(session: Session, incident: Incident, group: AlertGroup, note: Notification,
                  known: dict[tuple[str, datetime], Alert], rules: IntakeRules,
                  now: datetime) -> tuple[list[Alert], list[Alert]]:
    added: list[Alert] = []
    resolved: list[Alert] = []
    for alert in note.alerts:
        row = known.get((alert.fingerprint, alert.starts_at))
        if row is None:
            row = _insert_alert(session, incident, group, alert, rules, now)
            if row is None:
                continue  # another delivery inserted it first
            added.append(row) if alert.status == "firing" else None
            verb = "fired" if alert.status == "firing" else "resolved"
            timeline.record(session, incident, f"alert_{verb}", f"Alert {verb}: {_describe(alert)}",
                            actor=note.source, at=alert.starts_at if verb == "fired" else (alert.ends_at or now),
                            data={"fingerprint": alert.fingerprint})
            continue
        row.last_seen_at = now
        if row.annotations != alert.annotations:
            row.annotations = alert.annotations
        if row.status == "firing" and alert.status == "resolved":
            # A resolved episode never fires again: a re-fire has a new startsAt and a new row.
            row.status, row.ends_at = "resolved", alert.ends_at or now
            resolved.append(row)
            timeline.record(session, incident, "alert_resolved", f"Alert resolved: {_describe(alert)}",
                            actor=note.source, at=row.ends_at, data={"fingerprint": alert.fingerprint})
    return added, resolved


def _insert_alert(session: Session, incident: Incident, group: AlertGroup, alert: NormalAlert,
                  rules: IntakeRules, now: datetime) -> Alert | None:
    alert_id = insert_or_ignore(session, Alert, {
        "group_id": group.id, "incident_id": incident.id, "fingerprint": alert.fingerprint,
        "starts_at": alert.starts_at, "ends_at": alert.ends_at if alert.status == "resolved" else None,
        "status": alert.status, "severity": severity_from_labels(alert.labels, rules.severity_map, rules.default_severity),
        "labels": alert.labels, "annotations": alert.annotations, "generator_url": alert.generator_url or None,
        "extra": alert.extra, "monitoring_gap": alert.monitoring_gap, "first_seen_at": now, "last_seen_at": now,
    }, ["group_id", "fingerprint", "starts_at"])
    return session.get(Alert, alert_id) if alert_id is not None else None


def _maybe_resolve(session: Session, incident: Incident, note: Notification, now: datetime) -> None:
    if not lifecycle.is_open(incident.status) or note.truncated:
        return  # a truncated payload may hide alerts that still fire
    counts = service.alert_counts(session, incident.id)
    if counts["firing"] == 0 and counts["resolved"] > 0:
        service.resolve(session, incident, actor=note.source, summary=None, at=now)


def _title(labels: dict[str, str], annotations: dict[str, str], alert: NormalAlert) -> str:
    for key in ("title", "summary"):
        text = annotations.get(key) or alert.annotations.get(key)
        if text:
            return text.strip()[:300]
    name = labels.get("alertname") or alert.labels.get("alertname") or "Alert"
    where = [v for v in (labels.get("service") or labels.get("sloth_service"), labels.get("slo") or labels.get("sloth_slo")) if v]
    return f"{name} ({' · '.join(where)})" if where else name


def _describe(alert: NormalAlert) -> str:
    name = alert.labels.get("alertname", "alert")
    keys = [k for k in ("model", "instance", "service", "sloth_severity", "severity") if k in alert.labels]
    detail = ", ".join(f"{k}={alert.labels[k]}" for k in keys[:3])
    return f"{name} {{{detail}}}" if detail else name


def _links(note: Notification) -> list[dict[str, str]]:
    links: list[dict[str, str]] = []
    seen: set[str] = set()

    def add(title: str, url: str) -> None:
        if url and url.startswith(("http://", "https://")) and url not in seen and len(links) < MAX_LINKS:
            seen.add(url)
            links.append({"title": title, "url": url})

    for alert in note.alerts:
        add("Runbook", alert.annotations.get("runbook_url", ""))
        add("Dashboard", str(alert.extra.get("dashboardURL", "")))
        add("Panel", str(alert.extra.get("panelURL", "")))
        add("Source query", alert.generator_url)
        add("Silence", str(alert.extra.get("silenceURL", "")))
    return links
