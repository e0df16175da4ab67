"""What changed a service, and when: deploys (``/api/bundles``), prompt edits, model routes,
re-indexes and flag flips (``/api/changes``, Unleash's webhook), read back for an incident.

A change is recorded once per ``dedupe_key`` (the sender's id, or its fields), so a sender's retry
or Unleash re-delivering an event adds nothing. Bundle deploys are not copied here: they are read
from the bundle table, which already says who deployed what and when.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlmodel import Session, col

from bot.clock import as_utc, utcnow
from bot.incidents import lifecycle, timeline
from bot.incidents import service as incidents
from bot.store.db import insert_or_ignore
from bot.store.models import Bundle, ChangeEvent, Incident

KINDS = ("deploy", "prompt", "model_route", "retriever", "flag", "config", "other")
LOOKBACK = timedelta(hours=6)  # how far before an incident its card and postmortem look


@dataclass(frozen=True)
class Change:
    service: str
    kind: str
    summary: str
    actor: str | None
    at: datetime
    link: str | None = None
    source: str = "api"
    id: int | None = None  # the stored change's (`/incident cause #12`); None for a bundle read from its table

    def line(self, opened: datetime) -> str:
        """"changed 17 min before: bundle v42 by deploy-bot" for an incident opened at ``opened``."""
        return f"changed {relative(self.at, opened)}: {self.summary}" + (f" by {self.actor}" if self.actor else "")


def relative(at: datetime, opened: datetime) -> str:
    """"17 min before" or "3 min after it opened"."""
    return f"{_ago(opened - at)} before" if at <= opened else f"{_ago(at - opened)} after it opened"


def record(session: Session, *, service: str, kind: str, summary: str, at: datetime | None = None,
           actor: str | None = None, link: str | None = None, source: str = "api",
           dedupe_key: str | None = None) -> tuple[int | None, Change]:
    """Store one change; ``(None, change)`` when the same one was recorded before."""
    at = at or utcnow()
    key = dedupe_key or hashlib.sha256(json.dumps([service, kind, summary, at.isoformat(), actor], default=str)
                                       .encode()).hexdigest()
    change = Change(service=service, kind=kind, summary=summary, actor=actor, at=at, link=link, source=source)
    row_id = insert_or_ignore(session, ChangeEvent, {
        "service": service, "kind": kind, "summary": summary, "actor": actor, "at": at, "link": link,
        "source": source, "dedupe_key": f"{source}:{key}"[:200], "received_at": utcnow(),
    }, ["dedupe_key"])
    return row_id, change


def announce(session: Session, **fields: object) -> tuple[int | None, list[int]]:
    """`record`, and put a new change on the timeline and card of the service's open incidents:
    ``(change id or None for a repeat, incident ids told)``."""
    row_id, change = record(session, **fields)  # type: ignore[arg-type]
    if row_id is None:
        return None, []
    told = []
    # Old news (a deploy registered long after it happened) is not told to today's incidents.
    for incident in session.execute(select(Incident).where(
            col(Incident.service) == change.service, col(Incident.status).in_(lifecycle.OPEN_STATUSES),
            col(Incident.opened_at) <= change.at + LOOKBACK)).scalars():
        timeline.record(session, incident, "change", f"Change: {change.summary}" + (
            f" by {change.actor}" if change.actor else "") + (f" ({change.link})" if change.link else ""),
            actor=change.actor or change.source, at=change.at, echo=True, data={"change": row_id})
        incidents.refresh_card(session, incident, news=True)  # not held back with alerts' cosmetic refreshes
        told.append(incident.id)
    return row_id, told


def changes_before(session: Session, service: str | None, at: datetime, *,
                   lookback: timedelta = LOOKBACK) -> list[Change]:
    """The service's changes in ``[at - lookback, at]``, newest first (deploys included)."""
    if not service:
        return []
    at = as_utc(at)
    start = at - lookback
    found = [_from_row(row) for row in session.execute(
        select(ChangeEvent).where(col(ChangeEvent.service) == service, col(ChangeEvent.at) >= start,
                                  col(ChangeEvent.at) <= at)
        .order_by(col(ChangeEvent.at).desc()).limit(50)).scalars()]
    # A bundle registered through /api/bundles is already a change (with who deployed it); one
    # registered some other way is still a deploy the incident should show.
    told = {c.summary for c in found if c.source == "bundles"}
    for bundle in session.execute(select(Bundle).where(col(Bundle.service) == service, col(Bundle.deployed_at) >= start,
                                                       col(Bundle.deployed_at) <= at)).scalars():
        if bundle_summary(bundle.version) not in told:
            found.append(Change(service=service, kind="deploy", summary=bundle_summary(bundle.version), actor=None,
                                at=as_utc(bundle.deployed_at), source="bundles"))
    return sorted(found, key=lambda c: c.at, reverse=True)


def bundle_summary(version: str) -> str:
    return f"bundle {version}"


def for_incident(session: Session, service: str | None, opened: datetime, *,
                 until: datetime | None = None) -> list[Change]:
    """The changes an incident's card shows: the hours before it opened, and any since."""
    return changes_before(session, service, until or utcnow(), lookback=(until or utcnow()) - opened + LOOKBACK)


def last_change_before(session: Session, service: str | None, at: datetime) -> Change | None:
    found = changes_before(session, service, at)
    return found[0] if found else None


def _from_row(row: ChangeEvent) -> Change:
    return Change(service=row.service, kind=row.kind, summary=row.summary, actor=row.actor,
                  at=as_utc(row.at), link=row.link, source=row.source, id=row.id)


def _ago(delta: timedelta) -> str:
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    hours, minutes = divmod(seconds // 60, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"
