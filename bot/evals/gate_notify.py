"""A gate run tells the incidents whose failures its cases came from how the candidate did."""

from __future__ import annotations

from sqlmodel import Session

from bot.effects import PostMessage
from bot.evals.gate import ERROR, GateReport
from bot.incidents import timeline
from bot.store import outbox
from bot.store.models import Incident

# A Slack message is one summary, not a wall: the JSON/JUnit reports have every case.
MAX_LINES = 8


def contributing_incidents(report: GateReport) -> list[int]:
    seen: set[int] = set()
    for verdict in [*report.failures, *report.tolerated]:
        seen.update(verdict.case.incidents)
    seen.update(report.incidents)
    return sorted(seen)


def post_to_incidents(session: Session, report: GateReport) -> None:
    """Timeline entry and channel message on every incident that contributed cases (once per run)."""
    if report.status == ERROR or report.run_id is None:
        return
    lines = report.summary().splitlines()
    text = "\n".join(lines[:MAX_LINES] + ([f"… {len(lines) - MAX_LINES} more line(s) in the report"]
                                          if len(lines) > MAX_LINES else []))
    for incident_id in contributing_incidents(report):
        incident = session.get(Incident, incident_id)
        if incident is None:
            continue
        timeline.record(session, incident, "eval_gate", lines[0], actor="warroom",
                        data={"run_id": report.run_id, "bundle": f"{report.service}:{report.version}",
                              "status": report.status}, dedupe_key=f"eval-gate:{report.run_id}:{incident_id}")
        outbox.enqueue(session, PostMessage(incident_id=incident_id, text=text),
                       key=f"eval-gate:{report.run_id}:{incident_id}", incident_id=incident_id)
