"""Action runs: request → (confirm) → (approve) → queued → running → succeeded | failed | unknown.

This is where playbooks meet the database and the incident: the idempotency key makes a double
click or a Slack retry one run; a run that a crash left ``running`` becomes ``unknown`` and is
shown, never silently run again; every state lands on the timeline; a run is performed by the
worker (outbox kind ``action.run``), so the Slack answer never waits for the control plane.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot import outbox
from bot.actions import (HostAllowList, ParamError, Playbook, check_approver, check_requester, idempotency_key,
                         load_playbooks, load_targets, parse_args, run_playbook, run_undo, secrets_from_env,
                         validate_params)
from bot.actions.runner import RunResult
from bot.clock import utcnow
from bot.db import insert_or_ignore, transaction
from bot.errors import InvalidTransition, NotFound, PermissionDenied, UserError
from bot.incidents import service as incidents
from bot.incidents import timeline
from bot.models import ActionRun, Incident

log = logging.getLogger(__name__)

ACTIVE = ("awaiting_confirmation", "awaiting_approval", "queued", "running")
MITIGATING = {"fallback", "rollback", "disable-tool", "unleash-kill-switch"}


@dataclass
class Requester:
    """Who asks, as the Slack edge verified it: user id, their user groups, the channel's members."""

    user: str
    groups: set[str]
    channel_members: set[str]


