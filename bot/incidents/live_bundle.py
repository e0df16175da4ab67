"""Which release bundle is live for an incident's service *now*, rollbacks included.

The registry (`bot.releases.bundles`) knows what the deploy pipeline reported; a rollback run in the
incident changes the live bundle before (or without) the pipeline reporting it. So the latest
succeeded rollback, or undo of one, that finished after the registry's live bundle was deployed
decides: a rollback makes its target live, its undo brings back the bundle it replaced.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlmodel import Session, col

from bot.clock import as_utc
from bot.errors import NotFound
from bot.releases import bundles
from bot.store.models import ActionRun, Bundle, Incident

ROLLBACK = "rollback"


@dataclass(frozen=True)
class LiveBundle:
    version: str
    bundle: Bundle | None  # None: the version is not registered with warroom
    via_run: int | None = None  # the rollback (or undo) run that made it live
    replaced: str | None = None  # the version that run replaced


def live_bundle(session: Session, incident: Incident) -> LiveBundle | None:
    if not incident.service:
        return None
    registered = bundles.live_bundle(session, incident.service, None)
    run = session.execute(
        select(ActionRun).where(col(ActionRun.incident_id) == incident.id, col(ActionRun.playbook) == ROLLBACK,
                                col(ActionRun.status) == "succeeded", col(ActionRun.dry_run).is_(False))
        .order_by(col(ActionRun.finished_at).desc(), col(ActionRun.id).desc()).limit(1)).scalar_one_or_none()
    if run is None or (registered is not None and run.finished_at is not None
                       and as_utc(run.finished_at) <= as_utc(registered.deployed_at)):
        return LiveBundle(registered.version, registered) if registered else None
    if run.undo_of is None:
        version = str(run.params.get("bundle") or "")
        replaced = (run.result.get("saved") or {}).get("previous_bundle")
    else:
        original = session.get(ActionRun, run.undo_of)
        version = str(((original.result if original else {}).get("saved") or {}).get("previous_bundle") or "")
        replaced = str(original.params.get("bundle")) if original else None
    if not version:
        return LiveBundle(registered.version, registered) if registered else None
    return LiveBundle(version, _registered(session, incident.service, version), run.id, replaced)


def _registered(session: Session, service: str, version: str) -> Bundle | None:
    try:
        return bundles.get_bundle(session, service, version)
    except NotFound:
        return None
