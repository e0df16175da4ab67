"""One evaluation round of the quality sensors: read traces, decide, raise or resolve through the intake.

Like the SLO watcher (`bot.sensors.burn_rate`), a sensor's alerts are Alertmanager notifications (source
``watcher``) handed to the same intake, so identity, dedupe, grouping, runbook matching and
re-fire are the intake's: a firing alert keeps its ``startsAt`` while it fires (a duplicate for the
intake), and a new episode after a resolve opens a new incident. The alerts still firing are the
``Alert`` rows of the sensor's groups, read under the sensor's lease, so several processes agree.

Labels: ``alertname`` (``LLMQualityDrift`` / ``LLMFailureSpike``), ``sensor``, ``sensor_kind``,
``service``, ``severity`` (drift: ``warning`` at ``warn``, ``critical`` at ``alert``), ``bundle``
for drift per bundle, and the sensor's own labels: what runbooks match on.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import Text, cast, func, literal, select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from bot.alerts.intake import IngestResult, IntakeRules, ingest_many
from bot.alerts.normalize import from_alertmanager
from bot.clock import as_utc
from bot.config import Settings
from bot.incidents.reminders import leased
from bot.sensors.psi import psi
from bot.sensors.spec import Sensor
from bot.sensors.spike import Outcomes, spans_needed, spike
from bot.slo.payload import to_alertmanager_payload
from bot.slo.tracerule import field_path
from bot.store.models import Alert, AlertGroup, Trace

SOURCE: Final = "watcher"
RECEIVER = "warroom-sensors"
GROUP_BY = ("alertname", "service", "sensor", "severity")
ALERTNAMES = ("LLMQualityDrift", "LLMFailureSpike")
MAX_SAMPLE = 20_000  # values per drift window; more moves PSI by less than its own sampling noise
# History (a drift baseline, a spike's past days) is reused until ``now`` has moved on by this
# share of its span: a 7-day baseline is read again every 1.7 h, not every 30 s.
REFRESH_PARTS = 100


class _HistoryCache:
    """Per process: what a sensor read of the past, with the moment it was read for.

    Keyed by database and sensor (its whole definition, so an edited file reads afresh); used
    only for a ``now`` from the moment it was read up to ``ttl`` later, never for an earlier one.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[tuple[str, str, str], tuple[datetime, timedelta, Any]] = {}

    def get(self, session: Session, sensor: Sensor, part: str, now: datetime, ttl: timedelta,
            load: Callable[[], Any]) -> Any:
        key = (str(session.get_bind().engine.url), repr(sensor), part)  # a Connection has no .url of its own
        with self._lock:
            cached = self._items.get(key)
        if cached is not None and cached[0] <= now < cached[0] + cached[1]:
            return cached[2]
        value = load()
        with self._lock:
            self._items[key] = (now, ttl, value)
        return value


_HISTORY = _HistoryCache()


@dataclass(frozen=True)
class SensorAlert:
    labels: dict[str, str]
    annotations: dict[str, str]
    status: str
    starts_at: datetime
    ends_at: datetime | None


def evaluate_sensors(engine: Engine, settings: Settings, sensors: Sequence[Sensor], now: datetime, *,
                     rules: IntakeRules | None = None) -> list[IngestResult]:
    """Evaluate every sensor at ``now``; one intake result per notification sent."""
    from bot.sensors.burn_rate import intake_rules

    rules = rules or intake_rules(settings)
    moment = as_utc(now)
    assert moment is not None
    results: list[IngestResult] = []
    reads = _Round(sensors)
    for sensor in sensors:
        with leased(engine, f"sensor:{sensor.service}/{sensor.name}") as session:
            if session is None:
                continue
            wanted = firing_alerts(session, sensor, moment, reads)
            results.extend(_send(session, sensor, wanted, moment, rules, settings.public_url))
    return results


def firing_alerts(session: Session, sensor: Sensor, now: datetime,
                  reads: _Round | None = None) -> list[tuple[dict[str, str], dict[str, str]]]:
    """``(labels, annotations)`` of the alerts the sensor fires at ``now`` (empty: all quiet)."""
    reads = reads or _Round([sensor])
    if sensor.kind == "drift":
        return _drift(session, sensor, now, reads)
    return _spike(session, sensor, now, reads)


