"""Action runs: request → (confirm) → (approve) → queued → running → succeeded | failed | unknown.

This is where playbooks meet the database and the incident: the idempotency key makes a double
click or a Slack retry one run; a run that a crash left ``running`` becomes ``unknown`` and is
shown, never silently run again; every state lands on the timeline; a run is performed by the
worker (outbox kind ``action.run``), so the Slack answer never waits for the control plane.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from bot import redact
from bot.actions import (
    HostAllowList,
    ParamError,
    Playbook,
    idempotency_key,
    load_playbooks,
    load_targets,
    parse_args,
    run_playbook,
    run_undo,
    secrets_from_env,
    validate_params,
)
from bot.actions.runner import RunContext, RunResult
from bot.clock import as_utc, utcnow
from bot.effects import ActionCard, PostMessage, RunAction
from bot.errors import InvalidTransition, NotFound, UserError
from bot.incidents import lifecycle, permissions, timeline
from bot.incidents import service as incidents
from bot.incidents.permissions import Actor
from bot.redact import Redactor
from bot.said import Said, said
from bot.said import who as part_for
from bot.store import outbox
from bot.store.db import insert_or_ignore, transaction
from bot.store.models import ActionRun, Incident, saved_id

log = logging.getLogger(__name__)

PENDING = ("awaiting_confirmation", "awaiting_approval")
ACTIVE = (*PENDING, "queued", "running")
MITIGATING = {"fallback", "rollback", "disable-tool", "unleash-kill-switch"}
DEFAULT_APPROVAL_TIMEOUT = timedelta(minutes=15)

Requester = Actor  # the name the listeners knew it by


class Actions:
    def __init__(self, engine: Engine, playbooks_dir: Path, allowed_hosts: list[str] | None,
                 environ: Mapping[str, str] | None = None, client: httpx.Client | None = None,
                 approval_timeout: timedelta = DEFAULT_APPROVAL_TIMEOUT, redactor: Redactor = redact.DEFAULT) -> None:
        self.engine = engine
        self.redactor = redactor  # the process's: what a run reports (steps, results, errors) is masked with it
        # How long a run may wait for its confirmation and approval (WARROOM_APPROVAL_TIMEOUT_MINUTES).
        self.approval_timeout = approval_timeout
        self.environ = environ if environ is not None else os.environ
        self.playbooks: dict[str, Playbook] = load_playbooks(playbooks_dir)
        targets_file = playbooks_dir / "targets.yaml"
        self.targets = load_targets(targets_file, environ=self.environ) if targets_file.exists() else {}
        self.hosts = (HostAllowList(allowed_hosts) if allowed_hosts
                      else HostAllowList.from_env(self.environ, targets=self.targets))
        self.client = client or httpx.Client(timeout=10)
        # Told of every finished run (bot.automation wires it); True: it decides on mitigation itself
        # (the guard watches the SLI first), so the run does not mitigate the incident at once.
        self.after_finish: Callable[[Session, ActionRun, Incident, RunResult], bool] | None = None

    # --- requests ---------------------------------------------------------------------------

    def playbook(self, name: str) -> Playbook:
        if name not in self.playbooks:
            raise UserError(f"There is no action `{name}`. Available: {', '.join(sorted(self.playbooks))}.")
        return self.playbooks[name]

    def request(self, session: Session, incident: Incident, name: str, args: list[str] | dict[str, Any],
                who: Actor) -> tuple[ActionRun, bool]:
        """A run for (incident, playbook, params); ``(run, False)`` when the same one is already underway."""
        pb = self.playbook(name)
        permissions.check("run", who, playbook=pb)
        require_open(incident)
        params = self._params(session, incident, pb, args)
        note = self._bundle_note(session, incident, params) if "bundle" in pb.params else ""
        return self._new_run(session, incident, pb, params, idempotency_key(saved_id(incident), pb.name, params), who,
                             said(part_for(who.user), " requested {run}", note))

    def request_automatic(self, session: Session, incident: Incident, name: str, params: dict[str, Any], *,
                          propose: bool, why: str) -> tuple[ActionRun, bool]:
        """warroom's own request, as a runbook declares it: the same permission table (warroom may run
        only ``unattended`` playbooks), parameters, idempotency key and run as a person's. A run starts
        at once (the runbook is its confirmation); a proposal waits for a person's approval."""
        who = Actor.automation()
        pb = self.playbook(name)
        permissions.check("propose" if propose else "run", who, playbook=pb)
        require_open(incident)
        values = self._params(session, incident, pb, params)
        verb = "proposes" if propose else "runs"
        return self._new_run(session, incident, pb, values, idempotency_key(saved_id(incident), pb.name, values), who,
                             said(f"{who.user} {verb} {{run}}: {why}"),
                             status="awaiting_approval" if propose else "queued")

    def _new_run(self, session: Session, incident: Incident, pb: Playbook, params: dict[str, Any], base: str,
                 who: Actor, text: Said, undo_of: int | None = None,
                 status: str | None = None) -> tuple[ActionRun, bool]:
        """Insert the run under the first free generation of ``base``; an active one is returned instead."""
        for generation in range(1, 100):
            key = base if generation == 1 else f"{base}:{generation}"
            existing = session.execute(select(ActionRun).where(col(ActionRun.idempotency_key) == key)
                                       ).scalar_one_or_none()
            if existing is not None:
                if existing.status in ACTIVE:
                    return existing, False
                if undo_of is not None and existing.status == "succeeded":
                    raise InvalidTransition(f"Run #{undo_of} was already undone by run #{existing.id}.")
                continue  # that run is over: this is a new run of the same action
            status = status or ("awaiting_confirmation" if pb.confirm else
                                "awaiting_approval" if pb.approval == "second-person" else "queued")
            run_id = insert_or_ignore(session, ActionRun, {
                "incident_id": incident.id, "playbook": pb.name, "params": params, "idempotency_key": key,
                "status": status, "requested_by": who.user, "requested_at": utcnow(), "result": {}, "dry_run": False,
                "undo_of": undo_of,
            }, ["idempotency_key"])
            if run_id is None:  # a concurrent click won the race: that run is ours too
                return session.execute(select(ActionRun).where(col(ActionRun.idempotency_key) == key)
                                       ).scalar_one(), False
            run = session.get(ActionRun, run_id)
            assert run is not None
            timeline.record(session, incident, "action_requested", text.replace_words("{run}", describe(run)),
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
        """The newest bundle that passed the eval gate (not the one live when the incident opened);
        with none gated yet, the last bundle marked known-good before that live one."""
        from bot.releases import bundles
        if not incident.service:
            return None
        live = bundles.live_bundle(session, incident.service, incident.opened_at)
        gated = bundles.newest_gated(session, incident.service, excluding=live.version if live else None)
        if gated is not None:
            return gated.version
        good = bundles.last_known_good(session, incident.service, before_version=live.version if live else None)
        return good.version if good else None

    @staticmethod
    def _bundle_note(session: Session, incident: Incident, params: dict[str, Any]) -> str:
        """Why the bundle is trustworthy: the gate run that passed it and when, or a person's say-so."""
        from bot.clock import as_utc
        from bot.errors import NotFound
        from bot.releases import bundles
        if not incident.service or not isinstance(params.get("bundle"), str):
            return ""
        try:
            bundle = bundles.get_bundle(session, incident.service, params["bundle"])
        except NotFound:
            return ""
        if not bundle.known_good:
            return f" ({bundle.version} has not passed the eval gate)"
        if bundle.known_good_run_id is None:
            return f" ({bundle.version} was marked known-good by hand)"
        passed = as_utc(bundle.known_good_at)
        when = f" at {passed:%Y-%m-%d %H:%M} UTC" if passed else ""
        return f" ({bundle.version} passed eval gate run #{bundle.known_good_run_id}{when})"

    # --- decisions --------------------------------------------------------------------------

    def decide(self, session: Session, run: ActionRun, decision: str, who: Actor) -> str | None:
        """Confirm, approve or cancel ``run`` (locked by the caller) for ``who``.

        Permission and state errors raise (nothing changes). A run that can no longer go ahead --
        it waited too long, or its incident ended -- is ended here and the reason returned: the
        caller commits that and shows it; nothing ran."""
        if decision not in ("confirm", "approve", "cancel"):
            raise ValueError(decision)
        wanted = {"confirm": ("awaiting_confirmation",), "approve": ("awaiting_approval",), "cancel": PENDING}[decision]
        if run.status not in wanted:
            what = {"confirm": "there is nothing to confirm", "approve": "there is nothing to approve",
                    "cancel": "it can no longer be cancelled"}[decision]
            raise InvalidTransition(f"Run #{run.id} is {run.status.replace('_', ' ')}; {what}.")
        pb = self.playbook(run.playbook)
        permissions.check(decision, who, playbook=pb, requested_by=run.requested_by)
        if decision == "cancel":
            run.status = "cancelled"
            self._record(
                session, run, "action_cancelled", said(part_for(who.user), f" cancelled {describe(run)}"), who.user
            )
            return None
        stale = self._end_if_stale(session, run, utcnow())
        if stale:
            return stale
        if decision == "confirm":
            run.status = "awaiting_approval" if pb.approval == "second-person" else "queued"
            self._record(
                session, run, "action_confirmed", said(part_for(who.user), f" confirmed {describe(run)}"), who.user
            )
        else:
            run.status, run.approved_by = "queued", who.user
            self._record(
                session, run, "action_approved", said(part_for(who.user), f" approved {describe(run)}"), who.user
            )
        return None

    # Kept for callers that decide one thing at a time (tests, the CLI).
    def confirm(self, session: Session, run: ActionRun, who: Actor) -> str | None:
        return self.decide(session, run, "confirm", who)

    def approve(self, session: Session, run: ActionRun, who: Actor) -> str | None:
        return self.decide(session, run, "approve", who)

    def cancel(self, session: Session, run: ActionRun, who: Actor) -> str | None:
        return self.decide(session, run, "cancel", who)

    def _end_if_stale(self, session: Session, run: ActionRun, now: datetime) -> str | None:
        """End a waiting run whose incident is over or whose decisions came too late; say why."""
        incident = incidents.get(session, run.incident_id)
        if not lifecycle.is_open(incident.status):
            run.status = "cancelled"
            why = f"incident #{incident.id} is {incident.status}"
            self._record(session, run, "action_cancelled", f"{describe(run)} was cancelled: {why}", "warroom")
            return f"{describe(run)} was cancelled because {why}; nothing ran. Reopen it first."
        requested = as_utc(run.requested_at)
        assert requested is not None
        if now - requested >= self.approval_timeout:
            run.status = "expired"
            minutes = _minutes(self.approval_timeout)
            self._record(session, run, "action_expired",
                         f"{describe(run)} expired: not confirmed and approved within {minutes}; nothing ran",
                         "warroom")
            return (f"{describe(run)} expired: it was requested at {requested:%H:%M} UTC and a pending action is valid "
                    f"for {minutes}. Nothing ran; request it again if it is still needed.")
        return None

    def end_stale(self, session: Session, now: datetime | None = None, limit: int = 100) -> int:
        """The scheduler's sweep: expire or cancel waiting runs that can no longer go ahead."""
        now = now or utcnow()
        stmt = (select(ActionRun).join(Incident, col(Incident.id) == col(ActionRun.incident_id))
                .where(col(ActionRun.status).in_(PENDING))
                .where((col(ActionRun.requested_at) <= now - self.approval_timeout)
                       | col(Incident.status).notin_(lifecycle.OPEN_STATUSES))
                .order_by(col(ActionRun.id)).limit(limit).with_for_update(of=ActionRun, skip_locked=True))
        ended = 0
        for run in session.execute(stmt).scalars():
            if self._end_if_stale(session, run, now):
                ended += 1
        return ended

    def request_undo(self, session: Session, run: ActionRun, who: Actor) -> tuple[ActionRun, bool]:
        """A run that reverses ``run``: the same playbook's confirmation, permission and approval apply."""
        if run.status != "succeeded" or run.undo_of is not None:
            raise InvalidTransition(f"Run #{run.id} is {run.status}; only a succeeded run can be undone.")
        pb = self.playbook(run.playbook)
        if not pb.undo:
            raise UserError(f"`{pb.name}` has no undo steps.")
        permissions.check("undo", who, playbook=pb, requested_by=run.requested_by)
        incident = incidents.get(session, run.incident_id)
        require_open(incident)
        # warroom undoing its own unattended run (the guard saw no improvement) needs no confirmation.
        return self._new_run(session, incident, pb, dict(run.params), f"undo:{run.id}", who,
                             said(part_for(who.user), " requested {run}"),
                             undo_of=run.id, status="queued" if who.automated else None)

    def _record(self, session: Session, run: ActionRun, kind: str, text: str | Said, actor: str | None) -> None:
        incident = incidents.get(session, run.incident_id)
        timeline.record(session, incident, kind, text, actor=actor, data={"run": run.id})
        self._after_change(session, run)

    def _after_change(self, session: Session, run: ActionRun) -> None:
        outbox.enqueue(
            session, ActionCard(incident_id=run.incident_id, run_id=saved_id(run)), incident_id=run.incident_id
        )
        if run.status == "queued":
            outbox.enqueue(session, RunAction(incident_id=run.incident_id, run_id=saved_id(run)),
                           key=f"run:{run.id}", incident_id=run.incident_id)

    # --- performing -------------------------------------------------------------------------

    def dry_run(self, session: Session, run: ActionRun) -> RunResult:
        """The requests ``run`` would send (an undo: its undo steps, with what the original saved)."""
        incident = incidents.get(session, run.incident_id)
        common = RunContext(incident=incident_facts(incident), secrets=secrets_from_env(self.environ),
                            allowed_hosts=self.hosts, client=self.client, targets=self.targets, dry_run=True,
                            redactor=self.redactor)
        saved = self.undone_result(session, run)
        if saved is not None:
            return run_undo(self.playbook(run.playbook), saved, **common)
        return run_playbook(self.playbook(run.playbook), run.params, **common)

    def undone_result(self, session: Session, run: ActionRun) -> RunResult | None:
        """For an undo run: the result of the run it reverses (what that run saved)."""
        original = session.get(ActionRun, run.undo_of) if run.undo_of else None
        return RunResult.model_validate(original.result) if original and original.result else None

    def perform(self, run_id: int) -> None:
        """The worker's ``action.run`` handler. Never runs a run twice."""
        with transaction(self.engine) as session:
            run = session.execute(select(ActionRun).where(col(ActionRun.id) == run_id)
                                  .with_for_update()).scalar_one_or_none()
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
            undo_of = run.undo_of
            saved_result = self.undone_result(session, run)
            self._after_change(session, run)
        common = RunContext(incident=facts, secrets=secrets_from_env(self.environ), allowed_hosts=self.hosts,
                            client=self.client, targets=self.targets, redactor=self.redactor)
        if undo_of is None:
            result = run_playbook(pb, run.params, **common)
        elif saved_result is None:
            result = RunResult(playbook=pb.name, kind="undo", status="failed", params=run.params,
                               error=f"run #{undo_of} left no result to undo from")
        else:
            result = run_undo(pb, saved_result, **common)
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
            watched = self.after_finish(session, run, incident, result) if self.after_finish else False
            if result.status == "succeeded" and not run.undo_of and run.playbook in MITIGATING and not watched:
                if incidents.mitigate(session, incident, actor="warroom", reason=text, echo=False):
                    text += " — incident mitigated"  # the channel's one line for this run says it
            outbox.enqueue(session, PostMessage(incident_id=run.incident_id, text=text), incident_id=run.incident_id)

    def runs(self, session: Session, incident_id: int) -> list[ActionRun]:
        return list(session.execute(select(ActionRun).where(col(ActionRun.incident_id) == incident_id)
                                    .order_by(col(ActionRun.id))).scalars())

    def get_run(self, session: Session, run_id: int) -> ActionRun:
        run = session.get(ActionRun, run_id) if 0 < run_id <= incidents.MAX_ID else None
        if run is None:
            raise NotFound(f"There is no run #{run_id}.")
        return run


def require_open(incident: Incident) -> None:
    """Actions are for an incident being worked on; a resolved or closed one is reopened first."""
    if incident.status == lifecycle.CLOSED:
        raise InvalidTransition(f"Incident #{incident.id} is closed; reopen it first to act on it, and as a closed "
                                "incident cannot be reopened, declare a new one (`/incident declare`).")
    if not lifecycle.is_open(incident.status):
        raise InvalidTransition(f"Incident #{incident.id} is {incident.status}; reopen it first "
                                f"(`/incident reopen {incident.id}`) to act on it.")


def _minutes(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes} min" if minutes else f"{int(delta.total_seconds())} s"


def describe(run: ActionRun) -> str:
    params = " ".join(f"{k}={v}" for k, v in sorted(run.params.items()))
    if run.undo_of:
        return f"run #{run.id} (undo of run #{run.undo_of} `{run.playbook}{' ' + params if params else ''}`)"
    return f"run #{run.id} `{run.playbook}{' ' + params if params else ''}`"


def incident_facts(incident: Incident) -> dict[str, Any]:
    """What a playbook template may read about the incident (no secrets, no free text beyond labels)."""
    return {"id": incident.id, "service": incident.service, "slo": incident.slo, "severity": incident.severity,
            "labels": dict(incident.labels or {})}


def what_changes(session: Session, incident: Incident, run: ActionRun) -> str | None:
    """One line for the card: the state this run moves (or moved) the service to.

    Before a run, from warroom's records (the live bundle); after it, from what the run itself
    saved from the control plane. An undo is told as the change it makes, not as its original."""
    params, saved = run.params, _saved(run)
    undone = _saved(session.get(ActionRun, run.undo_of)) if run.undo_of else {}
    if run.playbook == "rollback":
        if run.undo_of:
            old, new = params.get("bundle"), undone.get("previous_bundle")
        else:
            old, new = saved.get("previous_bundle") or _live_version(session, incident), params.get("bundle")
        return _bundle_change(session, incident, old, new)
    if run.playbook == "fallback":
        route = undone.get("previous_route") if run.undo_of else params.get("route")
        return f"model route → {route or 'the route before run #' + str(run.undo_of)}"
    if run.playbook in ("disable-tool", "enable-tool"):
        off = (run.playbook == "disable-tool") != bool(run.undo_of)
        return f"tool {params.get('tool')} → {'off' if off else 'on'}"
    if run.undo_of:
        return f"reverses run #{run.undo_of}"
    return None


def live_now(run: ActionRun) -> str | None:
    """What the control plane reported after the run (its verify's last observation)."""
    verify = (run.result or {}).get("verify") or {}
    if run.status == "succeeded" and verify.get("ok"):
        return str(verify.get("last_observation") or "")
    return None


def _saved(run: ActionRun | None) -> dict[str, Any]:
    return dict((run.result or {}).get("saved") or {}) if run is not None else {}


def _live_version(session: Session, incident: Incident) -> str | None:
    from bot.releases import bundles
    live = bundles.live_bundle(session, incident.service, None) if incident.service else None
    return live.version if live else None


def _bundle_change(session: Session, incident: Incident, old: str | None, new: str | None) -> str:
    from bot.releases import bundles
    if new is None:
        return "bundle → the bundle that was live before"
    if not incident.service:
        return f"bundle {old or '?'} → {new}"
    try:
        target = bundles.get_bundle(session, incident.service, new)
    except NotFound:
        return f"bundle {old + ' ' if old else ''}→ {new} (not registered with warroom: no component diff)"
    if old is None:
        return f"bundle → {target.version}"
    try:
        current = bundles.get_bundle(session, incident.service, old)
    except NotFound:
        return f"bundle {old} → {target.version}"
    changes = bundles.describe_change(bundles.diff(current, target))
    return f"bundle {current.version} → {target.version}" + (f": {changes}" if changes else "")
