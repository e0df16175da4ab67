"""The intake's SQL: a fixed handful of statements per batch of notifications, built once.

Every notification of an alert storm passes here, so the intake reads and writes with Core
statements run by `bot.store.statements` (on PostgreSQL: straight on psycopg, several to a round trip)
instead of ORM objects, and a whole batch (`bot.alerts.writer` groups what arrives while a
transaction commits) shares its statements: one upsert locks (or creates) every group of the
batch, one SELECT reads what the intake needs of them, and the batch's changes go in at its end
(`PendingWrites`, and the timeline and outbox rows through the transaction's change set,
`bot.store.changeset`), one statement per kind of row, sent together with the trace links of the
incidents it opened. Only opening an incident costs a round trip of its own: its
INSERT, for its id.

Identity: the group rows are locked by ``INSERT … ON CONFLICT (group_key_hash) DO UPDATE``, which
creates a new group or locks the existing row, in ``group_key_hash`` order (`Statements.insert_rows`
inserts rows in the order given), so two processes' batches cannot deadlock on them; on SQLite the
``BEGIN IMMEDIATE`` writer lock already serialises writers. Alert rows go in with INSERT … ON
CONFLICT DO NOTHING against their unique constraint. What the intake reads about a group (its
current incident, its alert counts, its alerts) is read by statements that start once the locks
are held: under READ COMMITTED a statement sees what was committed before it started, so it sees
the previous lock holder's work. The locking statement itself could not: when it has to wait,
PostgreSQL re-reads only the locked row, not rows joined to it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, any_, bindparam, exists, func, or_, select, true, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql import ColumnElement
from sqlmodel import Session

from bot.alerts.correlation import StormCounts, key_hash
from bot.alerts.normalize import Notification
from bot.clock import as_utc
from bot.incidents import lifecycle
from bot.incidents.lifecycle import OPEN_STATUSES
from bot.store.models import Alert, AlertGroup, Correlation, Incident
from bot.store.statements import Later, Statements
from bot.traces import ingest as traces

AlertKey = tuple[str, datetime]  # (fingerprint, startsAt): one episode of an alert within its group
# An alert's last_seen_at is kept to this: a repeat within it (an HA peer's copy, a burst of
# updates in a storm) does not rewrite the row. Alertmanager repeats at group_interval (5 min).
LAST_SEEN_RESOLUTION = timedelta(minutes=1)

_GROUP = AlertGroup.__table__  # type: ignore[attr-defined]
_ALERT = Alert.__table__  # type: ignore[attr-defined]
_INCIDENT = Incident.__table__  # type: ignore[attr-defined]
_CORRELATION = Correlation.__table__  # type: ignore[attr-defined]


def _one_of(column: Any, name: str, postgres: bool) -> ColumnElement[bool]:
    """``column`` is one of the list parameter ``name``: ``= ANY(array)`` on PostgreSQL, whose
    SQL text (and prepared plan) is then the same for any length; SQLite has no arrays, and an
    IN list costs it no round trip or plan cache."""
    if postgres:
        return column == any_(bindparam(name, type_=ARRAY(column.type)))
    return column.in_(bindparam(name, expanding=True))


def _groups_state(postgres: bool) -> Any:
    """Each group with its current incident (NULLs if none) and the alert rows the batch needs:
    those of the batch's fingerprints (any episode, any incident), which the notifications are
    matched against, and all of the current incident's, which give its counts. At least one row
    per group.

    On PostgreSQL the alerts are a LATERAL subquery read group by group through the group_id
    index. As a plain join, on a table not yet analysed (a new deployment, or a storm that grew it
    since autovacuum last looked), the planner hashed the whole alert table instead: a sequential
    scan per batch, most of the database's time in the benchmark and growing with the table.
    ``OFFSET 0`` keeps the planner from flattening the subquery back into that join. SQLite has no
    LATERAL, and its join already goes through the index."""
    wanted = and_(_ALERT.c.group_id == _GROUP.c.id,
                  or_(_one_of(_ALERT.c.fingerprint, "fingerprints", postgres),
                      _ALERT.c.incident_id == _GROUP.c.current_incident_id))
    alert_columns = [_ALERT.c.id.label("alert_id"), _ALERT.c.incident_id.label("alert_incident_id"),
                     _ALERT.c.fingerprint, _ALERT.c.starts_at, _ALERT.c.status.label("alert_status"), _ALERT.c.ends_at,
                     _ALERT.c.annotations, _ALERT.c.last_seen_at]
    groups = _GROUP.outerjoin(_INCIDENT, _INCIDENT.c.id == _GROUP.c.current_incident_id)
    if postgres:
        alerts = select(*alert_columns).where(wanted).offset(0).lateral("batch_alert")
        groups, alert_columns = groups.outerjoin(alerts, true()), list(alerts.c)
    else:
        groups = groups.outerjoin(_ALERT, wanted)
    return (select(_GROUP.c.id.label("group_id"), _GROUP.c.alerts_unlisted.label("group_unlisted"), _INCIDENT.c.id,
                   _INCIDENT.c.status, _INCIDENT.c.severity, _INCIDENT.c.monitoring_gap, _INCIDENT.c.alerts_unlisted,
                   *alert_columns)
            .select_from(groups)
            .where(_one_of(_GROUP.c.id, "group_ids", postgres)))


_GROUPS_STATE = {postgres: _groups_state(postgres) for postgres in (False, True)}
_INSERT_INCIDENT = _INCIDENT.insert().returning(_INCIDENT.c.id)
_TOUCH_ALERTS = {postgres: update(_ALERT).where(_one_of(_ALERT.c.id, "ids",
                                                        postgres)).values(last_seen_at=bindparam("now"))
                 for postgres in (False, True)}


@dataclass(slots=True)
class IncidentState:
    """What the intake reads or changes of an open incident, kept up to date through the batch
    (the ORM object is loaded only to resolve); one object per incident, which every group of it
    in the batch shares."""

    id: int
    status: str
    severity: int
    monitoring_gap: bool
    alerts_unlisted: int


@dataclass(slots=True)
class KeyState:
    """A locked correlation row as the batch sees it: its incident while that is open, and when a
    group last joined it."""

    id: int
    key: str
    incident: IncidentState | None
    joined_at: datetime | None

    def live(self, now: datetime, window: timedelta) -> bool:
        return (self.incident is not None and lifecycle.is_open(self.incident.status)
                and self.joined_at is not None and now - self.joined_at <= window)


@dataclass(slots=True)
class KnownAlert:
    """An alert row as the intake needs it: read from the database (``id``), or one this batch
    inserts at its end (``pending``: the row to insert, which later changes in the batch edit)."""

    id: int | None
    incident_id: int | None
    status: str
    ends_at: datetime | None
    annotations: dict[str, str]
    last_seen_at: datetime | None = None
    pending: dict[str, Any] | None = None


@dataclass(slots=True)
class GroupState:
    """One locked group as the batch sees it: its current incident, the alert rows known so far,
    and ``firing``/``resolved``: its rows of the current incident by status, this batch's changes
    included (another group's rows of the same incident do not count here)."""

    id: int
    incident: IncidentState | None = None
    known: dict[AlertKey, KnownAlert] = field(default_factory=dict)
    alerts_unlisted: int = 0
    firing: int = 0
    resolved: int = 0

    def recount(self, alert: KnownAlert, was: str | None) -> None:
        """Keep the counts right after ``alert`` went from ``was`` (None: a new row) to its
        status; rows of other incidents (earlier episodes) do not count."""
        if self.incident is None or alert.incident_id != self.incident.id:
            return
        if was == "firing":
            self.firing -= 1
        elif was == "resolved":
            self.resolved -= 1
        if alert.status == "firing":
            self.firing += 1
        else:
            self.resolved += 1

    def attach(self, incident: IncidentState) -> None:
        """The group belongs to ``incident`` from now on (a new one, or one it joins)."""
        self.incident, self.firing, self.resolved = incident, 0, 0


class AlertStore:
    """The reads of one batch's transaction, on the session's own connection."""

    def __init__(self, session: Session) -> None:
        self.sql = Statements(session.connection())

    def lock_groups(self, notes: list[Notification], now: datetime) -> dict[str, int]:
        """Every group of ``notes`` locked until commit, created if new: ``{group_key_hash: id}``.

        One statement, whose rows go in ``group_key_hash`` order: every batch of every process
        takes its group locks in that one order.
        """
        first: dict[str, Notification] = {}
        for note in notes:
            first.setdefault(note.group_key_hash, note)
        rows = [{"source": note.source, "group_key_hash": key_hash, "group_key": note.group_key,
                 "group_labels": note.group_labels, "alerts_unlisted": 0, "created_at": now}
                for key_hash, note in sorted(first.items())]
        # The no-op update is what locks an existing row (as ``FOR UPDATE`` would) in the statement
        # that creates the missing ones; PostgreSQL takes the rows in the order given. The pipeline
        # sends the transaction's BEGIN with it, in one round trip.
        with self.sql.pipeline():
            locked = self.sql.insert_rows(_GROUP, rows, conflict=("group_key_hash",), update=("group_key_hash",),
                                          returning=("id", "group_key_hash")).rows()
        return {row.group_key_hash: row.id for row in locked}

    def read_groups(self, group_ids: list[int], fingerprints: set[str]) -> dict[int, GroupState]:
        """The groups' current incidents with their alert counts, and their alert rows for
        ``fingerprints``: one SELECT for the whole batch."""
        groups: dict[int, GroupState] = {}
        incidents: dict[int, IncidentState] = {}
        rows = self.sql.execute(_GROUPS_STATE[self.sql.postgres],
                                {"group_ids": group_ids, "fingerprints": sorted(fingerprints)}).rows()
        for row in rows:
            group = groups.get(row.group_id)
            if group is None:
                incident = None if row.id is None else incidents.setdefault(row.id, IncidentState(
                    row.id, row.status, row.severity, row.monitoring_gap, row.alerts_unlisted))
                group = groups[row.group_id] = GroupState(row.group_id, incident, alerts_unlisted=row.group_unlisted)
            if row.alert_id is None:
                continue
            alert = group.known[(row.fingerprint, as_utc(row.starts_at))] = KnownAlert(
                row.alert_id, row.alert_incident_id, row.alert_status, row.ends_at, row.annotations,
                as_utc(row.last_seen_at))
            group.recount(alert, was=None)
        return groups

    def lock_keys(self, keys: set[str], known: dict[int, IncidentState]) -> dict[str, KeyState]:
        """Every correlation key of ``keys`` locked until commit, created if new, with the incident
        it points at while it is open (the batch's own object for it when ``known`` has one):
        ``{key: state}``. Taken after the groups' locks, in ``key_hash`` order, by
        every batch of every process."""
        if not keys:
            return {}
        rows = [{"key_hash": key_hash(key), "key": key} for key in sorted(keys, key=key_hash)]
        with self.sql.pipeline():
            locked = self.sql.insert_rows(_CORRELATION, rows, conflict=("key_hash",), update=("key_hash",),
                                          returning=("id", "key", "incident_id", "joined_at")).rows()
        incident_ids = sorted({row.incident_id for row in locked if row.incident_id is not None})
        open_ones: dict[int, IncidentState] = {}
        if incident_ids:  # read once the locks are held (see the module's docstring)
            open_ones = {row.id: known.get(row.id) or IncidentState(row.id, row.status, row.severity,
                                                                    row.monitoring_gap, row.alerts_unlisted)
                         for row in self.sql.execute(
                             select(_INCIDENT.c.id, _INCIDENT.c.status, _INCIDENT.c.severity,
                                    _INCIDENT.c.monitoring_gap, _INCIDENT.c.alerts_unlisted)
                             .where(_one_of(_INCIDENT.c.id, "ids", self.sql.postgres),
                                    _one_of(_INCIDENT.c.status, "statuses", self.sql.postgres)),
                             {"ids": incident_ids, "statuses": list(OPEN_STATUSES)}).rows()}
        return {row.key: KeyState(row.id, row.key, open_ones.get(row.incident_id), as_utc(row.joined_at))
                for row in locked}

    def storm_counts(self, now: datetime, workspace_window: timedelta, service_window: timedelta) -> StormCounts:
        """Incidents opened within each window (storm incidents and merged ones left out)."""
        def recent(window: timedelta) -> Any:
            return and_(_INCIDENT.c.opened_at >= now - window, _INCIDENT.c.storm.is_(False))
        workspace = self.sql.execute(select(func.count()).select_from(_INCIDENT)
                                     .where(recent(workspace_window))).rows()[0][0]
        by_service = self.sql.execute(select(_INCIDENT.c.service, func.count()).where(recent(service_window))
                                      .group_by(_INCIDENT.c.service)).rows()
        return StormCounts(workspace, {row[0]: row[1] for row in by_service})

    def others_active(self, incident_id: int, group_id: int) -> bool:
        """Whether another group of the incident still has a firing alert, or was truncated (it
        may hide one). The incident row is locked first, so of two groups resolving at once in two
        processes, the second to lock sees the first's work and resolves the incident."""
        self.sql.execute(select(_INCIDENT.c.id).where(_INCIDENT.c.id == incident_id).with_for_update()).rows()
        firing = select(_ALERT.c.id).where(_ALERT.c.incident_id == incident_id, _ALERT.c.group_id != group_id,
                                           _ALERT.c.status == "firing")
        truncated = select(_GROUP.c.id).where(_GROUP.c.current_incident_id == incident_id, _GROUP.c.id != group_id,
                                              _GROUP.c.alerts_unlisted > 0)
        return bool(self.sql.execute(select(or_(exists(firing), exists(truncated)))).rows()[0][0])

    def insert_incident(self, values: dict[str, Any]) -> int:
        """A new incident row (all its NOT NULL columns in ``values``); its id."""
        return self.sql.execute(_INSERT_INCIDENT, values).rows()[0].id


class PendingWrites:
    """The alert, incident and group rows a batch changes, written by `flush` with one statement
    for each kind of change (`Statements.update_rows`).

    A change to a row made earlier in the batch replaces it (the last values win); a change to an
    alert row the batch has not inserted yet edits the row to insert.
    """

    def __init__(self) -> None:
        self._new_alerts: list[KnownAlert] = []
        self._changed: dict[int, tuple[KnownAlert, datetime]] = {}
        self._touched: dict[int, datetime] = {}
        self._incidents: dict[int, dict[str, Any]] = {}
        self._current_incidents: dict[int, int] = {}
        self._group_unlisted: dict[int, int] = {}
        self._correlations: dict[int, tuple[int, datetime]] = {}
        self._trace_links: list[tuple[int, str | None, datetime, list[Later]]] = []

    def insert_alert(self, alert: KnownAlert) -> None:
        """Insert ``alert.pending``; once it is in, ``alert`` has its ``id`` like a row read back."""
        self._new_alerts.append(alert)

    def change_alert(self, alert: KnownAlert, now: datetime) -> None:
        """Store ``alert``'s status, end and annotations as they are now."""
        alert.last_seen_at = now
        if alert.pending is not None:
            alert.pending.update(status=alert.status, ends_at=alert.ends_at, annotations=alert.annotations,
                                 last_seen_at=now)
        else:
            assert alert.id is not None
            self._changed[alert.id] = (alert, now)

    def touch_alert(self, alert: KnownAlert, now: datetime) -> None:
        """The notification listed ``alert`` unchanged: its ``last_seen_at`` only, and only when
        the stored one is `LAST_SEEN_RESOLUTION` old, so a duplicate delivery writes nothing."""
        if alert.pending is not None:
            alert.pending["last_seen_at"] = now
        elif alert.last_seen_at is None or now - alert.last_seen_at >= LAST_SEEN_RESOLUTION:
            assert alert.id is not None
            self._touched[alert.id] = alert.last_seen_at = now

    def update_incident(self, incident_id: int, values: dict[str, Any]) -> None:
        if values:
            self._incidents.setdefault(incident_id, {}).update(values)

    def set_current_incident(self, group_id: int, incident_id: int) -> None:
        self._current_incidents[group_id] = incident_id

    def set_group_unlisted(self, group_id: int, unlisted: int) -> None:
        self._group_unlisted[group_id] = unlisted

    def correlate(self, key: KeyState) -> None:
        """Store the key's incident and when a group last joined it."""
        assert key.incident is not None and key.joined_at is not None
        self._correlations[key.id] = (key.incident.id, key.joined_at)

    def link_traces(self, incident_id: int, service: str | None, opened_at: datetime) -> Callable[[], bool]:
        """Link the service's failing traces to a new incident (`bot.traces.ingest`) with the batch's
        writes, not in a round trip of its own; what it returns tells, once they are flushed,
        whether any were linked."""
        sent: list[Later] = []
        self._trace_links.append((incident_id, service, opened_at, sent))
        return lambda: any(later.count() > 0 for later in sent)

    def flush(self, sql: Statements) -> Callable[[], None]:
        """Send the writes (inside ``sql``'s pipeline: without waiting for them); call what it
        returns once they are answered, to give the new alerts their ids."""
        new_alerts, self._new_alerts = self._new_alerts, []
        changed, self._changed = self._changed, {}
        touched, self._touched = self._touched, {}
        incidents, self._incidents = self._incidents, {}
        current, self._current_incidents = self._current_incidents, {}
        unlisted, self._group_unlisted = self._group_unlisted, {}
        correlations, self._correlations = self._correlations, {}
        links, self._trace_links = self._trace_links, []
        inserted = self._insert_alerts(sql, new_alerts)
        sql.update_rows(_ALERT, [{"id": row_id, "status": alert.status, "ends_at": alert.ends_at,
                                  "annotations": alert.annotations, "last_seen_at": now}
                                 for row_id, (alert, now) in changed.items()])
        only_seen = {row_id: now for row_id, now in touched.items() if row_id not in changed}
        if only_seen:  # a changed row got its last_seen_at with the change
            sql.execute(_TOUCH_ALERTS[sql.postgres], {"ids": sorted(only_seen), "now": max(only_seen.values())})
        by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
        for incident_id, values in incidents.items():
            by_columns[tuple(sorted(values))].append({"id": incident_id, **dict(sorted(values.items()))})
        for rows in by_columns.values():
            sql.update_rows(_INCIDENT, rows)
        sql.update_rows(_GROUP, [{"id": g, "current_incident_id": i} for g, i in current.items()])
        sql.update_rows(_GROUP, [{"id": g, "alerts_unlisted": n} for g, n in unlisted.items()])
        sql.update_rows(_CORRELATION, [{"id": k, "incident_id": i, "joined_at": at}
                                       for k, (i, at) in correlations.items()])
        for incident_id, service, opened_at, sent in links:
            if (later := traces.send_service_traces_link(sql, incident_id, service, opened_at=opened_at)) is not None:
                sent.append(later)
        return inserted

    @staticmethod
    def _insert_alerts(sql: Statements, alerts: list[KnownAlert]) -> Callable[[], None]:
        key = ("group_id", "fingerprint", "starts_at")
        sent = sql.insert_rows(_ALERT, [alert.pending for alert in alerts if alert.pending is not None],
                               conflict=key, returning=("id", *key))

        def adopt_ids() -> None:
            ids = {(r.group_id, r.fingerprint, as_utc(r.starts_at)): r.id for r in sent.rows()}
            if len(ids) != len(alerts):
                # The group lock rules this out: another transaction wrote this group's alerts.
                raise RuntimeError(f"{len(alerts) - len(ids)} alert row(s) of a locked group were there already")
            for alert in alerts:
                row = alert.pending
                assert row is not None
                alert.id, alert.pending = ids[(row["group_id"], row["fingerprint"], as_utc(row["starts_at"]))], None

        return adopt_ids