class _Round:
    """One round's reads of the traces, shared by its sensors.

    Sensors of one service read the same time ranges (a 7-day drift baseline, a spike's past
    days), each for one or two fields; almost all the cost is visiting the stored rows, not
    extracting a field. So the first sensor to read a range reads every field the round's sensors
    of its kind and service need, and the others take their columns from that. Kept for the
    round only: what outlives it is each sensor's own history (`_HISTORY`), as before.
    """

    def __init__(self, sensors: Iterable[Sensor]) -> None:
        self._fields: dict[tuple[str, str], set[str]] = {}
        for sensor in sensors:
            wanted = (sensor.field,) if sensor.kind == "drift" else sensor.trace.fields if sensor.trace else ()
            self._fields.setdefault((sensor.kind, sensor.service), set()).update(wanted)
        self._read: dict[tuple[Any, ...], Any] = {}

    def fields(self, sensor: Sensor, own: Iterable[str]) -> tuple[str, ...]:
        return tuple(sorted(self._fields.get((sensor.kind, sensor.service), set()).union(own)))

    def read(self, key: tuple[Any, ...], load: Callable[[], Any]) -> Any:
        if key not in self._read:
            self._read[key] = load()
        return self._read[key]


# --- drift -----------------------------------------------------------------------------------


def _drift(session: Session, sensor: Sensor, now: datetime,
           reads: _Round) -> list[tuple[dict[str, str], dict[str, str]]]:
    current_start = now - sensor.window
    baseline = _HISTORY.get(session, sensor, "baseline", now, sensor.baseline / REFRESH_PARTS, lambda: [
        v for _, v in _values(session, sensor, now - sensor.window - sensor.baseline, current_start, reads)])
    if len(baseline) < sensor.min_samples:
        return []
    groups: dict[str, list[float]] = {}
    for bundle, value in _values(session, sensor, current_start, now, reads):
        groups.setdefault(bundle if sensor.by_bundle else "", []).append(value)
    alerts = []
    for bundle, values in sorted(groups.items()):
        if len(values) < sensor.min_samples:
            continue
        index = psi(baseline, values, sensor.bins)
        for severity, threshold in (("warning", sensor.warn), ("critical", sensor.alert)):
            if index >= threshold:
                alerts.append(_drift_alert(sensor, bundle, severity, index, threshold, len(values), len(baseline)))
    return alerts


def _values(session: Session, sensor: Sensor, start: datetime, end: datetime,
            reads: _Round) -> list[tuple[str, float]]:
    """``(bundle, value)`` of the sensor's field for the service's traces in ``(start, end]``."""
    fields = reads.fields(sensor, (sensor.field,))
    values = reads.read(("drift", sensor.service, start, end, fields),
                        lambda: _read_values(session, sensor.service, fields, start, end))
    return values[sensor.field]


def _drift_column(dialect: str, field: str) -> Any:
    if field == "answer_length":
        return func.length(col(Trace.data)["output"].as_string())
    if field == "retrieved_documents":
        # ``trace.data`` is jsonb on PostgreSQL (migration 0013), JSON text on SQLite.
        array_length = func.jsonb_array_length if dialect == "postgresql" else func.json_array_length
        return array_length(col(Trace.data)["retrieval_ids"])
    return col(Trace.data)[field_path(field)].as_float()


