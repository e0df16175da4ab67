"""The intake's SQL: a handful of statements per notification, built once, run on the session's connection.

Every notification of an alert storm passes here, so the intake reads and writes alert, group and
timeline rows with SQLAlchemy Core instead of ORM objects: no identity map, no unit of work, no
re-reading a row that was just written, and one multi-row INSERT for a notification's new alerts
or events. The incident's few columns are read and updated the same way; it is loaded as an ORM
object only where `bot.incidents.service` needs one (opening and resolving).

Identity is unchanged: the group row is locked ``FOR UPDATE`` (SQLite: the ``BEGIN IMMEDIATE``
writer lock), and rows are inserted with INSERT … ON CONFLICT DO NOTHING against their unique
constraints, so the database, not a prior SELECT, decides which copy of a notification wins.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.engine import Connection
from sqlmodel import Session

from bot import outbox
from bot.alerts.normalize import Notification
from bot.clock import as_utc
from bot.db import upsert_ignoring
from bot.models import Alert, AlertGroup, Incident, TimelineEvent

AlertKey = tuple[str, datetime]  # (fingerprint, startsAt): one episode of an alert within its group

_GROUP = AlertGroup.__table__  # type: ignore[attr-defined]
_ALERT = Alert.__table__  # type: ignore[attr-defined]
_EVENT = TimelineEvent.__table__  # type: ignore[attr-defined]
_INCIDENT = Incident.__table__  # type: ignore[attr-defined]

_LOCK_GROUP = (select(_GROUP.c.id, _GROUP.c.current_incident_id)
               .where(_GROUP.c.group_key_hash == bindparam("key_hash")).with_for_update())
_SET_CURRENT_INCIDENT = (update(_GROUP).where(_GROUP.c.id == bindparam("group_id"))
                         .values(current_incident_id=bindparam("incident_id")))
_INCIDENT_STATE = (select(_INCIDENT.c.id, _INCIDENT.c.status, _INCIDENT.c.severity, _INCIDENT.c.monitoring_gap,
                          _INCIDENT.c.alerts_unlisted).where(_INCIDENT.c.id == bindparam("incident_id")))
_UPDATE_INCIDENT = update(_INCIDENT).where(_INCIDENT.c.id == bindparam("row_id"))  # SET: the columns passed
_KNOWN_ALERTS = (select(_ALERT.c.id, _ALERT.c.incident_id, _ALERT.c.fingerprint, _ALERT.c.starts_at,
                        _ALERT.c.status, _ALERT.c.ends_at, _ALERT.c.annotations)
                 .where(_ALERT.c.group_id == bindparam("group_id"),
                        _ALERT.c.fingerprint.in_(bindparam("fingerprints", expanding=True))))
_TOUCH_ALERTS = (update(_ALERT).where(_ALERT.c.id.in_(bindparam("ids", expanding=True)))
                 .values(last_seen_at=bindparam("now")))
_CHANGE_ALERT = (update(_ALERT).where(_ALERT.c.id == bindparam("row_id"))
                 .values(status=bindparam("new_status"), ends_at=bindparam("new_ends_at"),
                         annotations=bindparam("new_annotations"), last_seen_at=bindparam("now")))
_ALERT_COUNTS = (select(_ALERT.c.status, func.count()).where(_ALERT.c.incident_id == bindparam("incident_id"))
                 .group_by(_ALERT.c.status))
_INSERT_EVENTS = _EVENT.insert().returning(_EVENT.c.id, _EVENT.c.kind)


@dataclass(slots=True)
class IncidentState:
    """The incident columns an alert update reads or changes (the ORM object is loaded only to resolve)."""

    id: int
    status: str
    severity: int
    monitoring_gap: bool
    alerts_unlisted: int


@dataclass(slots=True)
class KnownAlert:
    """An alert row as the intake needs it. ``seen``: listed in this notification; ``changed``:
    status, end or annotations to write back."""

    id: int
    incident_id: int | None
    status: str
    ends_at: datetime | None
    annotations: dict[str, str]
    seen: bool = False
    changed: bool = False


class AlertStore:
    """The rows of one notification's transaction, on the session's own connection."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.conn: Connection = session.connection()
        self.dialect = self.conn.dialect.name

    def lock_group(self, note: Notification, now: datetime) -> tuple[int, int | None]:
        """The group's ``(id, current_incident_id)``, its row locked until commit; created if new.

        A group seen before (the common case) costs one ``SELECT … FOR UPDATE``. A new one is
        inserted; when this transaction's INSERT created the row, no other transaction can see or
        lock it before the commit (theirs wait on the unique index), so it needs no extra lock.
        """
        row = self.conn.execute(_LOCK_GROUP, {"key_hash": note.group_key_hash}).first()
        if row is not None:
            return row.id, row.current_incident_id
        insert = upsert_ignoring(_GROUP, self.dialect, ("group_key_hash",))
        group_id = self.conn.execute(insert, {
            "source": note.source, "group_key_hash": note.group_key_hash, "group_key": note.group_key,
            "group_labels": note.group_labels, "created_at": now,
        }).scalar_one_or_none()
        if group_id is not None:
            return group_id, None
        row = self.conn.execute(_LOCK_GROUP, {"key_hash": note.group_key_hash}).one()  # another copy won the insert
        return row.id, row.current_incident_id

    def set_current_incident(self, group_id: int, incident_id: int) -> None:
        self.conn.execute(_SET_CURRENT_INCIDENT, {"group_id": group_id, "incident_id": incident_id})

    def incident(self, incident_id: int) -> IncidentState | None:
        row = self.conn.execute(_INCIDENT_STATE, {"incident_id": incident_id}).first()
        return IncidentState(*row) if row is not None else None

    def update_incident(self, incident_id: int, values: dict[str, Any]) -> None:
        if values:
            self.conn.execute(_UPDATE_INCIDENT, {"row_id": incident_id, **values})

    def known_alerts(self, group_id: int, note: Notification) -> dict[AlertKey, KnownAlert]:
        """The group's rows for the notification's fingerprints, any episode, any incident."""
        fingerprints = sorted({a.fingerprint for a in note.alerts})
        rows = self.conn.execute(_KNOWN_ALERTS, {"group_id": group_id, "fingerprints": fingerprints})
        return {(row.fingerprint, as_utc(row.starts_at)): KnownAlert(  # type: ignore[misc]
            row.id, row.incident_id, row.status, row.ends_at, row.annotations) for row in rows}

    def insert_alerts(self, rows: list[dict[str, Any]]) -> set[AlertKey]:
        """One INSERT … ON CONFLICT DO NOTHING for all rows; the keys this call inserted.

        A key missing from the answer was inserted by a concurrent copy of the notification
        (PostgreSQL lets the INSERT wait for that copy's commit, then skips the row).
        """
        if not rows:
            return set()
        insert = upsert_ignoring(_ALERT, self.dialect, ("group_id", "fingerprint", "starts_at"),
                                 ("fingerprint", "starts_at"))
        return {(r.fingerprint, as_utc(r.starts_at)) for r in self.conn.execute(insert, rows)}  # type: ignore[misc]

    def alert_counts(self, incident_id: int) -> dict[str, int]:
        """``{"firing": n, "resolved": m}`` for the incident (as `service.alert_counts`, minus the ORM)."""
        counts = {"firing": 0, "resolved": 0}
        counts.update({status: n for status, n in self.conn.execute(_ALERT_COUNTS, {"incident_id": incident_id})})
        return counts

    def write_back(self, known: dict[AlertKey, KnownAlert], now: datetime, *, touch: bool) -> None:
        """Store the changed rows (with ``last_seen_at``); with ``touch``, also ``last_seen_at`` of
        the other rows this notification listed. Two statements at most."""
        changed = [row for row in known.values() if row.changed]
        if changed:
            self.conn.execute(_CHANGE_ALERT, [{
                "row_id": row.id, "new_status": row.status, "new_ends_at": row.ends_at,
                "new_annotations": row.annotations, "now": now,
            } for row in changed])
        if touch:
            seen = sorted(row.id for row in known.values() if row.seen and not row.changed)
            if seen:
                self.conn.execute(_TOUCH_ALERTS, {"ids": seen, "now": now})


