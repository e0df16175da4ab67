"""Which Events API deliveries were handled already, across retries and warroom processes.

Slack retries an event it thinks we missed (``X-Slack-Retry-Num``) and Bolt does not dedupe in
HTTP mode, so every ``event_id`` is recorded in the database: a retry, or the same event at a
second warroom process, finds it there and does nothing.
"""

from __future__ import annotations

from sqlalchemy.engine import Engine

from bot.clock import utcnow
from bot.store.db import insert_or_ignore, transaction
from bot.store.models import SlackEventSeen


def already_handled(engine: Engine, event_id: str | None) -> bool:
    if not event_id:
        return False
    with transaction(engine) as session:
        return session.get(SlackEventSeen, event_id) is not None


def mark_handled(engine: Engine, event_id: str | None) -> None:
    """Recorded after the work, so a failed attempt is redone by Slack's retry; the work itself is
    idempotent (the pin has its own dedupe key), so two concurrent deliveries are harmless too."""
    if event_id:
        with transaction(engine) as session:
            insert_or_ignore(session, SlackEventSeen, {"event_id": event_id, "seen_at": utcnow()}, ["event_id"])
