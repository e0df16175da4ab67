"""Turn a validated notification into durable incident state, exactly once.

Identity: the incident is keyed on the payload's ``groupKey``; an alert on
``(group, fingerprint, startsAt)``. The group row is locked by an upsert (SQLite: the
``BEGIN IMMEDIATE`` writer lock) so two copies of one notification arriving together at two
processes serialise on it, and alert rows go in with INSERT … ON CONFLICT DO NOTHING against the
unique constraint, so a duplicate delivery changes nothing and announces nothing.

A transaction can hold many notifications (`ingest_many`, which the writer's group commit uses):
their groups are locked and read together, each notification is applied in order to its group's
state in memory, and the rows are written together (`bot.alerts.store`).

Rules a user relies on (see README "Alert intake"):
* per-alert status comes from each alert, never from the payload's top-level status;
* an incident resolves only when every alert it knows is resolved and the payload is complete
  (``truncatedAlerts == 0``);
* a resolved notification for a group with no open incident is accepted and ignored;
* a new episode (new ``startsAt``) of a group whose incident ended opens a new incident that
  points at the previous one;
* a copy of an old notification is answered with the incident its alerts belong to;
* an incident resolves at its alerts' own end (``endsAt``), not when the notification came;
* a test notification (`Notification.is_test`) opens nothing: it queues a line for the
  incidents channel.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import func, select
from sqlmodel import Session, col

from bot.alerts import correlation
from bot.alerts.correlation import CorrelationRules, StormCounts
from bot.alerts.normalize import NormalAlert, Notification
from bot.alerts.severity import severity_from_labels, worst
from bot.alerts.store import AlertKey, AlertStore, GroupState, IncidentState, KeyState, KnownAlert, PendingWrites
from bot.clock import as_utc, utcnow
from bot.effects import PostNotice
from bot.incidents import lifecycle, service
from bot.releases import changes
from bot.store import changeset, outbox
from bot.store.models import Alert, Incident

Outcome = Literal["opened", "joined", "updated", "duplicate", "ignored", "test"]
MAX_LINKS = 12
MAX_CHANGES_SHOWN = 5  # the service's latest changes before a new incident, on its timeline
NAME_LENGTH = 200  # Incident.service and Incident.slo
MONITORING_GAP_TEXT = "Monitoring gap: the alert source reports NoData/Error, so the SLO cannot be evaluated"
CANNOT_SELF_RESOLVE = "cannot_self_resolve"  # the timeline kind the card shows as a warning (`bot.slack.views`)
CANNOT_SELF_RESOLVE_TEXT = (
    "This incident cannot resolve by itself: {source} truncated the group ({unlisted} alert(s) not listed), "
    "and the notification that ends a truncated group is truncated too. {remedy}")
_SOURCE_NAMES = {"alertmanager": "Alertmanager", "grafana": "Grafana"}
_REMEDY = {
    "alertmanager": "Set WARROOM_ALERTMANAGER_URL so warroom asks Alertmanager which alerts are still active, "
                    "or resolve it by hand.",
    "grafana": "Resolve it by hand once Grafana shows the alerts resolved, or raise the contact point's "
               "max alerts.",
}


@dataclass
class IntakeRules:
    severity_map: dict[str, int]
    default_severity: int = 3
    # (labels, annotations) -> (runbook id, severity override or None)
    choose_runbook: Callable[[dict[str, str], dict[str, str]], tuple[str | None, int | None]] | None = None
    # WARROOM_ALERTMANAGER_URL is set: truncated groups are reconciled against its API
    # (`bot.alerts.reconcile`); without it such an incident cannot resolve by itself, and says so.
    alertmanager_api: bool = False
    # (runbook id) -> whether its `auto:` rules are to be considered for a new incident (bot.automation)
    automatic: Callable[[str | None], bool] | None = None
    # Correlation and storm mode (`bot.alerts.correlation`); None: every group opens its own incident.
    correlation: CorrelationRules | None = None
    # (runbook id) -> the runbook's own correlation key (`correlate:`), None: the rules' keys
    runbook_keys: Callable[[str | None], tuple[str, ...] | None] | None = None

    def keys_for(self, runbook_id: str | None) -> tuple[str, ...]:
        own = self.runbook_keys(runbook_id) if self.runbook_keys else None
        return own if own is not None else (self.correlation.keys if self.correlation else ())


@dataclass
class _Opening:
    """What a notification would open an incident with: its labels, runbook and correlation key."""

    labels: dict[str, str]
    annotations: dict[str, str]
    firing: list[NormalAlert]
    runbook_id: str | None
    severity_override: int | None
    service: str | None
    key: str | None


@dataclass
class IngestResult:
    outcome: Outcome
    incident_id: int | None
    new_alerts: int = 0
    resolved_alerts: int = 0


def ingest(session: Session, note: Notification, rules: IntakeRules, *, now: datetime | None = None) -> IngestResult:
    """Write one notification in the session's transaction."""
    return ingest_many(session, [note], rules, now=now)[0]


