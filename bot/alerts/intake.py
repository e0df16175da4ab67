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
from typing import Any, Literal

from sqlmodel import Session

from bot import outbox
from bot.alerts.normalize import NormalAlert, Notification
from bot.alerts.severity import severity_from_labels, worst
from bot.alerts.store import AlertKey, AlertStore, EventBatch, IncidentState, KnownAlert
from bot.clock import utcnow
from bot.incidents import lifecycle, service
from bot.models import Incident

Outcome = Literal["opened", "updated", "duplicate", "ignored"]
MAX_LINKS = 12
NAME_LENGTH = 200  # Incident.service and Incident.slo
MONITORING_GAP_TEXT = "Monitoring gap: the alert source reports NoData/Error, so the SLO cannot be evaluated"


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


def ingest(session: Session, note: Notification, rules: IntakeRules, *, now: datetime | None = None,
           events: EventBatch | None = None) -> IngestResult:
    """Write one notification in the session's transaction.

    With ``events``, the timeline and outbox rows are left in that batch for the caller to flush
    before the commit (`bot.alerts.writer` writes a whole batch's in two statements); without,
    they are written before this returns.
    """
    now = now or utcnow()
    store = AlertStore(session)
    group = store.lock_group(note, now)
    current, known = store.read_group(group, note)
    batch = events if events is not None else EventBatch()

    if current is None or not lifecycle.is_open(current.status):
        if all(a.status != "firing" or (a.fingerprint, a.starts_at) in known for a in note.alerts):
            # A resolve for a group we never saw, or a late copy of an episode that already ended.
            _resolve_known_quietly(note, known, now)
            store.write_back(known, now, touch=False)
            return IngestResult("ignored", current.id if current else None)
        incident_id = _open(session, store, batch, group.id, note, rules, now, previous=current)
        added, resolved = _apply_alerts(store, batch, incident_id, group.id, note, known, rules, now)
        if any(a.monitoring_gap for a in note.alerts):  # set on the new row by _open
            batch.add(incident_id, "monitoring_gap", MONITORING_GAP_TEXT, actor=note.source, at=now)
        outcome: Outcome = "opened"
        counts = None
    else:
        incident_id = current.id
        added, resolved = _apply_alerts(store, batch, incident_id, group.id, note, known, rules, now)
        counts = _update_incident(store, batch, current, note, added, resolved, now)
        outcome = "updated" if added or resolved else "duplicate"

    # An alert of this incident seen firing right now rules resolution out without counting rows.
    still_firing = bool(added) or any(row.status == "firing" and row.incident_id == incident_id for row in known.values())
    if outcome != "opened" and not still_firing:
        _maybe_resolve(session, store, batch, incident_id, note, counts, now)
    if events is None:
        batch.flush(session)
    return IngestResult(outcome, incident_id, len(added), resolved)


def _update_incident(store: AlertStore, events: EventBatch, incident: IncidentState, note: Notification,
                     added: list[int], resolved: int, now: datetime) -> dict[str, int] | None:
    """Record what changed on an open incident; an alert fired or resolved also refreshes its card.

    Returns the alert counts when it had to read them (they hold for the rest of the transaction).
    """
    values: dict[str, Any] = {}
    if note.truncated != incident.alerts_unlisted:
        values["alerts_unlisted"] = note.truncated
    if any(a.monitoring_gap for a in note.alerts) and not incident.monitoring_gap:
        values["monitoring_gap"] = True
        events.add(incident.id, "monitoring_gap", MONITORING_GAP_TEXT, actor=note.source, at=now, echo=True)
    if not (added or resolved):
        store.update_incident(incident.id, values)
        return None
    if worst(added, incident.severity) < incident.severity:
        values["severity"] = worst(added, incident.severity)
    values["updated_at"] = utcnow()
    counts = store.update_incident_and_count(incident.id, values)
    summary = _change_summary(len(added), resolved, counts, note.truncated)
    events.add(incident.id, "alerts_changed", summary, actor=note.source, at=now, echo=True)
    # `service.refresh_card` without its ORM object (updated_at is set above), after the events' lines.
    events.queue(outbox.Effect("slack.card", {"incident_id": incident.id}, incident_id=incident.id))
    return counts


def _resolve_known_quietly(note: Notification, known: dict[AlertKey, KnownAlert], now: datetime) -> None:
    for alert in note.alerts:
        row = known.get((alert.fingerprint, alert.starts_at))
        if row is not None and row.status == "firing" and alert.status == "resolved":
            row.status, row.ends_at, row.changed = "resolved", alert.ends_at or now, True


