"""Failing traces in the incident room: the first post at open, then "N more since HH:MM".

Both posts take the incident's failing traces not posted yet (their ids above the last one
posted, remembered in the ``traces_posted`` set-up step), so each trace is counted in exactly one
post however the batches arrive; `bot.traces.late` decides when a later post is due. After a post
the card is re-rendered so its failing-trace count stays current.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlmodel import Session, col

from bot.clock import as_utc, iso, utcnow
from bot.effects import Handlers, PostFailingTraces, PostLateTraces
from bot.incidents import service
from bot.redact import Redactor
from bot.slack import blocks
from bot.store.db import insert_or_ignore, transaction
from bot.store.models import IncidentStep, Trace
from bot.traces import ingest as traces
from bot.traces import late as late_traces

if TYPE_CHECKING:  # the room renders the card, whose count of failing traces comes from here
    from bot.slack.room import Room

EXAMPLES = 3


class TracePoster:
    def __init__(self, room: Room) -> None:
        self.room, self.engine = room, room.engine

    def handlers(self) -> Handlers:
        handlers = Handlers()
        handlers.on(PostFailingTraces, lambda effect: self.post_new(effect.incident_id, at_open=True))
        handlers.on(PostLateTraces, lambda effect: self.post_new(effect.incident_id, at_open=False))
        return handlers

    def post_new(self, incident_id: int, *, at_open: bool) -> None:
        with transaction(self.engine) as session:
            incident = service.get(session, incident_id)
            channel, opened_at = incident.channel_id, as_utc(incident.opened_at)
            marker = _marker(session, incident_id)
            after = int(marker.get("last_id") or 0)
            total, last_id, examples = new_failing_traces(session, incident_id, after, self.room.gateway.redactor)
        if not channel or not total:
            return  # nothing new; or no room yet, then the room's own first post will carry them
        if marker.get("last_id") is None and at_open:
            minutes = int(traces.LINK_WINDOW_BEFORE.total_seconds() // 60)
            heading = (f"*{total} failing trace(s)* of this service from {minutes} min before the alert"
                       f" — top {len(examples)}")
            text = f"{total} failing trace(s) — top {len(examples)}"
        else:
            # "more" after an earlier post; else the first since the incident opened
            since = datetime.fromisoformat(marker["at"]) if marker.get("at") else opened_at
            more = " more" if marker.get("last_id") is not None else ""
            heading = f"*{total}{more} failing trace(s) since {since:%H:%M} UTC* — top {len(examples)}"
            text = f"{total}{more} failing trace(s) since {since:%H:%M} UTC — top {len(examples)}"
        self.room.post_for_effect(channel, text, blocks.failing_traces(total, 0, examples, heading=heading))
        with transaction(self.engine) as session:
            step = _step(session, incident_id)
            step.result = {"last_id": max(last_id, after), "at": iso(utcnow())}
            service.refresh_card(session, service.get(session, incident_id))  # its count of failing traces


def new_failing_traces(session: Session, incident_id: int, after_id: int, redactor: Redactor,
                       limit: int = EXAMPLES) -> tuple[int, int, list[dict[str, Any]]]:
    """Failing traces linked to the incident with ids above ``after_id``: how many, the highest id,
    and up to ``limit`` examples of different prompts (earliest first; texts redacted)."""
    where = (col(Trace.incident_id) == incident_id, col(Trace.failed).is_(True), col(Trace.id) > after_id)
    total, last_id = session.execute(select(func.count(), func.max(col(Trace.id))).where(*where)).one()
    examples: list[dict[str, Any]] = []
    seen: set[str] = set()
    rows = session.execute(select(Trace).where(*where).order_by(col(Trace.timestamp),
                                                                col(Trace.id)).limit(200)).scalars()
    for row in rows:
        key = row.prompt_hash or row.request_id
        if key in seen:
            continue
        seen.add(key)
        event = traces.as_event(row)
        examples.append({"request_id": row.request_id, "failure_types": row.failure_types, "bundle": row.bundle_version,
                         "question": redactor.redact(event.question), "output": redactor.redact(event.output or "")})
        if len(examples) == limit:
            break
    return int(total or 0), int(last_id or 0), examples


def failing_trace_count(session: Session, incident_id: int) -> int:
    return int(session.execute(select(func.count()).where(col(Trace.incident_id) == incident_id,
                                                           col(Trace.failed).is_(True))).scalar_one())


def _step(session: Session, incident_id: int) -> IncidentStep:
    insert_or_ignore(session, IncidentStep, {"incident_id": incident_id, "name": late_traces.POSTED_STEP,
                                             "result": {}, "attempts": 0}, ["incident_id", "name"])
    return session.execute(select(IncidentStep).where(col(IncidentStep.incident_id) == incident_id,
                                                      col(IncidentStep.name) == late_traces.POSTED_STEP)
                           .with_for_update()).scalar_one()


def _marker(session: Session, incident_id: int) -> dict[str, Any]:
    step = session.execute(select(IncidentStep).where(
        col(IncidentStep.incident_id) == incident_id, col(IncidentStep.name) == late_traces.POSTED_STEP)
    ).scalar_one_or_none()
    return dict(step.result or {}) if step else {}