def ingest_many(session: Session, notes: list[Notification], rules: IntakeRules, *,
                now: datetime | None = None, commit: bool = False) -> list[IngestResult]:
    """Write notifications in the session's transaction; each one's result, in ``notes`` order.
    With ``commit``, commit it with the last writes (on PostgreSQL, in their round trip).

    The result is the one a transaction per notification, in this order, would give: a group's
    state is read once, under its lock, and each notification applies to it as the ones before
    left it. Rows are written at the end, a statement for each kind (`PendingWrites`, and the
    timeline and outbox rows through the transaction's change set, `bot.store.changeset`, which
    `service.resolve` appends to as well); a resolve writes the batch's rows so far first, since
    it loads the incident through the ORM.
    """
    if not notes:
        return []
    store = AlertStore(session)
    batch = _Batch(session, store, rules)
    real = [note for note in notes if not note.is_test]
    groups: dict[int, GroupState] = {}
    group_ids: dict[str, int] = {}
    if real:
        group_ids = store.lock_groups(real, now or utcnow())
        groups = store.read_groups(sorted(set(group_ids.values())),
                                   {alert.fingerprint for note in real for alert in note.alerts})
        batch.groups = groups
        batch.lock_keys([note for note in real if _may_open(groups[group_ids[note.group_key_hash]])])
    results = [batch.test(note) if note.is_test else batch.ingest(groups[group_ids[note.group_key_hash]], note,
                                                                  now or utcnow())
               for note in notes]
    batch.flush(commit=commit)
    return results