class Actions:
    def __init__(self, engine: Engine, playbooks_dir: Path, allowed_hosts: list[str] | None,
                 environ: Mapping[str, str] | None = None, client: httpx.Client | None = None) -> None:
        self.engine = engine
        self.environ = environ if environ is not None else os.environ
        self.playbooks: dict[str, Playbook] = load_playbooks(playbooks_dir)
        targets_file = playbooks_dir / "targets.yaml"
        self.targets = load_targets(targets_file, environ=self.environ) if targets_file.exists() else {}
        self.hosts = (HostAllowList(allowed_hosts) if allowed_hosts
                      else HostAllowList.from_env(self.environ, targets=self.targets))
        self.client = client or httpx.Client(timeout=10)

    # --- requests ---------------------------------------------------------------------------

    def playbook(self, name: str) -> Playbook:
        if name not in self.playbooks:
            raise UserError(f"There is no action `{name}`. Available: {', '.join(sorted(self.playbooks))}.")
        return self.playbooks[name]

    def request(self, session: Session, incident: Incident, name: str, args: list[str] | dict[str, Any],
                who: Requester) -> tuple[ActionRun, bool]:
        """A run for (incident, playbook, params); ``(run, False)`` when the same one is already underway."""
        pb = self.playbook(name)
        decision = check_requester(pb, who.user, who.groups, who.channel_members)
        if not decision.allowed:
            raise PermissionDenied(decision.reason)
        params = self._params(session, incident, pb, args)
        base = idempotency_key(incident.id, pb.name, params)
        for generation in range(1, 100):
            key = base if generation == 1 else f"{base}:{generation}"
            existing = session.execute(select(ActionRun).where(ActionRun.idempotency_key == key)).scalar_one_or_none()
            if existing is not None:
                if existing.status in ACTIVE:
                    return existing, False
                continue  # that run is over: this is a new run of the same action
            status = ("awaiting_confirmation" if pb.confirm else
                      "awaiting_approval" if pb.approval == "second-person" else "queued")
            run_id = insert_or_ignore(session, ActionRun, {
                "incident_id": incident.id, "playbook": pb.name, "params": params, "idempotency_key": key,
                "status": status, "requested_by": who.user, "requested_at": utcnow(), "result": {}, "dry_run": False,
            }, ["idempotency_key"])
            if run_id is None:  # a concurrent click won the race: that run is ours too
                return session.execute(select(ActionRun).where(ActionRun.idempotency_key == key)).scalar_one(), False
            run = session.get(ActionRun, run_id)
            assert run is not None
            timeline.record(session, incident, "action_requested", f"<@{who.user}> requested {describe(run)}",
                            actor=who.user, data={"run": run.id})
            self._after_change(session, run)
            return run, True
        raise UserError("This action was run too many times in this incident.")

    def _params(self, session: Session, incident: Incident, pb: Playbook, args: list[str] | dict[str, Any]) -> dict:
        defaults = {"bundle": proposed} if "bundle" in pb.params and (proposed := self.proposed_rollback(
            session, incident)) else {}
        try:
            if isinstance(args, list):
                return parse_args(pb, args, incident.labels, defaults)
            return validate_params(pb, args, incident.labels, defaults)
        except ParamError as exc:
            hint = " No known-good bundle is registered for this service; name one." if exc.param == "bundle" else ""
            raise UserError(f"{exc}{hint}") from None

    def proposed_rollback(self, session: Session, incident: Incident) -> str | None:
        """The last known-good bundle before the one that was live when the incident opened."""
        from bot import bundles
        if not incident.service:
            return None
        live = bundles.live_bundle(session, incident.service, incident.opened_at)
        good = bundles.last_known_good(session, incident.service, before_version=live.version if live else None)
        return good.version if good else None

    # --- decisions --------------------------------------------------------------------------

    def confirm(self, session: Session, run: ActionRun, user: str) -> None:
        if run.status != "awaiting_confirmation":
            raise InvalidTransition(f"Run #{run.id} is {run.status}; there is nothing to confirm.")
        if user != run.requested_by:
            raise PermissionDenied(f"Only <@{run.requested_by}>, who requested run #{run.id}, can confirm it.")
        pb = self.playbook(run.playbook)
        run.status = "awaiting_approval" if pb.approval == "second-person" else "queued"
        self._record(session, run, "action_confirmed", f"<@{user}> confirmed {describe(run)}", user)

    def approve(self, session: Session, run: ActionRun, who: Requester) -> None:
        if run.status != "awaiting_approval":
            raise InvalidTransition(f"Run #{run.id} is {run.status}; there is nothing to approve.")
        decision = check_approver(self.playbook(run.playbook), run.requested_by, who.user, who.groups, who.channel_members)
        if not decision.allowed:
            raise PermissionDenied(decision.reason)
        run.status, run.approved_by = "queued", who.user
        self._record(session, run, "action_approved", f"<@{who.user}> approved {describe(run)}", who.user)

    def cancel(self, session: Session, run: ActionRun, user: str) -> None:
        if run.status not in ("awaiting_confirmation", "awaiting_approval"):
            raise InvalidTransition(f"Run #{run.id} is {run.status}; it can no longer be cancelled.")
        run.status = "cancelled"
        self._record(session, run, "action_cancelled", f"<@{user}> cancelled {describe(run)}", user)

    def request_undo(self, session: Session, run: ActionRun, who: Requester) -> ActionRun:
        if run.status != "succeeded" or run.undo_of is not None:
            raise InvalidTransition(f"Run #{run.id} is {run.status}; only a succeeded run can be undone.")
        pb = self.playbook(run.playbook)
        if not pb.undo:
            raise UserError(f"`{pb.name}` has no undo steps.")
        decision = check_requester(pb, who.user, who.groups, who.channel_members)
        if not decision.allowed:
            raise PermissionDenied(decision.reason)
        key = f"undo:{run.id}"
        undo_id = insert_or_ignore(session, ActionRun, {
            "incident_id": run.incident_id, "playbook": run.playbook, "params": run.params, "idempotency_key": key,
            "status": "queued", "requested_by": who.user, "requested_at": utcnow(), "result": {}, "dry_run": False,
            "undo_of": run.id}, ["idempotency_key"])
        undo = session.execute(select(ActionRun).where(ActionRun.idempotency_key == key)).scalar_one()
        if undo_id is not None:
            self._record(session, undo, "action_requested", f"<@{who.user}> requested undo of run #{run.id}", who.user)
        return undo

    def _record(self, session: Session, run: ActionRun, kind: str, text: str, actor: str | None) -> None:
        incident = incidents.get(session, run.incident_id)
        timeline.record(session, incident, kind, text, actor=actor, data={"run": run.id})
        self._after_change(session, run)

    def _after_change(self, session: Session, run: ActionRun) -> None:
        outbox.enqueue(session, "action.card", {"incident_id": run.incident_id, "run_id": run.id},
                       incident_id=run.incident_id)
        if run.status == "queued":
            outbox.enqueue(session, "action.run", {"incident_id": run.incident_id, "run_id": run.id},
                           key=f"run:{run.id}", incident_id=run.incident_id)

    # --- performing -------------------------------------------------------------------------

    def dry_run(self, session: Session, run: ActionRun) -> RunResult:
        incident = incidents.get(session, run.incident_id)
        return run_playbook(self.playbook(run.playbook), run.params, incident=incident_facts(incident),
                            secrets=secrets_from_env(self.environ), allowed_hosts=self.hosts, client=self.client,
                            targets=self.targets, dry_run=True)

    def perform(self, run_id: int) -> None:
        """The worker's ``action.run`` handler. Never runs a run twice."""
        with transaction(self.engine) as session:
            run = session.execute(select(ActionRun).where(ActionRun.id == run_id).with_for_update()).scalar_one_or_none()
            if run is None:
                raise NotFound(f"run #{run_id} is gone")
            if run.status == "running":
                # We were here before and did not finish (a crash): the control plane may or may not
                # have changed. Say so instead of running it again.
                run.status, run.error = "unknown", "warroom stopped while this run was in progress; check the service"
                self._record(session, run, "action_unknown",
                             f"{describe(run)} is in an unknown state: warroom stopped mid-run. Check before retrying.",
                             "warroom")
                return
            if run.status != "queued":
                return
            run.status, run.started_at = "running", utcnow()
            incident = incidents.get(session, run.incident_id)
            facts = incident_facts(incident)
            pb = self.playbook(run.playbook)
            original = session.get(ActionRun, run.undo_of) if run.undo_of else None
            saved_result = RunResult.model_validate(original.result) if original and original.result else None
            self._after_change(session, run)
        common = dict(incident=facts, secrets=secrets_from_env(self.environ), allowed_hosts=self.hosts,
                      client=self.client, targets=self.targets)
        if saved_result is not None:
            result = run_undo(pb, saved_result, **common)
        else:
            result = run_playbook(pb, run.params, **common)
        self._finish(run_id, result)

    def _finish(self, run_id: int, result: RunResult) -> None:
        with transaction(self.engine) as session:
            run = session.get(ActionRun, run_id)
            assert run is not None
            run.status, run.finished_at = result.status, utcnow()
            run.result, run.error = result.model_dump(mode="json"), result.error
            verified = " (verified)" if result.verify and result.verify.ok else ""
            what = f"undo of run #{run.undo_of}" if run.undo_of else describe(run)
            if result.status == "succeeded":
                text = f"{what} succeeded in {result.duration_s:.1f} s{verified}"
            else:
                text = f"{what} failed after {result.duration_s:.1f} s: {result.error}"
            self._record(session, run, f"action_{result.status}", text, "warroom")
            incident = incidents.get(session, run.incident_id)
            if result.status == "succeeded" and not run.undo_of and run.playbook in MITIGATING:
                if incidents.mitigate(session, incident, actor="warroom", reason=text, echo=False):
                    text += " — incident mitigated"  # the channel's one line for this run says it
            outbox.enqueue(session, "slack.message", {"incident_id": run.incident_id, "text": text},
                           incident_id=run.incident_id)

    def runs(self, session: Session, incident_id: int) -> list[ActionRun]:
        return list(session.execute(select(ActionRun).where(ActionRun.incident_id == incident_id)
                                    .order_by(ActionRun.id)).scalars())

    def get_run(self, session: Session, run_id: int) -> ActionRun:
        run = session.get(ActionRun, run_id)
        if run is None:
            raise NotFound(f"There is no run #{run_id}.")
        return run


