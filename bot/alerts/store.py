"""The intake's SQL: a few statements per notification, built once, run on the session's connection.

Every notification of an alert storm passes here, so the intake reads and writes alert, group,
incident and timeline rows with SQLAlchemy Core instead of ORM objects: no identity map, no unit
of work, no re-reading a row that was just written, one multi-row INSERT for a notification's new
alerts, and one each for the timeline events and the outbox rows of a whole batch (`EventBatch`).

Identity is unchanged: the group row is locked ``FOR UPDATE`` (SQLite: the ``BEGIN IMMEDIATE``
writer lock), and rows are inserted with INSERT … ON CONFLICT DO NOTHING against their unique
constraints, so the database, not a prior SELECT, decides which copy of a notification wins.
What the intake reads about a group (its current incident, its alerts) is read by a statement
that starts once the lock is held: under READ COMMITTED a statement sees what was committed before
it started, so it sees the previous lock holder's work. The locking SELECT itself could not read
it: when it has to wait, PostgreSQL re-reads only the locked row, not rows joined to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, func, select, update
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

_LOCK_GROUP = select(_GROUP.c.id).where(_GROUP.c.group_key_hash == bindparam("key_hash")).with_for_update()
_SET_CURRENT_INCIDENT = (update(_GROUP).where(_GROUP.c.id == bindparam("group_id"))
                         .values(current_incident_id=bindparam("incident_id")))
# The group's current incident (NULLs if none) with its alert rows for some fingerprints (NULLs if
# none): at least one row, since the group row is there.
_GROUP_STATE = (
    select(_INCIDENT.c.id.label("incident_id"), _INCIDENT.c.status.label("incident_status"), _INCIDENT.c.severity,
           _INCIDENT.c.monitoring_gap, _INCIDENT.c.alerts_unlisted,
           _ALERT.c.id.label("alert_id"), _ALERT.c.incident_id.label("alert_incident_id"), _ALERT.c.fingerprint,
           _ALERT.c.starts_at, _ALERT.c.status.label("alert_status"), _ALERT.c.ends_at, _ALERT.c.annotations)
    .select_from(_GROUP
                 .outerjoin(_INCIDENT, _INCIDENT.c.id == _GROUP.c.current_incident_id)
                 .outerjoin(_ALERT, and_(_ALERT.c.group_id == _GROUP.c.id,
                                         _ALERT.c.fingerprint.in_(bindparam("fingerprints", expanding=True)))))
    .where(_GROUP.c.id == bindparam("group_id")))
_INSERT_INCIDENT = _INCIDENT.insert().returning(_INCIDENT.c.id)
_UPDATE_INCIDENT = update(_INCIDENT).where(_INCIDENT.c.id == bindparam("row_id"))  # SET: the columns passed
_UPDATE_INCIDENT_COUNTING = _UPDATE_INCIDENT.returning(*(
    select(func.count()).where(_ALERT.c.incident_id == bindparam("row_id"), _ALERT.c.status == status)
    .scalar_subquery().label(status) for status in ("firing", "resolved")))
_TOUCH_ALERTS = (update(_ALERT).where(_ALERT.c.id.in_(bindparam("ids", expanding=True)))
                 .values(last_seen_at=bindparam("now")))
_CHANGE_ALERT = (update(_ALERT).where(_ALERT.c.id == bindparam("row_id"))
                 .values(status=bindparam("new_status"), ends_at=bindparam("new_ends_at"),
                         annotations=bindparam("new_annotations"), last_seen_at=bindparam("now")))
_ALERT_COUNTS = (select(_ALERT.c.status, func.count()).where(_ALERT.c.incident_id == bindparam("incident_id"))
                 .group_by(_ALERT.c.status))
_INSERT_EVENTS = _EVENT.insert().returning(_EVENT.c.id, _EVENT.c.kind)


@dataclass(slots=True)
class LockedGroup:
    """The notification's group row, locked until commit. ``created``: inserted by this
    transaction, so no alert or incident row can point at it yet."""

    id: int
    created: bool


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

    def lock_group(self, note: Notification, now: datetime) -> LockedGroup:
        """The group's row, locked until commit; created if new.

        A group seen before (the common case) costs one ``SELECT … FOR UPDATE``. A new one is
        inserted; when this transaction's INSERT created the row, no other transaction can see or
        lock it before the commit (theirs wait on the unique index), so it needs no extra lock.
        """
        group_id = self.conn.execute(_LOCK_GROUP, {"key_hash": note.group_key_hash}).scalar_one_or_none()
        if group_id is not None:
            return LockedGroup(group_id, created=False)
        insert = upsert_ignoring(_GROUP, self.dialect, ("group_key_hash",))
        group_id = self.conn.execute(insert, {
            "source": note.source, "group_key_hash": note.group_key_hash, "group_key": note.group_key,
            "group_labels": note.group_labels, "created_at": now,
        }).scalar_one_or_none()
        if group_id is not None:
            return LockedGroup(group_id, created=True)
        group_id = self.conn.execute(_LOCK_GROUP, {"key_hash": note.group_key_hash}).scalar_one()  # another copy won
        return LockedGroup(group_id, created=False)

    def set_current_incident(self, group_id: int, incident_id: int) -> None:
        self.conn.execute(_SET_CURRENT_INCIDENT, {"group_id": group_id, "incident_id": incident_id})

    def read_group(self, group: LockedGroup, note: Notification) -> tuple[IncidentState | None, dict[AlertKey, KnownAlert]]:
        """The group's current incident, and its rows for the notification's fingerprints (any
        episode, any incident): one SELECT, none for a group this transaction created."""
        if group.created:
            return None, {}
        fingerprints = sorted({a.fingerprint for a in note.alerts})
        rows = self.conn.execute(_GROUP_STATE, {"group_id": group.id, "fingerprints": fingerprints}).all()
        first = rows[0]
        current = None if first.incident_id is None else IncidentState(
            first.incident_id, first.incident_status, first.severity, first.monitoring_gap, first.alerts_unlisted)
        known = {(row.fingerprint, as_utc(row.starts_at)): KnownAlert(  # type: ignore[misc]
            row.alert_id, row.alert_incident_id, row.alert_status, row.ends_at, row.annotations)
            for row in rows if row.alert_id is not None}
        return current, known

    def insert_incident(self, values: dict[str, Any]) -> int:
        """A new incident row (all its NOT NULL columns in ``values``); its id."""
        return self.conn.execute(_INSERT_INCIDENT, values).scalar_one()

    def update_incident(self, incident_id: int, values: dict[str, Any]) -> None:
        if values:
            self.conn.execute(_UPDATE_INCIDENT, {"row_id": incident_id, **values})

    def update_incident_and_count(self, incident_id: int, values: dict[str, Any]) -> dict[str, int]:
        """`update_incident` (``values`` not empty), returning `alert_counts` from the same statement.

        The counts include the alert rows this transaction wrote before: a statement sees its
        own transaction's earlier changes.
        """
        row = self.conn.execute(_UPDATE_INCIDENT_COUNTING, {"row_id": incident_id, **values}).one()
        return {"firing": row.firing, "resolved": row.resolved}

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
    """Timeline events and outbox effects of one or more notifications, written together by `flush`.

    The same rows as `bot.incidents.timeline.record` and `bot.outbox.enqueue` (an echoed event
    queues a ``slack.line`` keyed ``line:<event id>``), but one INSERT for all the events and one
    for all the outbox rows instead of an ORM flush or an INSERT each. Outbox rows go in in the
    order they were added (an echo line where its event was added), so an incident's rows keep
    the order in which its changes happened. Flush before anything writes an incident's timeline
    or outbox rows another way (`bot.incidents.service`), so that those come after these.
    """

    def __init__(self) -> None:
        self._items: list[_Event | outbox.Effect] = []

    def add(self, incident_id: int, kind: str, text: str, *, actor: str | None, at: datetime,
            data: dict[str, Any] | None = None, echo: bool = False) -> None:
        self._items.append(_Event(incident_id, kind, text, actor, at, data or {}, echo))

    def queue(self, effect: outbox.Effect) -> None:
        """Queue an outbox row after the events and effects added so far."""
        self._items.append(effect)

    def flush(self, session: Session) -> None:
        items, self._items = self._items, []
        events = [item for item in items if isinstance(item, _Event)]
        event_ids = iter(self._insert_events(session, events))
        effects: list[outbox.Effect] = []
        for item in items:
            if isinstance(item, outbox.Effect):
                effects.append(item)
                continue
            event_id = next(event_ids)
            if item.echo:
                effects.append(outbox.Effect("slack.line", {"incident_id": item.incident_id, "event_id": event_id},
                                             key=f"line:{event_id}", incident_id=item.incident_id))
        outbox.enqueue_many(session, effects)

    @staticmethod
    def _insert_events(session: Session, events: list[_Event]) -> list[int]:
        """The events' ids, in list order."""
        if not events:
            return []
        rows = session.connection().execute(_INSERT_EVENTS, [{
            "incident_id": e.incident_id, "at": e.at, "kind": e.kind, "actor": e.actor, "text": e.text, "data": e.data,
        } for e in events]).all()
        # Ids are handed out in VALUES order on both databases (the order RETURNING gives is not
        # promised), so the sorted ids pair up with the events; the kind is checked all the same.
        rows.sort(key=lambda r: r.id)
        for event, row in zip(events, rows, strict=True):
            if row.kind != event.kind:
                raise RuntimeError(f"timeline batch out of order: {row.kind} for {event.kind}")
        return [row.id for row in rows]