@dataclass(slots=True)
class _Event:
    incident_id: int
    kind: str
    text: str
    actor: str | None
    at: datetime
    data: dict[str, Any]
    echo: bool


class EventBatch:
    """Timeline events of one notification, inserted together by `flush`.

    Same rows and the same Slack echo as `bot.incidents.timeline.record` (an echoed event queues
    a ``slack.line`` keyed ``line:<event id>``), but one INSERT for the batch instead of an ORM
    flush per event. Flush before anything else queues effects for the incident, so its outbox
    rows keep the order in which the changes happened.
    """

    def __init__(self) -> None:
        self._events: list[_Event] = []

    def add(self, incident_id: int, kind: str, text: str, *, actor: str | None, at: datetime,
            data: dict[str, Any] | None = None, echo: bool = False) -> None:
        self._events.append(_Event(incident_id, kind, text, actor, at, data or {}, echo))

    def flush(self, session: Session) -> None:
        events, self._events = self._events, []
        if not events:
            return
        rows = session.connection().execute(_INSERT_EVENTS, [{
            "incident_id": e.incident_id, "at": e.at, "kind": e.kind, "actor": e.actor, "text": e.text, "data": e.data,
        } for e in events]).all()
        # Ids are handed out in VALUES order on both databases (the order RETURNING gives is not
        # promised), so the sorted ids pair up with the events; the kind is checked all the same.
        for event, row in zip(events, sorted(rows, key=lambda r: r.id), strict=True):
            if row.kind != event.kind:
                raise RuntimeError(f"timeline batch out of order: {row.kind} for {event.kind}")
            if event.echo:
                outbox.enqueue(session, "slack.line", {"incident_id": event.incident_id, "event_id": row.id},
                               key=f"line:{row.id}", incident_id=event.incident_id)
