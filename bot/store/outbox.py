"""Durable side effects: queued with the state change, performed by the worker, never lost.

A row is written in the same transaction as the change that needs it, keyed so the same effect
is never queued twice: it is queued in the transaction's change set (`bot.store.changeset`), whose
rows go in with one INSERT (`send_many`), numbered in the order they were queued. A row holds a
typed effect (`bot.effects`): its kind, and its fields as the payload. Workers claim
due rows (``FOR UPDATE SKIP LOCKED`` on PostgreSQL; SQLite's single writer lock serialises
claims), perform them and mark them done. Rows of one incident run in order: a
row is not claimable while an older row (lower id) of its incident is pending or running. A
failure backs off exponentially and, after ``MAX_ATTEMPTS``, stays ``failed`` and visible.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, exists, select, update
from sqlalchemy.orm import aliased
from sqlmodel import Session, col

from bot.clock import utcnow
from bot.effects import Effect
from bot.store import changeset
from bot.store.db import affected_rows
from bot.store.models import OutboxItem
from bot.store.statements import Later, Statements

if TYPE_CHECKING:
    from bot.store.changeset import QueuedEffect

MAX_ATTEMPTS = 8
# A lease is renewed every third of this while its row runs, so it only runs out when the
# worker's process is gone or cannot reach the database.
CLAIM_SECONDS = 60
SOON_SECONDS = 1.0  # a row whose run met a database blip is due again this soon
ACTIVE = ("pending", "running")

_OUTBOX = OutboxItem.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class Queued:
    """One outbox row to queue: an effect, its dedupe key (none: never a duplicate), the incident
    whose rows it runs in order with (none: it waits for no other row), and how late it is due."""

    effect: Effect
    key: str | None = None
    incident_id: int | None = None
    delay: float = 0.0


def enqueue(session: Session, effect: Effect, *, key: str | None = None, incident_id: int | None = None,
            delay: float = 0.0) -> QueuedEffect:
    """Queue an effect in the transaction's change set (`bot.store.changeset`); ``.new()`` on what it
    returns tells whether it went in (``False``: one with this key was queued before)."""
    return changeset.of(session).effect(Queued(effect, key, incident_id, delay))


def enqueue_many(session: Session, effects: Sequence[Queued]) -> None:
    """Queue effects in the transaction's change set, in list order: the order the worker performs
    an incident's rows in."""
    changes = changeset.of(session)
    for effect in effects:
        changes.effect(effect)


def send_many(sql: Statements, effects: Sequence[Queued]) -> Later:
    """The change set's INSERT … ON CONFLICT (dedupe_key) DO NOTHING of ``effects``, in list order
    (both databases number a multi-row INSERT in VALUES order), on ``sql`` (inside its pipeline:
    sent, not waited for); the rows it inserted (``id``, ``dedupe_key``)."""
    now = utcnow()
    rows = [{
        "kind": queued.effect.kind,
        "dedupe_key": queued.key or f"{queued.effect.kind}:{uuid.uuid4().hex}",
        "incident_id": queued.incident_id,
        "payload": queued.effect.payload(),
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": now + timedelta(seconds=queued.delay),
        "created_at": now,
    } for queued in effects]
    return sql.insert_rows(_OUTBOX, rows, conflict=("dedupe_key",), returning=("id", "dedupe_key"))


