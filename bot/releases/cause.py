"""The cause a responder names for an incident: one of the changes the card lists, or their words.

`/incident cause v42` (a bundle version), `/incident cause change 12` (the id ``POST /api/changes``
answered; ``#12`` first would name incident 12, as in every command) or `/incident cause upstream
provider outage` (free text, with no change time). It is a timeline event (who named what); the
latest one stands. The card's change line then says "Cause: …" and the postmortem counts time to
detect and the duration from that change; a named cause wins over the one a rollback implies.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlmodel import Session, col

from bot.clock import as_utc
from bot.errors import UserError
from bot.incidents import service as incidents
from bot.incidents import timeline
from bot.releases import changes
from bot.said import Person, said
from bot.store.models import Incident, TimelineEvent

CAUSE_KIND = "cause"
MAX_WORDS = 300
_CHANGE_ID = re.compile(r"^(?:change\s+)?#?(\d+)$", re.I)
USAGE = ("Usage: `/incident cause <change>`: a change the card lists (`v42` or `bundle v42`; `change 12` for the "
         "id `POST /api/changes` answered), or your own words (`/incident cause upstream provider outage`).")


@dataclass(frozen=True)
class Cause:
    summary: str  # the change's summary ("bundle v42") or the responder's words
    at: datetime | None  # when the change happened; None for words
    kind: str | None = None  # the change's kind ("deploy", "prompt", …)
    by: str | None = None  # who made the change
    named_by: str | None = None  # who named it the cause
    change_id: int | None = None

    def card_line(self, opened: datetime) -> str:
        """"Cause: bundle v42 (deploy 17 min before it opened, by deploy-bot)"."""
        if self.at is None:
            return f"Cause: {self.summary}"
        when = changes.relative(self.at, opened)
        return f"Cause: {self.summary} ({self.kind or 'change'} {when}" + (f", by {self.by})" if self.by else ")")


def name(session: Session, incident: Incident, words: str, *, actor: str) -> Cause:
    """Record ``words`` as the incident's cause, matched to a listed change when it names one."""
    words = " ".join(words.split())
    if not words:
        raise UserError(USAGE)
    if len(words) > MAX_WORDS:
        raise UserError(f"Name the cause in at most {MAX_WORDS} characters.")
    cause = _match(session, incident, words, actor)
    what = (f"{cause.summary} ({cause.kind or 'change'} at {cause.at:%H:%M} UTC"
            + (f" by {cause.by})" if cause.by else ")") if cause.at else f"{cause.summary} (no change time)")
    timeline.record(session, incident, CAUSE_KIND, said(Person(actor), f" named the cause: {what}"), actor=actor,
                    echo=True, data={"cause": cause.summary, "at": cause.at.isoformat() if cause.at else None,
                                     "kind": cause.kind, "by": cause.by, "change": cause.change_id})
    incidents.refresh_card(session, incident)
    return cause


def named(session: Session, incident_id: int | None) -> Cause | None:
    """The cause a person named last for the incident, if any."""
    event = session.execute(select(TimelineEvent).where(col(TimelineEvent.incident_id) == incident_id,
                                                        col(TimelineEvent.kind) == CAUSE_KIND)
                            .order_by(col(TimelineEvent.at).desc(), col(TimelineEvent.id).desc()).limit(1)
                            ).scalar_one_or_none()
    if event is None:
        return None
    data = event.data or {}
    at = data.get("at")
    return Cause(summary=str(data.get("cause", "")), at=as_utc(datetime.fromisoformat(at)) if at else None,
                 kind=data.get("kind"), by=data.get("by"), named_by=event.actor, change_id=data.get("change"))


def _match(session: Session, incident: Incident, words: str, actor: str) -> Cause:
    opened = as_utc(incident.opened_at)
    listed = changes.for_incident(session, incident.service, opened)
    if found := _CHANGE_ID.match(words):
        wanted = int(found.group(1))
        change = next((c for c in listed if c.id == wanted), None)
        if change is None:
            ids = ", ".join(f"change {c.id}: {c.summary}" for c in listed if c.id is not None)[:400]
            raise UserError(f"No change {wanted} is listed for this incident's service"
                            + (f" (listed: {ids})." if ids else " (none has an id: name it by its words)."))
        return _cause(change, actor)
    lowered = words.lower()
    for change in listed:  # newest first: a version deployed twice is its latest deploy
        if change.summary.lower() in (lowered, changes.bundle_summary(lowered)):
            return _cause(change, actor)
    return Cause(summary=words, at=None, named_by=actor)


def _cause(change: changes.Change, actor: str) -> Cause:
    return Cause(summary=change.summary, at=change.at, kind=change.kind, by=change.actor, named_by=actor,
                 change_id=change.id)
