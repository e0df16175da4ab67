"""The incident timeline: every state change, note and pinned message, with time and actor."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlmodel import Session, col

from bot import outbox
from bot.clock import utcnow
from bot.db import affected_rows, insert_or_ignore
from bot.effects import PostLine
from bot.models import Incident, TimelineEvent
from bot.said import Said, as_row


def record(session: Session, incident: Incident, kind: str, text: str | Said, *, actor: str | None = None,
           at: datetime | None = None, data: dict[str, Any] | None = None, dedupe_key: str | None = None,
           echo: bool = False) -> int | None:
    """Add an event; returns its id, or None when ``dedupe_key`` was recorded before.

    ``echo`` also posts the text as a short line in the incident channel (state changes).
    A `Said` names people as parts: stored as plain text and their offsets (`bot.said`).
    """
    assert incident.id is not None
    text, data = as_row(text, data)
    event_id = insert_or_ignore(session, TimelineEvent, {
        "incident_id": incident.id, "at": at or utcnow(), "kind": kind, "actor": actor,
        "text": text, "data": data or {}, "dedupe_key": dedupe_key,
    }, ["dedupe_key"]) if dedupe_key else _insert(session, incident.id, kind, text, actor, at, data)
    if event_id is not None and echo:
        outbox.enqueue(session, PostLine(incident_id=incident.id, event_id=event_id),
                       key=f"line:{event_id}", incident_id=incident.id)
    return event_id


def _insert(session: Session, incident_id: int, kind: str, text: str, actor: str | None,
            at: datetime | None, data: dict[str, Any] | None) -> int:
    event = TimelineEvent(incident_id=incident_id, at=at or utcnow(), kind=kind, actor=actor, text=text,
                          data=data or {})
    session.add(event)
    session.flush()
    assert event.id is not None
    return event.id


def remove(session: Session, dedupe_key: str) -> bool:
    result = session.execute(delete(TimelineEvent).where(col(TimelineEvent.dedupe_key) == dedupe_key))
    return bool(affected_rows(result))


def events(session: Session, incident_id: int, *, limit: int | None = None,
           newest_first: bool = False) -> list[TimelineEvent]:
    order = col(TimelineEvent.at).desc() if newest_first else col(TimelineEvent.at)
    stmt = select(TimelineEvent).where(col(TimelineEvent.incident_id) == incident_id).order_by(order,
                                                                                               col(TimelineEvent.id))
    if limit:
        stmt = stmt.limit(limit)
    return list(session.execute(stmt).scalars())
