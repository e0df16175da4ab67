"""The guard: after a mitigating action, did the incident's SLI get better?

When a mitigating run (automatic or a person's) succeeds and the incident's SLO is known, the
guard takes the SLI's error ratio before the run as its baseline and looks again every
``WARROOM_GUARD_CHECK_SECONDS`` until ``WARROOM_GUARD_SECONDS`` after it:

* improved -- the ratio since the run is under the objective's error budget, or down by
  ``WARROOM_GUARD_IMPROVEMENT`` of the baseline, on at least ``WARROOM_GUARD_MIN_REQUESTS``
  requests: the incident becomes mitigated, with the figures as evidence;
* not improved by the deadline: the channel hears it, the owners are paged again and, when the
  runbook's rule says ``undo_if_not_improved`` for warroom's own run, warroom undoes it and
  proposes the runbook's next action.

The ratio comes from stored traces through the built-in watcher's rule, or from Prometheus (the
SLO file's query) when ``WARROOM_PROMETHEUS_URL`` is set and the SLO has one (`bot.slo.sli`).
Checks are outbox rows with a delay and no incident order, so a waiting check never holds up the
incident's other effects.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from bot.actions.runner import RunResult
from bot.actions.service import MITIGATING, Actions, describe
from bot.automation.rules import AutoRule
from bot.clock import as_utc, utcnow
from bot.config import Settings
from bot.effects import GuardCheck, Handlers, PostMessage, PostReminder
from bot.errors import UserError
from bot.incidents import lifecycle, timeline
from bot.incidents import service as incidents
from bot.incidents.permissions import AUTOMATION, Actor
from bot.runbooks import RunbookSet
from bot.said import of_error, said
from bot.slo.sli import PrometheusSLI, Reading, SLISource, TraceSLI
from bot.slo.spec import SLO
from bot.store import outbox
from bot.store.db import transaction
from bot.store.models import ActionGuard, ActionRun, Incident, saved_id
from bot.telemetry import Metrics

log = logging.getLogger(__name__)

# The "before" ratio covers at least this much time before the run (a short guard window would
# otherwise judge against a handful of requests).
MIN_BASELINE = timedelta(minutes=5)


@dataclass(frozen=True)
class GuardSettings:
    window: timedelta = timedelta(seconds=120)
    every: float = 5.0
    improvement: float = 0.5
    min_requests: int = 10
    automation: bool = True

    @classmethod
    def from_settings(cls, settings: Settings) -> GuardSettings:
        return cls(window=timedelta(seconds=settings.guard_seconds), every=settings.guard_check_seconds,
                   improvement=settings.guard_improvement, min_requests=settings.guard_min_requests,
                   automation=settings.automation)


class Guard:
    def __init__(self, engine: Engine, slos: Sequence[SLO], settings: GuardSettings, runbooks: RunbookSet,
                 actions: Actions, metrics: Metrics | None = None, prometheus: PrometheusSLI | None = None) -> None:
        self.engine, self.settings, self.runbooks, self.actions = engine, settings, runbooks, actions
        self.metrics, self.prometheus = metrics, prometheus
        self.slos = {(slo.service, slo.name): slo for slo in slos}
        self.traces = TraceSLI()

    def handlers(self) -> Handlers:
        handlers = Handlers()
        handlers.on(GuardCheck, lambda effect: self.check(effect.guard_id))
        return handlers

    def source_for(self, slo: SLO) -> SLISource | None:
        if self.prometheus is not None and slo.prometheus is not None:
            return self.prometheus
        return self.traces if slo.trace is not None else None

    def slo_for(self, incident: Incident) -> SLO | None:
        labels = incident.labels or {}
        service = incident.service or labels.get("sloth_service")
        name = incident.slo or labels.get("sloth_slo")
        return self.slos.get((service or "", name or ""))

    # --- start ------------------------------------------------------------------------------

    def watch(self, session: Session, run: ActionRun, incident: Incident, result: RunResult) -> bool:
        """Start watching after a succeeded mitigating run; False when there is no SLI to watch
        (the run then mitigates the incident at once, as it always did)."""
        if result.status != "succeeded" or run.undo_of or run.playbook not in MITIGATING:
            return False
        slo = self.slo_for(incident)
        source = self.source_for(slo) if slo else None
        if slo is None or source is None:
            return False
        finished = as_utc(run.finished_at) or utcnow()
        began = as_utc(run.started_at) or finished
        # Traces are read in this transaction; Prometheus is asked at the first check, outside any
        # transaction (an HTTP call must not hold the database's locks).
        before = (source.read(session, slo, began - max(self.settings.window, MIN_BASELINE), began)
                  if isinstance(source, TraceSLI) else Reading(None, None))
        rule = self._rule(incident, run)
        assert incident.id is not None and run.id is not None
        guard = ActionGuard(incident_id=incident.id, run_id=run.id, slo=slo.name, source=source.name, status="watching",
                            undo_if_not_improved=bool(rule and rule.undo_if_not_improved), started_at=finished,
                            deadline=finished + self.settings.window, baseline_ratio=before.ratio,
                            baseline_total=before.requests or 0, last_total=0)
        session.add(guard)
        session.flush()
        seconds = int(self.settings.window.total_seconds())
        text = (f"Guard: watching {slo.name} for {seconds} s after {describe(run)} "
                f"(before: {_pct(before.ratio)} bad, objective {slo.objective} %; from {source.name})")
        timeline.record(session, incident, "guard_started", text, actor="warroom", echo=True,
                        data={"run": run.id, "guard": guard.id})
        incidents.refresh_card(session, incident)
        self._next(session, guard, 0)
        return True

    def _rule(self, incident: Incident, run: ActionRun) -> AutoRule | None:
        if run.requested_by != AUTOMATION or not incident.runbook_id:
            return None
        runbook = self.runbooks.get(incident.runbook_id)
        return next((r for r in (runbook.auto if runbook else ()) if r.run == run.playbook), None)

    def _next(self, session: Session, guard: ActionGuard, n: int) -> None:
        outbox.enqueue(
            session, GuardCheck(guard_id=saved_id(guard)), key=f"guard:{guard.id}:{n}", delay=self.settings.every
        )

    # --- checks -----------------------------------------------------------------------------

    def check(self, guard_id: int, *, now: datetime | None = None) -> str:
        """One look; the guard's status after it. The SLI is read first, without locks (and, from
        Prometheus, outside any transaction); the verdict is taken on the locked guard."""
        now = now or utcnow()
        with transaction(self.engine) as session:
            guard = session.get(ActionGuard, guard_id)
            if guard is None or guard.status != "watching":
                return guard.status if guard else "gone"
            incident = incidents.get(session, guard.incident_id)
            slo = self.slo_for(incident)
            source = self.source_for(slo) if slo else None
            run = self.actions.get_run(session, guard.run_id)
            since, began = as_utc(guard.started_at), as_utc(run.started_at)
            need_baseline = guard.baseline_ratio is None and isinstance(source, PrometheusSLI)
            reading = before = None
            if slo is not None and isinstance(source, TraceSLI):
                reading = source.read(session, slo, since, now)
        if slo is not None and isinstance(source, PrometheusSLI):
            reading = source.read(None, slo, since, now)
            if need_baseline and began is not None:
                before = source.read(None, slo, began - max(self.settings.window, MIN_BASELINE), began)
        with transaction(self.engine) as session:
            guard = session.execute(select(ActionGuard).where(col(ActionGuard.id) == guard_id)
                                    .with_for_update()).scalar_one()
            if guard.status != "watching":
                return guard.status
            incident = incidents.get_for_update(session, guard.incident_id)
            if not lifecycle.is_open(incident.status) or slo is None or reading is None:
                guard.status = "ended"
                return guard.status
            if before is not None and guard.baseline_ratio is None:
                guard.baseline_ratio = before.ratio
            guard.last_ratio, guard.last_total = reading.ratio, reading.requests or 0
            enough = reading.requests is None or reading.requests >= self.settings.min_requests
            if enough and reading.ratio is not None and self._better(slo, guard.baseline_ratio, reading.ratio):
                self._improved(session, guard, incident, slo, reading, now)
            elif now >= as_utc(guard.deadline):
                self._not_improved(session, guard, incident, slo, reading, now)
            else:
                self._next(session, guard, int(now.timestamp() * 1000))
            return guard.status

    def _better(self, slo: SLO, baseline: float | None, ratio: float) -> bool:
        if ratio <= slo.error_budget:
            return True
        return baseline is not None and baseline > 0 and ratio <= baseline * (1 - self.settings.improvement)

    def _evidence(self, guard: ActionGuard, slo: SLO, run: ActionRun, reading: Reading, now: datetime) -> str:
        seconds = int((now - as_utc(guard.started_at)).total_seconds())
        counted = f"{reading.requests} requests, " if reading.requests is not None else ""
        return (f"{slo.name} error ratio {_pct(guard.baseline_ratio)} → {_pct(reading.ratio)} within {seconds} s "
                f"of {describe(run)} ({counted}from {guard.source})")

    def _improved(self, session: Session, guard: ActionGuard, incident: Incident, slo: SLO, reading: Reading,
                  now: datetime) -> None:
        run = self.actions.get_run(session, guard.run_id)
        guard.status, guard.verdict_at = "improved", now
        guard.evidence = self._evidence(guard, slo, run, reading, now)
        timeline.record(session, incident, "guard_improved", f"✅ Guard: improved — {guard.evidence}",
                        actor="warroom", echo=True, data={"run": run.id, "guard": guard.id})
        actor = AUTOMATION if run.requested_by == AUTOMATION else "warroom"
        incidents.mitigate(session, incident, actor=actor, reason=f"{describe(run)} worked: {guard.evidence}")
        self._observe("improved", incident, now)

    def _not_improved(self, session: Session, guard: ActionGuard, incident: Incident, slo: SLO, reading: Reading,
                      now: datetime) -> None:
        run = self.actions.get_run(session, guard.run_id)
        guard.status, guard.verdict_at = "not_improved", now
        guard.evidence = self._evidence(guard, slo, run, reading, now)
        if reading.ratio is None:
            guard.evidence += "; no requests to judge by"
        timeline.record(session, incident, "guard_not_improved", f"⚠️ Guard: not improved — {guard.evidence}",
                        actor="warroom", echo=True, data={"run": run.id, "guard": guard.id})
        outbox.enqueue(session, PostReminder(incident_id=saved_id(incident), mention="owners", text=(
            f"{describe(run)} did not bring {slo.name} back within {int(self.settings.window.total_seconds())} s. "
            "Paging the owners again: the incident needs a person.")), key=f"guard-page:{guard.id}",
            incident_id=incident.id)
        self._observe("not_improved", incident, now)
        incidents.refresh_card(session, incident)
        if not (guard.undo_if_not_improved and self.settings.automation and incident.automation_off_by is None):
            return
        try:
            undo, _ = self.actions.request_undo(session, run, Actor.automation())
        except UserError as exc:
            timeline.record(session, incident, "auto_refused",
                            said(f"{AUTOMATION} could not undo run #{run.id}: ", of_error(exc)),
                            actor=AUTOMATION, echo=True)
            return
        timeline.record(session, incident, "auto_undo",
                        f"{AUTOMATION} undoes {describe(run)} (run #{undo.id}): "
                        "the runbook says to when it does not help",
                        actor=AUTOMATION, echo=True, data={"run": undo.id})
        self._propose_next(session, incident, run)

    def _propose_next(self, session: Session, incident: Incident, run: ActionRun) -> None:
        runbook = self.runbooks.get(incident.runbook_id) if incident.runbook_id else None
        names = list(runbook.actions) if runbook else []
        later = names[names.index(run.playbook) + 1:] if run.playbook in names else names
        assert incident.id is not None
        tried = {r.playbook for r in self.actions.runs(session, incident.id)}
        for name in later:
            if name in tried or name not in self.actions.playbooks or name not in MITIGATING:
                continue
            try:
                proposal, _ = self.actions.request_automatic(
                    session, incident, name, {}, propose=True,
                    why=f"{run.playbook} did not help, and it is the runbook's next action")
            except UserError:
                continue  # it needs a value the incident does not carry (e.g. a tool name): the next one
            outbox.enqueue(session, PostMessage(incident_id=incident.id, text=(
                f"🤖 warroom proposes {describe(proposal)} next; it runs only when a person approves it on its card.")),
                key=f"auto-said:{proposal.id}", incident_id=incident.id)
            return

    def _observe(self, verdict: str, incident: Incident, now: datetime) -> None:
        opened = as_utc(incident.opened_at)
        if self.metrics is not None and opened is not None:
            self.metrics.observe_guard_verdict(verdict, (now - opened).total_seconds())


def _pct(ratio: float | None) -> str:
    return "no data" if ratio is None else f"{ratio * 100:.1f} %"