def describe(run: ActionRun) -> str:
    params = " ".join(f"{k}={v}" for k, v in sorted(run.params.items()))
    return f"run #{run.id} `{run.playbook}{' ' + params if params else ''}`"


def incident_facts(incident: Incident) -> dict[str, Any]:
    """What a playbook template may read about the incident (no secrets, no free text beyond labels)."""
    return {"id": incident.id, "service": incident.service, "slo": incident.slo, "severity": incident.severity,
            "labels": dict(incident.labels or {})}


def what_changes(session: Session, incident: Incident, run: ActionRun) -> str | None:
    """One line for the confirmation card: the state this run will move the service to."""
    params = run.params
    if run.undo_of:
        return f"reverses run #{run.undo_of}"
    if run.playbook == "rollback" and incident.service:
        from bot import bundles
        live = bundles.live_bundle(session, incident.service, None)
        try:
            target = bundles.get_bundle(session, incident.service, params["bundle"])
        except Exception:
            return f"live bundle → {params['bundle']} (not registered with warroom: no component diff)"
        if live is None:
            return f"bundle → {target.version}"
        changes = bundles.describe_change(bundles.diff(live, target))
        return f"bundle {live.version} → {target.version}" + (f": {changes}" if changes else "")
    if run.playbook == "fallback":
        return f"model route → {params.get('route')}"
    if run.playbook in ("disable-tool", "enable-tool"):
        return f"tool {params.get('tool')} → {'off' if run.playbook == 'disable-tool' else 'on'}"
    return None