def claim(session: Session, *, limit: int = 1, now: datetime | None = None,
          owner: str | None = None) -> list[OutboxItem]:
    """Take due rows for ``owner`` (a worker); expired claims (a crashed worker) are due again."""
    now = now or utcnow()
    earlier = aliased(OutboxItem)
    blocked_by_older = exists().where(and_(
        col(earlier.incident_id) == col(OutboxItem.incident_id),
        col(earlier.id) < col(OutboxItem.id),
        col(earlier.status).in_(ACTIVE),
    ))
    due = (
        (col(OutboxItem.status) == "pending") & (col(OutboxItem.next_attempt_at) <= now)
    ) | ((col(OutboxItem.status) == "running") & (col(OutboxItem.claimed_until) < now))
    stmt = (select(OutboxItem).where(due).where(~blocked_by_older | (col(OutboxItem.incident_id).is_(None)))
            .order_by(col(OutboxItem.id)).limit(limit))
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True, of=OutboxItem)
    rows = list(session.execute(stmt).scalars())
    for row in rows:
        row.status = "running"
        row.attempts += 1
        row.claimed_until = now + timedelta(seconds=CLAIM_SECONDS)
        row.claimed_by = owner
    session.flush()
    return rows


def _held(item_id: int, owner: str | None) -> Any:
    """The row, while ``owner`` still holds it (``None``: whoever holds it, for tools and tests)."""
    where = (OutboxItem.id == item_id) & (OutboxItem.status == "running")
    return where if owner is None else where & (OutboxItem.claimed_by == owner)


def renew(session: Session, item_id: int, owner: str | None, *, now: datetime | None = None) -> bool:
    """Extend ``owner``'s lease on a running row; ``False`` when the row is no longer theirs."""
    until = (now or utcnow()) + timedelta(seconds=CLAIM_SECONDS)
    result = session.execute(update(OutboxItem).where(_held(item_id, owner)).values(claimed_until=until))
    return affected_rows(result) == 1


def complete(session: Session, item_id: int, owner: str | None = None) -> bool:
    """Mark the row done; ``False`` (and nothing changed) when ``owner`` lost it meanwhile."""
    result = session.execute(update(OutboxItem).where(_held(item_id, owner))
                             .values(status="done", done_at=utcnow(), claimed_until=None, claimed_by=None,
                                     last_error=None))
    return affected_rows(result) == 1


def fail(session: Session, item_id: int, error: str, *, retry: bool = True, owner: str | None = None,
         soon: bool = False) -> bool:
    """Record a failure; returns True when the row gave up (it is then ``failed``).

    ``soon``: the failure was the database's, not the effect's: due again in a second, and it
    does not count towards giving up. A row ``owner`` no longer holds is left alone.
    """
    row = session.execute(select(OutboxItem).where(_held(item_id, owner))).scalar_one_or_none()
    if row is None:
        return False
    give_up = not soon and (not retry or row.attempts >= MAX_ATTEMPTS)
    row.status = "failed" if give_up else "pending"
    row.last_error = error[:2000]
    row.claimed_until = row.claimed_by = None
    delay = SOON_SECONDS if soon else min(2 ** row.attempts, 300)
    row.next_attempt_at = utcnow() + timedelta(seconds=delay)
    return give_up


def retry_failed(session: Session, incident_id: int | None = None) -> int:
    """Put failed rows back in the queue (``warroom incidents resume``)."""
    stmt = update(OutboxItem).where(col(OutboxItem.status) == "failed")
    if incident_id is not None:
        stmt = stmt.where(col(OutboxItem.incident_id) == incident_id)
    result = session.execute(stmt.values(status="pending", attempts=0, next_attempt_at=utcnow()))
    return affected_rows(result)


def pending_count(session: Session) -> int:
    from sqlalchemy import func
    return session.execute(select(func.count()).select_from(OutboxItem)
                           .where(col(OutboxItem.status).in_(ACTIVE))).scalar_one()


def due_count(session: Session, now: datetime | None = None) -> int:
    """Rows being performed, due now, or waiting to be retried; rows queued for later and not yet
    tried (a guard's next look, the next failing-traces post) are not work waiting."""
    from sqlalchemy import func
    waiting = (col(OutboxItem.next_attempt_at) <= (now or utcnow())) | (col(OutboxItem.attempts) > 0)
    due = (col(OutboxItem.status) == "running") | ((col(OutboxItem.status) == "pending") & waiting)
    return session.execute(select(func.count()).select_from(OutboxItem).where(due)).scalar_one()
