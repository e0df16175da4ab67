"""Export an incident's failing traces as eval cases (``warroom evals export``).

The database side of ``bot.evals.cases``: read the traces linked to an incident, turn their stored
events and human labels into cases, merge them into the eval folder, and note on the incident
how many cases it contributed. Running it again with nothing new changes no file and records
nothing twice.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Text, cast, or_, select
from sqlalchemy.engine import Row
from sqlmodel import Session, col

from bot import redact
from bot.clock import as_utc
from bot.evals.cases import (
    INPUT_MISSING_ATTRIBUTE,
    CaseCollector,
    ExportResult,
    Label,
    TraceFacts,
    case_kinds,
    prompt_key,
    write_eval_files,
)
from bot.incidents import lifecycle, service, timeline
from bot.postmortem.assemble import EVALS_EXPORTED_KIND, incident_ref
from bot.redact import Redactor
from bot.store.models import Incident, Trace
from bot.traces.rules import FailureRules, question_text

log = logging.getLogger(__name__)

# Rows stream from the database in batches of this many: memory stays flat however big the incident.
FETCH_BATCH = 2_000
# Only the fields a case is built from leave the database, not the whole stored event: JSON
# decoding 100,000 events costs seconds, extracting three fields in SQL does not.
_LABEL = cast(Trace.label, Text).label("label_text")
_KINDS = cast(Trace.failure_types, Text).label("kinds_text")
_FACTS = (col(Trace.id), col(Trace.request_id), col(Trace.timestamp), col(Trace.bundle_version), col(Trace.prompt_hash),
          col(Trace.data)["input"].label("input"), col(Trace.data)["output"].as_string().label("output"),
          col(Trace.data)["expected"].as_string().label("expected"),
          col(Trace.data)[("attributes", INPUT_MISSING_ATTRIBUTE)].as_string().label("input_missing"))


def export_incident(session: Session, incident_id: int, out_dir: Path, *, target_url: str,
                    rules: FailureRules = FailureRules(), redactor: Redactor | None = None) -> ExportResult:
    """The incident's failing traces (and the ones a human labelled wrong) as cases in ``out_dir``.

    Failure types are the ones found when each trace arrived (stored with it); ``rules`` gives
    the thresholds the cases assert, e.g. the latency limit."""
    incident = service.get(session, incident_id)
    collector = CaseCollector(incident_id=incident_ref(incident), rules=rules, redactor=redactor or redact.DEFAULT)
    for row in _export_rows(session, incident_id):
        _add_row(collector, row)
    lines = collector.lines(load=lambda ids: _reload(session, ids))
    result = write_eval_files(lines, Path(out_dir), target_url=target_url)
    if lines:
        _record(session, incident, ["|".join(line.key) for line in lines], result, Path(out_dir))
    return result


def export_since(session: Session, since: datetime, out_dir: Path, *, target_url: str,
                 rules: FailureRules = FailureRules(), redactor: Redactor | None = None) -> ExportResult:
    """Every incident resolved (or closed) at or after ``since``, oldest first, into one folder."""
    incidents = session.execute(
        select(col(Incident.id)).where(col(Incident.status).in_((lifecycle.RESOLVED, lifecycle.CLOSED)),
                                  col(Incident.resolved_at) >= since)
        .order_by(col(Incident.resolved_at), col(Incident.id))
    ).scalars().all()
    written = deduplicated = 0
    # Without incidents the folder still gets its config, so CI finds a runnable (empty) suite.
    result = write_eval_files([], Path(out_dir), target_url=target_url)
    for incident_id in incidents:
        result = export_incident(session, incident_id, out_dir, target_url=target_url, rules=rules, redactor=redactor)
        written, deduplicated = written + result.written, deduplicated + result.deduplicated
    return ExportResult(paths=result.paths, written=written, deduplicated=deduplicated, total=result.total)


def _export_rows(session: Session, incident_id: int) -> Iterator[Row[Any]]:
    # A trace the rules call healthy counts only once a human labelled it as wrong.
    stmt = (select(*_FACTS, _KINDS, _LABEL)
            .where(col(Trace.incident_id) == incident_id, or_(col(Trace.failed), _LABEL != "{}"))
            .order_by(col(Trace.timestamp), col(Trace.request_id))  # the earliest trace of a case comes first
            .execution_options(yield_per=FETCH_BATCH))
    yield from session.connection().execute(stmt)  # plain rows: no ORM loading per row


def _add_row(collector: CaseCollector, row: Row[Any]) -> None:
    label = _label(row.request_id, row.label_text)
    question = "" if row.prompt_hash else question_text(row.input)  # only needed without a prompt hash
    collector.add(row.id, prompt_key=prompt_key(row.prompt_hash, question),
                  kinds=case_kinds(_stored_kinds(row.kinds_text), label), label=label, facts=lambda: _facts(row))


@functools.lru_cache(maxsize=256)
def _stored_kinds(kinds_text: str | None) -> tuple[str, ...]:
    # A handful of distinct lists ('["hallucination"]', …) over 100,000 rows: parse each once.
    kinds = json.loads(kinds_text) if kinds_text else []
    return tuple(kind for kind in kinds if isinstance(kind, str)) if isinstance(kinds, list) else ()


def _facts(row: Row[Any]) -> TraceFacts:
    def text(value: Any) -> str | None:
        return value if isinstance(value, str) else None

    return TraceFacts(row.request_id, as_utc(row.timestamp) or row.timestamp, question_text(row.input),
                      text(row.output), text(row.expected), row.bundle_version, row.prompt_hash,
                      text(row.input_missing))


def _reload(session: Session, ids: list[int]) -> dict[int, TraceFacts]:
    """The traces ``ids`` again (cases a later trace's label changed), in chunks the driver accepts."""
    loaded: dict[int, TraceFacts] = {}
    for start in range(0, len(ids), 500):
        rows = session.connection().execute(select(*_FACTS).where(col(Trace.id).in_(ids[start:start + 500])))
        loaded.update({row.id: _facts(row) for row in rows})
    return loaded


def _label(request_id: str, label_text: str | None) -> Label | None:
    if not label_text or label_text in ("{}", "null"):
        return None
    try:
        label = Label.model_validate_json(label_text)
    except ValidationError as exc:
        # A mistyped label must not cost the incident its other cases; the trace still exports unlabelled.
        log.warning("label on trace %s ignored: %s", request_id, exc)
        return None
    return label if label != Label() else None


def _record(session: Session, incident: Incident, case_keys: list[str], result: ExportResult, out_dir: Path) -> None:
    count = len(case_keys)
    # The same set of cases is one export, however often it is run.
    digest = hashlib.sha256("\n".join(sorted(case_keys)).encode()).hexdigest()[:16]
    noun = "case" if count == 1 else "cases"
    timeline.record(session, incident, EVALS_EXPORTED_KIND,
                    f"{count} eval {noun} exported to {out_dir.name or out_dir}",
                    actor="warroom", data={"cases": count, "new_in_folder": result.written, "out_dir": str(out_dir)},
                    dedupe_key=f"evals:{incident.id}:{digest}")
