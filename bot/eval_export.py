"""Export an incident's failing traces as eval cases (``warroom evals export``).

The database side of ``bot.evals``: read the traces linked to an incident, turn their stored
events and human labels into cases, merge them into the eval folder, and note on the incident
how many cases it contributed. Running it again with nothing new changes no file and records
nothing twice.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime
from pathlib import Path

from pydantic import ValidationError
from sqlalchemy import select
from sqlmodel import Session

from bot import traces
from bot.evals import ExportResult, Label, cases_from_traces, write_eval_files
from bot.incidents import lifecycle, service, timeline
from bot.models import Incident, Trace
from bot.postmortem.assemble import EVALS_EXPORTED_KIND, incident_ref
from bot.redact import Redactor
from bot.trace_rules import FailureRules, TraceEvent

log = logging.getLogger(__name__)


def export_incident(session: Session, incident_id: int, out_dir: Path, *, target_url: str,
                    rules: FailureRules = FailureRules(), redactor: Redactor | None = None) -> ExportResult:
    incident = service.get(session, incident_id)
    events, labels = _failing_events(session, incident_id)
    cases = cases_from_traces(events, incident_id=incident_ref(incident), labels=labels, rules=rules,
                              redactor=redactor or Redactor())
    result = write_eval_files(cases, Path(out_dir), target_url=target_url)
    if cases:
        _record(session, incident, ["|".join(c.dedupe_key) for c in cases], result, Path(out_dir))
    return result


def export_since(session: Session, since: datetime, out_dir: Path, *, target_url: str,
                 rules: FailureRules = FailureRules(), redactor: Redactor | None = None) -> ExportResult:
    """Every incident resolved (or closed) at or after ``since``, oldest first, into one folder."""
    incidents = session.execute(
        select(Incident.id).where(Incident.status.in_((lifecycle.RESOLVED, lifecycle.CLOSED)),
                                  Incident.resolved_at >= since)
        .order_by(Incident.resolved_at, Incident.id)
    ).scalars().all()
    written = deduplicated = 0
    # Without incidents the folder still gets its config, so CI finds a runnable (empty) suite.
    result = write_eval_files([], Path(out_dir), target_url=target_url)
    for incident_id in incidents:
        result = export_incident(session, incident_id, out_dir, target_url=target_url, rules=rules, redactor=redactor)
        written, deduplicated = written + result.written, deduplicated + result.deduplicated
    return ExportResult(paths=result.paths, written=written, deduplicated=deduplicated, total=result.total)


def _failing_events(session: Session, incident_id: int) -> tuple[list[TraceEvent], dict[str, Label]]:
    rows = session.execute(
        select(Trace).where(Trace.incident_id == incident_id).order_by(Trace.timestamp, Trace.id)
    ).scalars()
    events: list[TraceEvent] = []
    labels: dict[str, Label] = {}
    for row in rows:
        if not (row.failed or row.label):
            continue  # a trace the rules call healthy counts only once a human labelled it as wrong
        try:
            events.append(traces.as_event(row))
        except ValidationError as exc:
            log.warning("trace %s skipped from the eval export: its stored event is invalid: %s", row.request_id, exc)
            continue
        label = _label(row)
        if label is not None:
            labels[row.request_id] = label
    return events, labels


def _label(row: Trace) -> Label | None:
    if not row.label:
        return None
    try:
        return Label.model_validate(row.label)
    except ValidationError as exc:
        # A mistyped label must not cost the incident its other cases; the trace still exports unlabelled.
        log.warning("label on trace %s ignored: %s", row.request_id, exc)
        return None


def _record(session: Session, incident: Incident, case_keys: list[str], result: ExportResult, out_dir: Path) -> None:
    count = len(case_keys)
    # The same set of cases is one export, however often it is run.
    digest = hashlib.sha256("\n".join(sorted(case_keys)).encode()).hexdigest()[:16]
    noun = "case" if count == 1 else "cases"
    timeline.record(session, incident, EVALS_EXPORTED_KIND, f"{count} eval {noun} exported to {out_dir.name or out_dir}",
                    actor="warroom", data={"cases": count, "new_in_folder": result.written, "out_dir": str(out_dir)},
                    dedupe_key=f"evals:{incident.id}:{digest}")
