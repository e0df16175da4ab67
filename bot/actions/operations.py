"""What people ask of the action service from an edge (Slack today), each in its own transaction.

`bot.actions.service.Actions` holds the rules and takes the caller's session; these functions
open one transaction on the service's engine, take the lock the rule needs (the incident for a
new request, the run for a decision) and commit. The edge works out who is asking (channel
members, user groups: `bot.incidents.permissions.Actor`) and renders the answer.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlmodel import col

from bot.actions.runner import RunResult
from bot.actions.service import Actions, Requester
from bot.errors import NotFound
from bot.incidents import service as incidents
from bot.store.db import transaction
from bot.store.models import ActionRun, Incident


def run_and_channel(actions: Actions, run_id: int) -> tuple[ActionRun, str | None]:
    """The run and its incident's channel: what deciding who may act on it needs."""
    with transaction(actions.engine) as session:
        run = actions.get_run(session, run_id)
        return run, incidents.get(session, run.incident_id).channel_id


def request(actions: Actions, incident_id: int, playbook: str, args: list[str] | dict, who: Requester
            ) -> tuple[ActionRun, bool]:
    """A run of ``playbook`` in the incident; ``(run, False)`` when the same one is already underway."""
    with transaction(actions.engine) as session:
        incident = incidents.get_for_update(session, incident_id)  # one request at a time per incident
        return actions.request(session, incident, playbook, args, who)


def undo(actions: Actions, run_id: int, who: Requester) -> tuple[ActionRun, bool]:
    """A run that reverses run ``run_id``; ``(run, False)`` when that undo is already underway."""
    with transaction(actions.engine) as session:
        incidents.get_for_update(session, actions.get_run(session, run_id).incident_id)  # one request at a time
        return actions.request_undo(session, actions.get_run(session, run_id), who)


def decide(actions: Actions, run_id: int, decision: str, who: Requester) -> str | None:
    """Confirm, approve or cancel the run, locked so two clicks decide one after the other; why it
    could not go ahead (it was ended instead), or None."""
    with transaction(actions.engine) as session:
        run = session.execute(
            select(ActionRun).where(col(ActionRun.id) == run_id).with_for_update()
        ).scalar_one_or_none()
        if run is None:
            raise NotFound(f"There is no run #{run_id}.")
        return actions.decide(session, run, decision, who)


def dry_run(actions: Actions, run_id: int) -> RunResult:
    """The requests the run would send, with secrets masked; nothing is sent."""
    with transaction(actions.engine) as session:
        return actions.dry_run(session, actions.get_run(session, run_id))


def incident_runs(actions: Actions, incident_id: int) -> tuple[Incident, list[ActionRun]]:
    """The incident (its runbook says what it offers) and every run in it, oldest first."""
    with transaction(actions.engine) as session:
        return incidents.get(session, incident_id), actions.runs(session, incident_id)