class _Batch:
    """The notifications of one transaction, applied one after another to their groups' state."""

    def __init__(self, session: Session, store: AlertStore, rules: IntakeRules) -> None:
        self.session, self.store, self.rules = session, store, rules
        self.writes = PendingWrites()
        self.changeset = changeset.of(session)
        self.openings: dict[int, _Opening] = {}  # by id(note)
        self.keys: dict[str, KeyState] = {}
        self.groups: dict[int, GroupState] = {}
        self.storm_counts: StormCounts | None = None

    def opening(self, note: Notification) -> _Opening:
        found = self.openings.get(id(note))
        if found is None:
            rules = self.rules
            firing = [a for a in note.alerts if a.status == "firing"] or note.alerts
            labels = note.common_labels or firing[0].labels
            annotations = note.common_annotations or firing[0].annotations
            runbook_id, override = rules.choose_runbook(labels, annotations) if rules.choose_runbook else (None, None)
            key = correlation.key_of(labels, rules.keys_for(runbook_id)) if rules.correlation else None
            service_name = _column_value(correlation.label_value(labels, "service"))
            found = self.openings[id(note)] = _Opening(labels, annotations, firing, runbook_id, override,
                                                       service_name, key)
        return found

    def lock_keys(self, notes: list[Notification]) -> None:
        """Lock the correlation keys (and storm keys) of the notifications that may open an
        incident, after the groups' locks (`AlertStore.lock_keys`)."""
        rules = self.rules.correlation
        if rules is None or not notes:
            return
        wanted: set[str] = set()
        for note in notes:
            opening = self.opening(note)
            if opening.key:
                wanted.add(opening.key)
            if rules.storms:
                wanted.add(correlation.storm_key(opening.service))
        known = {g.incident.id: g.incident for g in self.groups.values() if g.incident is not None}
        self.keys = self.store.lock_keys(wanted, known)

    def flush(self, commit: bool = False) -> None:
        # One pipeline: on PostgreSQL the writes wait for nothing but the events' ids (the echo
        # lines' outbox rows need them), so they cost two round trips, not one per statement,
        # and the COMMIT goes in the second.
        with self.store.sql.pipeline():
            adopt_alert_ids = self.writes.flush(self.store.sql)
            changeset.flush(self.session, self.store.sql)
            if commit:
                self.session.commit()
        adopt_alert_ids()

    def test(self, note: Notification) -> IngestResult:
        """A test notification: a line for the incidents channel (a copy of it: the same line)."""
        source = _SOURCE_NAMES.get(note.source, note.source)
        # Alertmanager sends the receiver's name through regexp.QuoteMeta (`llm\.slo-bot`).
        name = re.sub(r"\\(.)", r"\1", note.receiver) if note.source == "alertmanager" else note.receiver
        receiver = f" (receiver {name[:80]})" if name else ""
        text = f"Test notification received from {source}{receiver}: {len(note.alerts)} alert(s), no incident opened."
        starts = ",".join(sorted({a.starts_at.isoformat() for a in note.alerts}))
        key = "test:" + hashlib.sha256(f"{note.group_key_hash}:{starts}".encode()).hexdigest()
        self.changeset.effect(outbox.Queued(PostNotice(text=text), key=key))
        return IngestResult("test", None)

    def ingest(self, group: GroupState, note: Notification, now: datetime) -> IngestResult:
        current = group.incident
        owner = _owner(group, note)
        if current is None or not lifecycle.is_open(current.status):
            if all(a.status != "firing" or (a.fingerprint, a.starts_at) in group.known for a in note.alerts):
                # A resolve for a group we never saw, or a late copy of an episode that already ended.
                self._resolve_known_quietly(group, note, now)
                return IngestResult("ignored", owner or (current.id if current else None))
            target = self._correlated(note, now)
            if target is not None:
                return self._join(group, note, target, now, previous=current)
            incident = self._open(group, note, now, previous=current)
            added, resolved = self._apply_alerts(group, incident, note, now)
            if any(a.monitoring_gap for a in note.alerts):  # set on the new row by _open
                self.changeset.event(incident.id, "monitoring_gap", MONITORING_GAP_TEXT, actor=note.source, at=now)
            if note.truncated:
                self._cannot_self_resolve(incident.id, note, now)
            return IngestResult("opened", incident.id, len(added), resolved)

        added, resolved = self._apply_alerts(group, current, note, now)
        self._update_incident(group, note, added, resolved, now)
        # a truncated payload may hide alerts that still fire
        if not note.truncated and group.firing == 0 and group.resolved > 0:
            self._group_resolved(group, note, now, announce=bool(resolved))
        return IngestResult("updated" if added or resolved else "duplicate", owner or current.id, len(added), resolved)

    def _correlated(self, note: Notification, now: datetime) -> KeyState | None:
        """The key whose open incident the notification's group joins, or None: it opens its own.
        In storm mode a group that matches no incident joins its service's storm incident, which
        the first such group opens."""
        rules = self.rules.correlation
        if rules is None:
            return None
        opening = self.opening(note)
        key = self.keys.get(opening.key) if opening.key else None
        if key is not None and key.live(now, rules.window):
            return key
        if not rules.storms:
            return None
        storm = self.keys.get(correlation.storm_key(opening.service))
        if storm is None:  # its group's incident ended earlier in this batch: keys were not locked for it
            return None
        if storm.live(now, rules.storm_quiet):
            return storm
        if self.storm_counts is None:
            self.storm_counts = self.store.storm_counts(now, rules.storm_window, rules.storm_service_window)
        if not self.storm_counts.storming(rules, opening.service):
            return None
        storm.incident = self._open_storm(note, opening, now)
        return storm

    def _join(self, group: GroupState, note: Notification, key: KeyState, now: datetime,
              previous: IncidentState | None) -> IngestResult:
        """The group joins ``key``'s incident: its alerts go there, one line says so in the channel."""
        incident = key.incident
        assert incident is not None
        group.attach(incident)
        self.writes.set_current_incident(group.id, incident.id)
        key.joined_at = now
        self.writes.correlate(key)
        added, resolved = self._apply_alerts(group, incident, note, now)
        name = correlation.group_name(self.opening(note).labels)
        text = f"Alert group joined: {name} from {_SOURCE_NAMES.get(note.source, note.source)}, " \
               f"{len(added)} alert(s) firing"
        if previous is not None:
            text += f" (it fired before as incident #{previous.id})"
            self.changeset.event(previous.id, "refired",
                                 f"The alert group fired again and joined incident #{incident.id}",
                                 actor=note.source, at=now)
        self.changeset.event(incident.id, "group_joined", text, actor=note.source, at=now, echo=True,
                             data={"group_id": group.id, "name": name})
        self._update_incident(group, note, added, 0, now, joined=True)
        return IngestResult("joined", incident.id, len(added), resolved)

    def _group_resolved(self, group: GroupState, note: Notification, now: datetime, announce: bool) -> None:
        """The group's alerts have all resolved: the incident resolves unless another of its
        groups still fires (correlation gave it more than one)."""
        incident = group.incident
        assert incident is not None
        self.flush()  # the batch's rows of the incident's other groups, before asking about them
        if not self.store.others_active(incident.id, group.id):
            self._resolve(incident, note, now)
            return
        if not announce:
            return
        name = correlation.group_name(note.common_labels or note.alerts[0].labels)
        self.changeset.event(incident.id, "group_resolved",
                             f"Alert group resolved: {name}; the incident stays open while its other groups fire",
                             actor=note.source, at=now, echo=True, data={"group_id": group.id, "name": name})

    def _update_incident(self, group: GroupState, note: Notification, added: list[int], resolved: int,
                         now: datetime, joined: bool = False) -> None:
        """Record what changed on an open incident; an alert fired or resolved, or a group that
        joined, also refreshes its card."""
        incident = group.incident
        assert incident is not None
        values: dict[str, Any] = {}
        if note.truncated != group.alerts_unlisted:
            if note.truncated and not group.alerts_unlisted:
                self._cannot_self_resolve(incident.id, note, now)
            group.alerts_unlisted = note.truncated
            self.writes.set_group_unlisted(group.id, note.truncated)
        if note.truncated != incident.alerts_unlisted:
            values["alerts_unlisted"] = incident.alerts_unlisted = note.truncated
        if any(a.monitoring_gap for a in note.alerts) and not incident.monitoring_gap:
            values["monitoring_gap"] = incident.monitoring_gap = True
            self.changeset.event(
                incident.id, "monitoring_gap", MONITORING_GAP_TEXT, actor=note.source, at=now, echo=True
            )
        if added or resolved or joined:
            if worst(added, incident.severity) < incident.severity:
                values["severity"] = incident.severity = worst(added, incident.severity)
            values["updated_at"] = utcnow()
            if not joined:  # a join says so in its own line
                summary = _change_summary(len(added), resolved, group, note.truncated)
                self.changeset.event(incident.id, "alerts_changed", summary, actor=note.source, at=now, echo=True)
            # `service.refresh_card` without its ORM object (updated_at is set above), after the events' lines.
            self.changeset.effect(service.card_effect(incident.id))
        self.writes.update_incident(incident.id, values)

    def _cannot_self_resolve(self, incident_id: int, note: Notification, now: datetime) -> None:
        """A truncated group never sends a complete "all resolved": say so, unless Alertmanager's
        API is there to ask (`bot.alerts.reconcile`; Grafana's needs credentials warroom lacks)."""
        if note.source not in _REMEDY or (note.source == "alertmanager" and self.rules.alertmanager_api):
            return
        text = CANNOT_SELF_RESOLVE_TEXT.format(source=_SOURCE_NAMES[note.source],
                                               unlisted=note.truncated, remedy=_REMEDY[note.source])
        self.changeset.event(incident_id, CANNOT_SELF_RESOLVE, text, actor=note.source, at=now, echo=True)

    def _resolve_known_quietly(self, group: GroupState, note: Notification, now: datetime) -> None:
        for alert in note.alerts:
            row = group.known.get((alert.fingerprint, alert.starts_at))
            if row is not None and row.status == "firing" and alert.status == "resolved":
                row.status, row.ends_at = "resolved", alert.ends_at or now
                group.recount(row, was="firing")
                self.writes.change_alert(row, now)

    def _open(self, group: GroupState, note: Notification, now: datetime,
              previous: IncidentState | None) -> IncidentState:
        opening = self.opening(note)
        incident = self._insert_incident(note, opening, now, title=_title(opening.labels, opening.annotations,
                                                                           opening.firing[0]),
                                         group_id=group.id, previous=previous)
        group.attach(incident)
        self.writes.set_current_incident(group.id, incident.id)
        key = self.keys.get(opening.key) if opening.key else None
        if key is not None:  # later groups with the key join it
            key.incident, key.joined_at = incident, now
            self.writes.correlate(key)
        if self.storm_counts is not None:
            self.storm_counts.opened(opening.service)
        return incident

    def _open_storm(self, note: Notification, opening: _Opening, now: datetime) -> IncidentState:
        """The service's storm incident; the group that started it joins it like the ones after."""
        rules = self.rules.correlation
        assert rules is not None and self.storm_counts is not None
        title = f"Alert storm: {opening.service or 'alerts without a service label'}"
        incident = self._insert_incident(note, opening, now, title=title, group_id=None, previous=None, storm=True)
        self.changeset.event(
            incident.id, "storm",
            f"Storm mode: {self.storm_counts.workspace} new incident(s) in {_minutes(rules.storm_window)}, "
            f"{self.storm_counts.by_service.get(opening.service, 0)} for this service in "
            f"{_minutes(rules.storm_service_window)}. Further alert groups of this service join this incident "
            f"until none has come for {_minutes(rules.storm_quiet)}.",
            actor="warroom", at=now, echo=True)
        return incident

    def _insert_incident(self, note: Notification, opening: _Opening, now: datetime, *, title: str,
                         group_id: int | None, previous: IncidentState | None, storm: bool = False) -> IncidentState:
        rules = self.rules
        labels = opening.labels
        severity = worst((severity_from_labels(a.labels, rules.severity_map, rules.default_severity)
                          for a in opening.firing), rules.default_severity)
        monitoring_gap = any(a.monitoring_gap for a in note.alerts)
        service_name = opening.service
        incident = IncidentState(0, lifecycle.TRIGGERED, opening.severity_override or severity, monitoring_gap,
                                 note.truncated)
        incident.id = self.store.insert_incident({
            "title": title, "status": incident.status, "severity": incident.severity, "service": service_name,
            "slo": None if storm else _column_value(correlation.label_value(labels, "slo")),
            "group_id": group_id, "source": note.source, "labels": labels, "annotations": opening.annotations,
            "links": _links(note), "runbook_id": opening.runbook_id, "opened_at": now, "updated_at": now,
            "previous_incident_id": previous.id if previous else None,
            "alerts_unlisted": note.truncated, "monitoring_gap": monitoring_gap, "storm": storm,
        })
        text = f"Incident opened from {note.source}: {title}"
        if previous is not None:
            text += f" (re-fired after incident #{previous.id} ended)"
            self.changeset.event(previous.id, "refired", f"The alert group fired again as incident #{incident.id}",
                               actor=note.source, at=now)
        self.changeset.event(incident.id, "opened", text, actor=note.source, at=now)
        for change in changes.changes_before(self.session, service_name, now)[:MAX_CHANGES_SHOWN]:
            self.changeset.event(
                incident.id, "change", f"Change: {change.line(now)}", actor=change.actor or change.source, at=change.at
            )
        # `service.open_room` without its ORM object, the traces linked with the batch's writes.
        service.queue_room(self.changeset, incident.id,
                           traces_linked=self.writes.link_traces(incident.id, service_name, opened_at=now))
        if rules.automatic is not None and rules.automatic(opening.runbook_id):
            from bot.automation.service import consider_effect
            self.changeset.effect(consider_effect(incident.id))
        return incident

    def _apply_alerts(self, group: GroupState, incident: IncidentState, note: Notification,
                      now: datetime) -> tuple[list[int], int]:
        """Update the known alerts, add the new ones: ``(severities of new firing alerts, alerts resolved)``."""
        rules = self.rules
        new: dict[AlertKey, NormalAlert] = {}
        resolved = 0
        for alert in note.alerts:
            key = (alert.fingerprint, alert.starts_at)
            row = group.known.get(key)
            if row is None:
                new.setdefault(key, alert)  # listed twice, inserted once: the first copy wins, as before
                continue
            changed = row.annotations != alert.annotations
            if changed:
                row.annotations = alert.annotations
            if row.status == "firing" and alert.status == "resolved":
                # A resolved episode never fires again: a re-fire has a new startsAt and a new row.
                row.status, row.ends_at, changed = "resolved", alert.ends_at or now, True
                group.recount(row, was="firing")
                resolved += 1
                # An earlier episode's row belongs to its own incident, and so does the line.
                self.changeset.event(
                    row.incident_id or incident.id,
                    "alert_resolved",
                    f"Alert resolved: {_describe(alert)}",
                    actor=note.source,
                    at=row.ends_at,
                    data={"fingerprint": alert.fingerprint},
                )
            if changed:
                self.writes.change_alert(row, now)
            else:
                self.writes.touch_alert(row, now)

        added: list[int] = []
        for key, alert in new.items():
            severity = severity_from_labels(alert.labels, rules.severity_map, rules.default_severity)
            values = _alert_row(incident.id, group.id, alert, severity, now)
            known = group.known[key] = KnownAlert(None, incident.id, values["status"], values["ends_at"],
                                                  alert.annotations, now, pending=values)
            group.recount(known, was=None)
            self.writes.insert_alert(known)
            if alert.status == "firing":
                added.append(severity)
            verb = "fired" if alert.status == "firing" else "resolved"
            self.changeset.event(incident.id, f"alert_{verb}", f"Alert {verb}: {_describe(alert)}", actor=note.source,
                               at=alert.starts_at if verb == "fired" else (alert.ends_at or now),
                               data={"fingerprint": alert.fingerprint})
        return added, resolved

    def _resolve(self, incident: IncidentState, note: Notification, now: datetime) -> None:
        self.flush()  # `service.resolve` writes its rows through the ORM, after the batch's so far
        # Read afresh: the batch changed the row with Core statements, not through the ORM.
        row = self.session.get(Incident, incident.id, populate_existing=True)
        assert row is not None
        service.resolve(self.session, row, actor=note.source, summary=None, at=_resolved_at(self.session, row, now))
        self.session.flush()
        self.session.expunge_all()  # later notifications read rows, not the ORM object
        incident.status = row.status


