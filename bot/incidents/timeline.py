"""The incident timeline: every state change, note and pinned message, with time and actor."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlmodel import Session, col

from bot.clock import utcnow
from bot.said import Said, as_row
from bot.store import changeset
from bot.store.changeset import QueuedEvent
from bot.store.db import affected_rows
from bot.store.models import Incident, TimelineEvent


def record(session: Session, incident: Incident, kind: str, text: str | Said, *, actor: str | None = None,
           at: datetime | None = None, data: dict[str, Any] | None = None, dedupe_key: str | None = None,
           echo: bool = False) -> QueuedEvent:
    """Add an event to the transaction's change set (`bot.store.changeset`); ``.id()`` on what it returns
    gives its id, or None when ``dedupe_key`` was recorded before.

    ``echo`` also posts the text as a short line in the incident channel (state changes).
    A `Said` names people as parts: stored as plain text and their offsets (`bot.said`).
    """
    assert incident.id is not None
    text, data = as_row(text, data)
    return changeset.of(session).event(incident.id, kind, text, actor=actor, at=at or utcnow(), data=data,
                                       echo=echo, dedupe_key=dedupe_key)


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
