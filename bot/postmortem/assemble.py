"""Read one incident's record from the database into a ``PostmortemContext``.

Everything the draft says comes from rows written while the incident ran: the incident's own
timestamps, the timeline, playbook runs, registered release bundles and the traces linked to
it. Nothing here renders; ``bot.postmortem.render`` does that from the returned context.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import func, select
from sqlmodel import Session, col

from bot import redact
from bot.clock import as_utc
from bot.errors import NotFound
from bot.incidents import metrics, service, timeline
from bot.incidents.budget import Budget, ErrorBudget, impact_window, slo_of
from bot.people import Names, display, named_mentions, person, plain_slack_text
from bot.postmortem.context import (
    MAX_TRACE_EXAMPLES,
    ActionRecord,
    BundleLineage,
    Impact,
    IncidentInfo,
    PostmortemContext,
    TimelineEntry,
    TraceExample,
    TraceSummary,
)
from bot.postmortem.response import response_facts
from bot.redact import Redactor
from bot.releases import bundles
from bot.said import Said
from bot.slo.spec import SLO
from bot.store.models import ActionRun, Bundle, Incident, TimelineEvent, Trace
from bot.traces import impact as measured_impact
from bot.traces import ingest as traces

PINNED_KIND = "pinned"
EVALS_EXPORTED_KIND = "evals_exported"
POSTMORTEM_EDIT_KIND = "postmortem_edit"  # a person edited or regenerated it on the page or through the API
# Failing traces read to pick examples from; enough to find one of every failure type.
EXAMPLE_CANDIDATES = 200

def incident_ref(incident: Incident) -> str:
    """``INC-20260314-0001``: readable in a doc title and unique (the date is the opening day)."""
    opened = as_utc(incident.opened_at)
    return f"INC-{opened:%Y%m%d}-{incident.id:04d}"


def build_context(session: Session, incident_id: int, *, redactor: Redactor | None = None,
                  budget_slo: SLO | None = None, eval_cases_added: int | None = None,
                  names: Names | None = None, slos: Sequence[SLO] = (),
                  budget: ErrorBudget | None = None) -> PostmortemContext:
    """``names`` turns Slack user ids into people's names (`bot.people`); without it ids stay.
    ``slos``: the SLO file's SLOs; the incident's own one gives the budget and the failing rule.
    ``budget``: the process's error budget reader (Prometheus when configured; call its ``fetch``
    before the transaction); without it the budget comes from traces by ``slos``."""
    incident = service.get(session, incident_id)
    budget = budget or ErrorBudget(slos)
    budget_slo = budget_slo or slo_of(slos, incident) or budget.slo_for(incident)
    redactor = redactor or redact.DEFAULT
    start, end = impact_window(session, incident)
    lineage = _lineage(session, incident)
    response = response_facts(session, incident, lineage.live_version if lineage.rolled_back_to else None)
    response.cause_named_by = person(response.cause_named_by, names)
    impact = _impact(session, incident, start, end, budget_slo, budget.of(session, incident, start, end, budget_slo))
    if response.cause is not None and (incident.resolved_at or incident.mitigated_at):
        # A change named as the cause started the harm: count the duration from it.
        impact.duration = as_utc(incident.resolved_at or incident.mitigated_at) - response.cause.at  # type: ignore[operator]
    cases_added, cases_updated = _eval_counts(session, incident_id, eval_cases_added)
    return PostmortemContext(
        response=response,
        incident=_info(incident, names),
        impact=impact,
        timeline=_timeline(session, incident_id, names),
        actions=_actions(session, incident_id, names),
        bundles=lineage,
        traces=_traces(session, incident_id, redactor),
        followups=[_followup_text(named_mentions(f.text, names), person(f.owner, names), f.done)
                   for f in service.followups(session, incident_id)],
        eval_cases_added=cases_added,
        eval_cases_updated=cases_updated,
        gate_passed=gate_after(session, incident),
        summary=incident.summary or None,
    )


def _info(incident: Incident, names: Names | None = None) -> IncidentInfo:
    return IncidentInfo(
        id=incident.id or 0, ref=incident_ref(incident), title=incident.title, service=incident.service,
        slo=incident.slo, severity=f"SEV{incident.severity}", status=incident.status,
        opened_at=incident.opened_at, acknowledged_at=incident.acknowledged_at,
        mitigated_at=incident.mitigated_at, resolved_at=incident.resolved_at,
        commander=person(incident.commander, names), channel=incident.channel_name,
    )


def _impact(session: Session, incident: Incident, start: datetime, end: datetime, slo: SLO | None,
            budget: Budget | None) -> Impact:
    failing = session.execute(
        select(func.count()).select_from(Trace).where(col(Trace.incident_id) == incident.id,
                                                      col(Trace.failed).is_(True))
    ).scalar_one()
    consumed, basis = (budget.consumed, budget.basis) if budget else (None, None)
    # No failing trace says nothing unless the service was sending traces at the time.
    affected = failing if failing or traces_in_window(session, incident, start, end) else None
    measured = measured_impact.from_traces(session, incident, slo, start, end)
    if measured is None:
        return Impact(mtta=metrics.mtta(incident), mttr=metrics.mttr(incident), requests_affected=affected,
                      budget_consumed=consumed, budget_source=basis)
    return Impact(mtta=metrics.mtta(incident), mttr=metrics.mttr(incident),
                  requests_affected=measured.failing, requests_served=measured.requests,
                  failing_fraction=measured.failing_fraction, users_affected=measured.people_affected,
                  people_kind=measured.people_kind, source=measured.source,
                  budget_consumed=consumed, budget_source=basis)


def traces_in_window(session: Session, incident: Incident, start: datetime, end: datetime) -> int:
    """All traces the service sent during the incident: the denominator for "requests affected"."""
    if not incident.service:
        return 0
    return session.execute(
        select(func.count()).select_from(Trace).where(col(Trace.service) == incident.service,
                                                      col(Trace.timestamp) >= start,
                                                      col(Trace.timestamp) <= end)
    ).scalar_one()


def _timeline(session: Session, incident_id: int, names: Names | None = None) -> list[TimelineEntry]:
    # Edits of the postmortem itself are not part of the incident's story (and would change the draft).
    return [
        TimelineEntry(at=event.at, kind=event.kind, actor=person(event.actor, names),
                      text=display(Said.from_row(event.text, event.data), names),
                      pinned=event.kind == PINNED_KIND)
        for event in timeline.events(session, incident_id) if event.kind != POSTMORTEM_EDIT_KIND
    ]


def _actions(session: Session, incident_id: int, names: Names | None = None) -> list[ActionRecord]:
    runs = session.execute(
        select(ActionRun).where(col(ActionRun.incident_id) == incident_id).order_by(col(ActionRun.requested_at),
                                                                                    col(ActionRun.id))
    ).scalars()
    return [_action(run, names) for run in runs]


def _action(run: ActionRun, names: Names | None = None) -> ActionRecord:
    started, finished = as_utc(run.started_at), as_utc(run.finished_at)
    took = (finished - started).total_seconds() if started and finished else run.result.get("duration_s")
    verify = run.result.get("verify")
    return ActionRecord(
        playbook=f"{run.playbook} (undo of run {run.undo_of})" if run.undo_of else run.playbook,
        params=run.params, requested_by=person(run.requested_by, names), approved_by=person(run.approved_by, names),
        status="dry run" if run.dry_run else run.status, started_at=started or as_utc(run.requested_at),
        duration_s=float(took) if isinstance(took, (int, float)) else None,
        verify=verify.get("ok") if isinstance(verify, dict) else None,
    )


def _lineage(session: Session, incident: Incident) -> BundleLineage:
    rolled_back_to = _rolled_back_to(session, incident.id)
    if not incident.service:
        return BundleLineage(rolled_back_to=rolled_back_to)
    live = bundles.live_bundle(session, incident.service, as_utc(incident.opened_at))
    if live is None:
        return BundleLineage(rolled_back_to=rolled_back_to)
    previous = bundles.previous_bundle(session, live)
    if previous is None and rolled_back_to and rolled_back_to != live.version:
        # Re-deploying the rollback target moved its deployed_at past the live one, so it no longer
        # sorts before it; it is still the bundle the incident's fix returned to.
        previous = _bundle(session, incident.service, rolled_back_to)
    return BundleLineage(
        live_version=live.version,
        live_components={name: _component(value) for name, value in live.components.items()},
        previous_version=previous.version if previous else None,
        changed_components=[bundles.describe_change([c]) for c in bundles.diff(previous, live)] if previous else [],
        rolled_back_to=rolled_back_to,
    )


def _bundle(session: Session, service: str, version: str) -> Bundle | None:
    try:
        return bundles.get_bundle(session, service, version)
    except NotFound:
        return None


def _component(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return str(value)


def _rolled_back_to(session: Session, incident_id: int | None) -> str | None:
    run = session.execute(
        select(ActionRun).where(col(ActionRun.incident_id) == incident_id, col(ActionRun.playbook) == "rollback",
                                col(ActionRun.status) == "succeeded", col(ActionRun.dry_run).is_(False),
                                col(ActionRun.undo_of).is_(None))
        .order_by(col(ActionRun.finished_at).desc(), col(ActionRun.id).desc()).limit(1)
    ).scalar_one_or_none()
    if run is None:
        return None
    version = run.params.get("bundle") or run.params.get("version")
    return str(version) if version else None


def _traces(session: Session, incident_id: int, redactor: Redactor) -> TraceSummary:
    candidates = traces.failing_traces(session, incident_id, limit=EXAMPLE_CANDIDATES)
    return TraceSummary(counts=traces.counts_by_failure(session, incident_id),
                        examples=[_example(t, redactor) for t in _pick_examples(candidates)])


def _pick_examples(candidates: list[Trace]) -> list[Trace]:
    # Human-labelled traces first (someone judged them), then a new failure type, then a new prompt;
    # five copies of one bad answer would tell the reader less than five different ones.
    ordered = sorted(candidates, key=lambda t: not t.label)
    picked: list[Trace] = []
    seen_kinds: set[str] = set()
    seen_prompts: set[str | None] = set()
    # The tests read the sets as the loop below grows them: that late binding is the point.
    for wants in (lambda t: bool(t.label) or not set(t.failure_types) <= seen_kinds,  # noqa: B023
                  lambda t: t.prompt_hash not in seen_prompts,
                  lambda t: True):
        for trace in ordered:
            if len(picked) == MAX_TRACE_EXAMPLES:
                return picked
            if all(trace is not p for p in picked) and wants(trace):
                picked.append(trace)
                seen_kinds |= set(trace.failure_types)
                seen_prompts.add(trace.prompt_hash)
    return picked


def _example(trace: Trace, redactor: Redactor) -> TraceExample:
    try:
        event = traces.as_event(trace)
        question, output = event.question, event.output
    except ValidationError:
        # A stored event the current model rejects still deserves a line in the draft.
        question, output = str(trace.data.get("input", "")), trace.data.get("output")
    labelled = trace.label.get("failure_type")  # a human's verdict replaces the detector's, as in the counts
    return TraceExample(request_id=trace.request_id, input=redactor.redact(question),
                        output=redactor.redact(str(output)) if output is not None else None,
                        failure_types=[labelled] if labelled else list(trace.failure_types))


def _followup_text(text: str, owner: str | None, done: bool) -> str:
    who = f" (owner @{owner})" if owner else ""
    return f"{plain_slack_text(text)}{who}" + (" — done" if done else "")


def _eval_counts(session: Session, incident_id: int, given: int | None) -> tuple[int, int | None]:
    """``(added, updated)`` cases of the service's suite (`bot.evals.suite`); without any, the last export's
    count and ``None`` for updated."""
    if given is not None:
        return given, None
    from bot.evals.suite import incident_case_counts
    counts = incident_case_counts(session, incident_id)
    if counts["new"] or counts["updated"]:
        return counts["new"], counts["updated"]
    return exported_case_count(session, incident_id), None


def gate_after(session: Session, incident: Incident) -> str | None:
    """"llm-gateway:v43 passed eval gate run #3 on 2026-03-15 09:12 UTC", for the first such run after the
    incident opened."""
    from bot.store.models import EvalRun
    if not incident.service:
        return None
    run = session.execute(
        select(EvalRun).where(col(EvalRun.service) == incident.service, col(EvalRun.kind) == "gate",
                              col(EvalRun.status) == "passed",
                              col(EvalRun.started_at) >= incident.opened_at)
        .order_by(col(EvalRun.started_at), col(EvalRun.id)).limit(1)).scalar_one_or_none()
    if run is None:
        return None
    at = as_utc(run.finished_at or run.started_at)
    return f"{run.service}:{run.bundle_version} passed eval gate run #{run.id} on {at:%Y-%m-%d %H:%M} UTC"


def exported_case_count(session: Session, incident_id: int) -> int:
    """Cases the last eval export wrote for this incident (``bot.evals.export`` records it)."""
    event = session.execute(
        select(TimelineEvent).where(col(TimelineEvent.incident_id) == incident_id,
                                    col(TimelineEvent.kind) == EVALS_EXPORTED_KIND)
        .order_by(col(TimelineEvent.at).desc(), col(TimelineEvent.id).desc()).limit(1)
    ).scalar_one_or_none()
    return int(event.data.get("cases", 0)) if event else 0