def _read_values(session: Session, service: str, fields: tuple[str, ...], start: datetime,
                 end: datetime) -> dict[str, list[tuple[str, float]]]:
    """`_values` of each of ``fields``, read together (one visit of each row)."""
    where = (col(Trace.service) == service, col(Trace.timestamp) > start, col(Trace.timestamp) <= end)
    dialect = session.get_bind().dialect.name
    stmt = select(col(Trace.bundle_version), *(_drift_column(dialect, field) for field in fields)).where(*where)
    # A week of a busy service is hundreds of thousands of traces; PSI needs a few thousand. Every
    # k-th row by id is an even sample over time (ids grow with arrival) and reads far less JSON.
    # The sample depends on the rows only, not on the field: each field gets the same one it
    # would get read alone.
    count = session.execute(select(func.count()).select_from(Trace).where(*where)).scalar_one()
    if count > MAX_SAMPLE:
        stmt = stmt.where(col(Trace.id) % ((count + MAX_SAMPLE - 1) // MAX_SAMPLE) == 0)
    values: dict[str, list[tuple[str, float]]] = {field: [] for field in fields}
    columns = [values[field] for field in fields]
    for bundle, *row in session.execute(stmt).all():
        for out, value in zip(columns, row, strict=True):
            if value is not None:
                out.append((bundle or "", float(value)))
    return values


def _drift_alert(sensor: Sensor, bundle: str, severity: str, index: float, threshold: float, samples: int,
                 baseline_samples: int) -> tuple[dict[str, str], dict[str, str]]:
    labels = _labels(sensor, severity)
    if sensor.by_bundle:
        labels["bundle"] = bundle
    which = f" on bundle {bundle}" if sensor.by_bundle and bundle else ""
    annotations = _annotations(sensor, {
        "title": f"{sensor.service}: {sensor.field} drifted{which} (PSI {index:.2f})",
        "summary": (f"{sensor.service} {sensor.field}{which}: PSI {index:.2f} over the last {_text(sensor.window)} "
                    f"({samples} traces) against the {_text(sensor.baseline)} before it ({baseline_samples} traces); "
                    f"{severity} at {threshold:g}."),
        "psi": f"{index:.3f}",
    })
    return labels, annotations


# --- spike -----------------------------------------------------------------------------------


def _spike(session: Session, sensor: Sensor, now: datetime,
           reads: _Round) -> list[tuple[dict[str, str], dict[str, str]]]:
    rule = sensor.trace
    assert rule is not None
    today, *past_days = spans_needed(now, sensor.window, sensor.days, sensor.sustained)
    fields = reads.fields(sensor, rule.fields)

    def outcomes(start: datetime, end: datetime) -> list[tuple[datetime, bool]]:
        rows = reads.read(("spike", sensor.service, start, end, fields),
                          lambda: _read_events(session, sensor.service, fields, start, end))
        return rule.outcomes(rows)

    # Past days' spans are read with a margin ahead and kept until ``now`` has used it up: they
    # are history, while today's span is read every round (its traces are still arriving).
    margin = max((sensor.sustained + sensor.window) / 10, timedelta(minutes=10))
    history = _HISTORY.get(session, sensor, "past-days", now, margin, lambda: [
        pair for start, end in past_days for pair in outcomes(start, end + margin)])
    verdict = spike(Outcomes(history + outcomes(*today)), now, window=sensor.window, days=sensor.days,
                    factor=sensor.factor,
                    sustained=sensor.sustained, min_samples=sensor.min_samples, min_rate=sensor.min_rate)
    if not verdict.firing:
        return []
    ratio = verdict.current / max(verdict.baseline, sensor.min_rate)
    annotations = _annotations(sensor, {
        "title": f"{sensor.service}: {rule} spiked to {verdict.current:.1%} ({ratio:.1f}× the usual)",
        "summary": (f"{sensor.service}: {rule} in {verdict.current:.1%} of the last {_text(sensor.window)} "
                    f"({verdict.samples} traces), {ratio:.1f}× the same hour of the last {sensor.days} days "
                    f"({verdict.baseline:.1%}), for {_text(sensor.sustained)}; fires above {sensor.factor:g}×."),
        "rate": f"{verdict.current:.4f}", "baseline_rate": f"{verdict.baseline:.4f}",
    })
    return [(_labels(sensor, sensor.severity), annotations)]


def _read_events(session: Session, service: str, fields: tuple[str, ...], start: datetime,
                 end: datetime) -> list[tuple[datetime, dict[str, Any]]]:
    """``(timestamp, {field: value})`` of the service's traces in ``(start, end]``."""
    stmt = (select(col(Trace.timestamp), _fields_object(session.get_bind().dialect.name, fields))
            .where(col(Trace.service) == service, col(Trace.timestamp) > start, col(Trace.timestamp) <= end))
    rows = session.execute(stmt).all()
    # Each row's object comes as JSON text and all of them are parsed in one call: parsing them
    # one by one (as a JSON column's result processor does) cost more than reading the rows.
    values = json.loads("[" + ",".join(text for _, text in rows) + "]")
    return [(as_utc(ts), value) for (ts, _), value in zip(rows, values, strict=True)]


def _fields_object(dialect: str, fields: tuple[str, ...]) -> Any:
    """``{field: value}`` of a trace's data as the text of one JSON object: one JSON text to parse
    per row instead of one per field (most of a spike's first round was parsing them). The values
    are what ``data[path]`` gives on each database (SQLite's JSON functions give 1/0 for
    true/false there as well)."""
    pairs: list[Any] = []
    for name in fields:
        path = field_path(name)
        value: Any
        if dialect == "sqlite":
            # json_extract keeps an array or object as JSON (its subtype) and a string as text,
            # which json_object quotes: the values JSON_QUOTE(JSON_EXTRACT(…)) gives one by one.
            value = func.json_extract(col(Trace.data), "$" + "".join(f'."{part}"' for part in path))
        else:
            value = col(Trace.data)[path]
        pairs += [literal(name), value]
    if dialect == "sqlite":
        return func.json_object(*pairs, type_=Text)
    return cast(func.json_build_object(*pairs), Text)


# --- alerts through the intake --------------------------------------------------------------


def _labels(sensor: Sensor, severity: str) -> dict[str, str]:
    return {**sensor.labels, "alertname": sensor.alertname, "sensor": sensor.name, "sensor_kind": sensor.kind,
            "service": sensor.service, "severity": severity}


def _annotations(sensor: Sensor, values: dict[str, str]) -> dict[str, str]:
    if sensor.description:
        values["description"] = sensor.description
    if sensor.runbook:
        values["runbook"] = sensor.runbook
    return values


def _text(duration: Any) -> str:
    seconds = int(duration.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _send(session: Session, sensor: Sensor, wanted: list[tuple[dict[str, str], dict[str, str]]], now: datetime,
          rules: IntakeRules, external_url: str) -> list[IngestResult]:
    firing = _firing(session, sensor)
    alerts: list[SensorAlert] = []
    for labels, alert_notes in wanted:
        before = firing.pop(frozenset(labels.items()), None)
        alerts.append(SensorAlert(labels, alert_notes, "firing", before.starts_at if before else now, None))
    alerts += [SensorAlert(a.labels, a.annotations, "resolved", a.starts_at, now) for a in firing.values()]
    if not alerts:
        return []
    notes = [from_alertmanager(to_alertmanager_payload(group, receiver=RECEIVER, external_url=external_url,  # type: ignore[arg-type]
                                                       group_by=GROUP_BY),
                               received_at=now, source=SOURCE) for group in _by_group(alerts)]
    return ingest_many(session, notes, rules, now=now)


def _firing(session: Session, sensor: Sensor) -> dict[frozenset[tuple[str, str]], SensorAlert]:
    groups = [g.id for g in session.execute(select(AlertGroup).where(col(AlertGroup.source) == SOURCE)).scalars()
              if g.group_labels.get("alertname") in ALERTNAMES and g.group_labels.get("sensor") == sensor.name
              and g.group_labels.get("service") == sensor.service]
    if not groups:
        return {}
    rows = session.execute(select(Alert).where(col(Alert.group_id).in_(groups), col(Alert.status) == "firing")
                           .order_by(col(Alert.starts_at), col(Alert.id))).scalars()
    firing: dict[frozenset[tuple[str, str]], SensorAlert] = {}
    for row in rows:
        starts_at = as_utc(row.starts_at)
        assert starts_at is not None
        # Ordered by start: a later episode of the same labels replaces an earlier one.
        firing[frozenset(row.labels.items())] = SensorAlert(dict(row.labels), dict(row.annotations), "firing",
                                                            starts_at, None)
    return firing


def _by_group(alerts: Iterable[SensorAlert]) -> list[list[SensorAlert]]:
    groups: dict[tuple[str, ...], list[SensorAlert]] = {}
    for alert in alerts:
        groups.setdefault(tuple(alert.labels.get(name, "") for name in GROUP_BY), []).append(alert)
    return list(groups.values())