def _open(session: Session, store: AlertStore, events: EventBatch, group_id: int, note: Notification,
          rules: IntakeRules, now: datetime, previous: IncidentState | None) -> int:
    firing = [a for a in note.alerts if a.status == "firing"] or note.alerts
    labels = note.common_labels or firing[0].labels
    annotations = note.common_annotations or firing[0].annotations
    severity = worst((severity_from_labels(a.labels, rules.severity_map, rules.default_severity) for a in firing),
                     rules.default_severity)
    runbook_id, override = rules.choose_runbook(labels, annotations) if rules.choose_runbook else (None, None)
    monitoring_gap = any(a.monitoring_gap for a in note.alerts)
    title = _title(labels, annotations, firing[0])
    service_name = _column_value(labels.get("service") or labels.get("sloth_service") or labels.get("job"))
    incident_id = store.insert_incident({
        "title": title, "status": lifecycle.TRIGGERED, "severity": override or severity, "service": service_name,
        "slo": _column_value(labels.get("slo") or labels.get("sloth_slo")),
        "group_id": group_id, "source": note.source, "labels": labels, "annotations": annotations,
        "links": _links(note), "runbook_id": runbook_id, "opened_at": now, "updated_at": now,
        "previous_incident_id": previous.id if previous else None,
        "alerts_unlisted": note.truncated, "monitoring_gap": monitoring_gap,
    })
    store.set_current_incident(group_id, incident_id)
    text = f"Incident opened from {note.source}: {title}"
    if previous is not None:
        text += f" (re-fired after incident #{previous.id} ended)"
        events.add(previous.id, "refired", f"The alert group fired again as incident #{incident_id}",
                   actor=note.source, at=now)
    events.add(incident_id, "opened", text, actor=note.source, at=now)
    for effect in service.open_room_effects(session, incident_id, service_name, opened_at=now):
        events.queue(effect)  # the room's rows come first among the new incident's
    return incident_id


def _apply_alerts(store: AlertStore, events: EventBatch, incident_id: int, group_id: int, note: Notification,
                  known: dict[AlertKey, KnownAlert], rules: IntakeRules, now: datetime) -> tuple[list[int], int]:
    """Update the known alerts, insert the new ones: ``(severities of new firing alerts, alerts resolved)``."""
    new: dict[AlertKey, NormalAlert] = {}
    resolved = 0
    for alert in note.alerts:
        key = (alert.fingerprint, alert.starts_at)
        row = known.get(key)
        if row is None:
            new.setdefault(key, alert)  # listed twice, inserted once: the first copy wins, as before
            continue
        row.seen = True
        if row.annotations != alert.annotations:
            row.annotations, row.changed = alert.annotations, True
        if row.status == "firing" and alert.status == "resolved":
            # A resolved episode never fires again: a re-fire has a new startsAt and a new row.
            row.status, row.ends_at, row.changed = "resolved", alert.ends_at or now, True
            resolved += 1
            events.add(incident_id, "alert_resolved", f"Alert resolved: {_describe(alert)}", actor=note.source,
                       at=row.ends_at, data={"fingerprint": alert.fingerprint})
    store.write_back(known, now, touch=True)

    severity = {key: severity_from_labels(a.labels, rules.severity_map, rules.default_severity) for key, a in new.items()}
    inserted = store.insert_alerts([_alert_row(incident_id, group_id, a, severity[key], now) for key, a in new.items()])
    added: list[int] = []
    for key, alert in new.items():
        if key not in inserted:
            continue  # another delivery inserted it first
        if alert.status == "firing":
            added.append(severity[key])
        verb = "fired" if alert.status == "firing" else "resolved"
        events.add(incident_id, f"alert_{verb}", f"Alert {verb}: {_describe(alert)}", actor=note.source,
                   at=alert.starts_at if verb == "fired" else (alert.ends_at or now),
                   data={"fingerprint": alert.fingerprint})
    return added, resolved


def _alert_row(incident_id: int, group_id: int, alert: NormalAlert, severity: int, now: datetime) -> dict[str, Any]:
    return {
        "group_id": group_id, "incident_id": incident_id, "fingerprint": alert.fingerprint,
        "starts_at": alert.starts_at, "ends_at": alert.ends_at if alert.status == "resolved" else None,
        "status": alert.status, "severity": severity, "labels": alert.labels, "annotations": alert.annotations,
        "generator_url": alert.generator_url or None, "extra": alert.extra, "monitoring_gap": alert.monitoring_gap,
        "first_seen_at": now, "last_seen_at": now,
    }


def _change_summary(added: int, resolved: int, counts: dict[str, int], truncated: int) -> str:
    parts = [f"{added} new alert(s) firing"] if added else []
    parts += [f"{resolved} alert(s) resolved"] if resolved else []
    summary = f"{', '.join(parts)} — now {counts['firing']} firing, {counts['resolved']} resolved"
    return summary + (f", {truncated} not listed by Alertmanager" if truncated else "")


def _maybe_resolve(session: Session, store: AlertStore, events: EventBatch, incident_id: int, note: Notification,
                   counts: dict[str, int] | None, now: datetime) -> None:
    if note.truncated:
        return  # a truncated payload may hide alerts that still fire
    counts = counts or store.alert_counts(incident_id)
    if counts["firing"] == 0 and counts["resolved"] > 0:
        events.flush(session)  # `service.resolve` writes its timeline and outbox rows after the batch's
        # Read afresh: this notification changed the row with Core statements, not through the ORM.
        incident = session.get(Incident, incident_id, populate_existing=True)
        assert incident is not None
        service.resolve(session, incident, actor=note.source, summary=None, at=now)


def _title(labels: dict[str, str], annotations: dict[str, str], alert: NormalAlert) -> str:
    for key in ("title", "summary"):
        text = annotations.get(key) or alert.annotations.get(key)
        if text:
            return text.strip()[:300]
    name = labels.get("alertname") or alert.labels.get("alertname") or "Alert"
    where = [v for v in (labels.get("service") or labels.get("sloth_service"), labels.get("slo") or labels.get("sloth_slo")) if v]
    return f"{name} ({' · '.join(where)})" if where else name


def _column_value(text: str | None) -> str | None:
    # The columns are VARCHAR(200): PostgreSQL refuses a longer label value, which would make a
    # valid notification a 500 that Alertmanager retries for ever.
    return text[:NAME_LENGTH] if text else text


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
