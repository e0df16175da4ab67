"""The built-in SLO watcher: burn-rate alerts computed from stored traces, for setups without Prometheus.

Each evaluation turns an SLO's traces into good/bad outcomes (its trace rule), runs the same
multi-window multi-burn-rate math as the generated Prometheus rules, and hands the result to the
alert intake as an Alertmanager notification (source ``watcher``). Grouping, dedupe, incident
opening and resolving are therefore the intake's, exactly as for Prometheus' alerts.

Alert state between evaluations is not kept anywhere of its own: the alerts still firing are the
``Alert`` rows of the watcher's groups. That state is shared by every process, survives restarts,
and is read in the same transaction (holding the SLO's lease) as the ingest that changes it, so
two processes can neither disagree about an alert's ``startsAt`` (which would make one burn two
episodes) nor see a state file that the database has moved past.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Final

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from bot.alerts.correlation import correlation_rules
from bot.alerts.intake import IngestResult, IntakeRules, ingest_many
from bot.alerts.normalize import from_alertmanager
from bot.clock import as_utc
from bot.config import Settings
from bot.incidents.reminders import leased
from bot.runbooks import load_runbooks
from bot.slo.burn import BurnAlert, evaluate, to_alertmanager_payload, trace_outcomes
from bot.slo.labels import GROUP_BY, alert_labels
from bot.slo.spec import SLO
from bot.slo.tracerule import field_path
from bot.slo.windows import NOMINAL_WINDOWS, SEVERITIES, WindowSet
from bot.store.models import Alert, AlertGroup, Trace

SOURCE: Final = "watcher"
RECEIVER = "warroom-watcher"


def evaluate_slos(engine: Engine, settings: Settings, slos: Sequence[SLO], now: datetime, *,
                  windows: WindowSet | None = None, rules: IntakeRules | None = None) -> list[IngestResult]:
    """Evaluate every SLO that has a trace rule at ``now``; one intake result per notification sent.

    ``rules`` defaults to the settings' severity map and runbooks (``Runtime.intake_rules`` is
    the same thing, already loaded).
    """
    windows = windows or WindowSet()
    rules = rules or intake_rules(settings)
    moment = as_utc(now)
    assert moment is not None
    results: list[IngestResult] = []
    for slo in slos:
        if slo.trace is None:
            continue  # watched by Prometheus only
        with leased(engine, f"watch:{slo.id}") as session:
            if session is None:
                continue
            results.extend(_evaluate_one(session, slo, moment, windows, rules, settings.public_url))
    return results


def intake_rules(settings: Settings) -> IntakeRules:
    runbooks = load_runbooks(settings.runbooks_dir)

    def choose(labels: dict[str, str], annotations: dict[str, str]) -> tuple[str | None, int | None]:
        runbook = runbooks.match(labels, annotations)
        return runbook.id, runbook.severity

    def runbook_keys(runbook_id: str | None) -> tuple[str, ...] | None:
        runbook = runbooks.get(runbook_id) if runbook_id else None
        return runbook.correlate if runbook else None

    return IntakeRules(severity_map=settings.severity_map, default_severity=settings.default_severity,
                       choose_runbook=choose, correlation=correlation_rules(settings), runbook_keys=runbook_keys)


def _evaluate_one(session: Session, slo: SLO, now: datetime, windows: WindowSet, rules: IntakeRules,
                  external_url: str) -> list[IngestResult]:
    outcomes = trace_outcomes(slo, _trace_events(session, slo, now, windows))
    previous, stale = _firing_alerts(session, slo)
    alerts = evaluate(slo, outcomes, now, windows, previous) + [_resolved(a, now) for a in stale]
    notes = [from_alertmanager(to_alertmanager_payload(group, receiver=RECEIVER, external_url=external_url),
                               received_at=now, source=SOURCE) for group in _by_group(alerts)]
    # One batch: its group locks are taken in the order every intake batch takes them.
    return ingest_many(session, notes, rules, now=now)


def _trace_events(session: Session, slo: SLO, now: datetime, windows: WindowSet) -> list[tuple[datetime, dict]]:
    """``(timestamp, {field: value})`` for the service's traces in the longest window.

    Only the rule's fields are read from ``data`` (the rest, prompts and answers, can be large).
    SQLite's JSON extraction returns a top-level ``false`` as ``0``; the rule's comparisons are
    Python's, where ``0 == False``, so the outcome is the same.
    """
    assert slo.trace is not None
    fields = slo.trace.fields
    longest = max(windows.duration(w) for w in NOMINAL_WINDOWS)
    stmt = (select(col(Trace.timestamp), *(col(Trace.data)[field_path(f)] for f in fields))
            .where(col(Trace.service) == slo.service, col(Trace.timestamp) > now - longest,
                   col(Trace.timestamp) <= now))
    return [(as_utc(row[0]), dict(zip(fields, row[1:], strict=True)))
            for row in session.execute(stmt).all()]


def _firing_alerts(session: Session, slo: SLO) -> tuple[list[BurnAlert], list[BurnAlert]]:
    """The SLO's alerts firing now, from the watcher's groups: ``(previous, stale)``.

    ``previous`` is what ``evaluate`` continues or resolves. ``stale`` are firing alerts it would
    never look at again (the SLO's labels changed in the file, or a second episode of one alert
    slipped in); they are resolved, so no incident waits forever on an alert nobody evaluates.
    """
    groups = [g.id for g in session.execute(select(AlertGroup).where(col(AlertGroup.source) == SOURCE)).scalars()
              if g.group_labels.get("sloth_service") == slo.service and g.group_labels.get("sloth_slo") == slo.name]
    if not groups:
        return [], []
    rows = session.execute(select(Alert).where(col(Alert.group_id).in_(groups), col(Alert.status) == "firing")
                           .order_by(col(Alert.starts_at), col(Alert.id))).scalars()
    current = {frozenset(alert_labels(slo, severity).items()) for severity in SEVERITIES}
    newest: dict[frozenset[tuple[str, str]], BurnAlert] = {}
    stale: list[BurnAlert] = []
    for row in rows:
        alert = _as_burn_alert(row)
        key = frozenset(alert.labels.items())
        if key not in current:
            stale.append(alert)
            continue
        if key in newest:
            stale.append(newest[key])  # ordered by start: the later episode is the live one
        newest[key] = alert
    return list(newest.values()), stale


def _as_burn_alert(row: Alert) -> BurnAlert:
    try:
        burn_rate = float(row.annotations.get("burn_rate", "0"))
    except ValueError:
        burn_rate = 0.0
    starts_at = as_utc(row.starts_at)
    assert starts_at is not None
    return BurnAlert(labels=dict(row.labels), annotations=dict(row.annotations), status="firing",
                     starts_at=starts_at, ends_at=None, burn_rate=burn_rate)


def _resolved(alert: BurnAlert, now: datetime) -> BurnAlert:
    return BurnAlert(labels=alert.labels, annotations=alert.annotations, status="resolved",
                     starts_at=alert.starts_at, ends_at=now, burn_rate=alert.burn_rate)


def _by_group(alerts: Iterable[BurnAlert]) -> list[list[BurnAlert]]:
    """One notification per Alertmanager group (page and ticket alerts are separate groups)."""
    groups: dict[tuple[str, ...], list[BurnAlert]] = {}
    for alert in alerts:
        groups.setdefault(tuple(alert.labels.get(name, "") for name in GROUP_BY), []).append(alert)
    return list(groups.values())