def _may_open(group: GroupState) -> bool:
    return group.incident is None or not lifecycle.is_open(group.incident.status)


def _minutes(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes} min"


def _owner(group: GroupState, note: Notification) -> int | None:
    """The incident a notification's alerts belong to, when they are all known and belong to one
    (a replayed old notification: it names its own incident, not the group's current one)."""
    owners = set()
    for alert in note.alerts:
        row = group.known.get((alert.fingerprint, alert.starts_at))
        if row is None or row.incident_id is None:
            return None
        owners.add(row.incident_id)
    return owners.pop() if len(owners) == 1 else None


def _resolved_at(session: Session, incident: Incident, now: datetime) -> datetime:
    """When the incident's last alert ended, by its source's clock (``endsAt``): a resolved
    notification comes up to a ``group_interval`` later. Never before the incident opened (its
    MTTR would be negative) nor after ``now``."""
    last_end = as_utc(session.execute(select(func.max(col(Alert.ends_at)))
                                      .where(col(Alert.incident_id) == incident.id)).scalar())
    opened = as_utc(incident.opened_at)
    if last_end is None or last_end > now:
        return now
    return max(last_end, opened)


def _alert_row(incident_id: int, group_id: int, alert: NormalAlert, severity: int, now: datetime) -> dict[str, Any]:
    return {
        "group_id": group_id, "incident_id": incident_id, "fingerprint": alert.fingerprint,
        "starts_at": alert.starts_at, "ends_at": alert.ends_at if alert.status == "resolved" else None,
        "status": alert.status, "severity": severity, "labels": alert.labels, "annotations": alert.annotations,
        "generator_url": alert.generator_url or None, "extra": alert.extra, "monitoring_gap": alert.monitoring_gap,
        "first_seen_at": now, "last_seen_at": now,
    }


def _change_summary(added: int, resolved: int, group: GroupState, truncated: int) -> str:
    parts = [f"{added} new alert(s) firing"] if added else []
    parts += [f"{resolved} alert(s) resolved"] if resolved else []
    summary = f"{', '.join(parts)} — now {group.firing} firing, {group.resolved} resolved"
    return summary + (f", {truncated} not listed by Alertmanager" if truncated else "")


def _title(labels: dict[str, str], annotations: dict[str, str], alert: NormalAlert) -> str:
    for key in ("title", "summary"):
        text = annotations.get(key) or alert.annotations.get(key)
        if text:
            return text.strip()[:300]
    name = labels.get("alertname") or alert.labels.get("alertname") or "Alert"
    where = [v for v in (labels.get("service") or labels.get("sloth_service"),
                         labels.get("slo") or labels.get("sloth_slo")) if v]
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
