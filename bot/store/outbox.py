"""Durable side effects: queued with the state change, performed by the worker, never lost.

A row is written in the same transaction as the change that needs it, keyed so the same effect
is never queued twice: it is queued in the transaction's change set (`bot.store.changeset`), whose
rows go in with one INSERT (`send_many`), numbered in the order they were queued. A row holds a
typed effect (`bot.effects`): its kind, its fields as the payload, and its priority.

Workers claim due rows most urgent first, by (priority, due time, id): ``FOR UPDATE SKIP LOCKED``
on PostgreSQL, under a transaction-scoped advisory lock so claims are taken one at a time, as
SQLite's single writer lock does there. Rows of one incident run one at a time and in order: a row
is not claimable while another row of its incident is running, or is pending ahead of it (more
urgent, or as urgent and queued earlier). A failure backs off exponentially and, after
``MAX_ATTEMPTS``, stays ``failed`` and visible; a deferral (`defer`: Slack said "not now") is put
back for later without counting.

A row queued to merge (``Queued.merge``) keeps a key of its own while it waits, and later copies
join it instead of adding rows: one card refresh for a burst of alerts. The worker frees the key
(`release_merged`) when it starts the row, so a change after that queues a new one. A merge row
must be queued in a transaction that writes its incident's row: freeing the key waits for that
transaction, so the run renders its change.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, exists, func, select, text, update
from sqlalchemy.orm import aliased
from sqlmodel import Session, col

from bot.clock import as_utc, utcnow
from bot.effects import Effect, Priority
from bot.store import changeset
from bot.store.db import affected_rows
from bot.store.models import Incident, OutboxItem
from bot.store.statements import Later, Statements

if TYPE_CHECKING:
    from bot.store.changeset import QueuedEffect

MAX_ATTEMPTS = 8
# A lease is renewed every third of this while its row runs, so it only runs out when the
# worker's process is gone or cannot reach the database.
CLAIM_SECONDS = 60
SOON_SECONDS = 1.0  # a row whose run met a database blip is due again this soon
ACTIVE = ("pending", "running")
MERGE_PREFIX = "merge:"  # the dedupe key of a waiting merge row; freed (renamed) when it starts
CLAIM_LOCK = 0x77617272  # PostgreSQL advisory lock id that serialises claims ("warr")

_OUTBOX = OutboxItem.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class Queued:
    """One outbox row to queue: an effect, its dedupe key (none: never a duplicate), the incident
    whose rows it runs in order with (none: it waits for no other row), how late it is due, its
    priority (none: its effect type's), and whether it merges into a waiting copy with its key
    (``merge``: a copy queued while one waits joins it; see the module docstring)."""

    effect: Effect
    key: str | None = None
    incident_id: int | None = None
    delay: float = 0.0
    priority: Priority | None = None
    merge: bool = False

    def __post_init__(self) -> None:
        if self.merge and not self.key:
            raise ValueError("a row that merges needs a key to merge on")

    @property
    def row_key(self) -> str | None:
        """The dedupe key the row is written with."""
        return MERGE_PREFIX + self.key if self.merge and self.key else self.key


def is_merge_key(key: str) -> bool:
    return key.startswith(MERGE_PREFIX)


def enqueue(session: Session, effect: Effect, *, key: str | None = None, incident_id: int | None = None,
            delay: float = 0.0, priority: Priority | None = None) -> QueuedEffect:
    """Queue an effect in the transaction's change set (`bot.store.changeset`); ``.new()`` on what it
    returns tells whether it went in (``False``: one with this key was queued before)."""
    return changeset.of(session).effect(Queued(effect, key, incident_id, delay, priority))


def enqueue_many(session: Session, effects: Sequence[Queued]) -> None:
    """Queue effects in the transaction's change set, in list order: the order the worker performs
    an incident's rows in."""
    changes = changeset.of(session)
    for effect in effects:
        changes.effect(effect)


def send_many(sql: Statements, effects: Sequence[Queued]) -> Later:
    """The change set's INSERT … ON CONFLICT (dedupe_key) DO NOTHING of ``effects``, in list order
    (both databases number a multi-row INSERT in VALUES order), on ``sql`` (inside its pipeline:
    sent, not waited for); the rows it inserted (``id``, ``dedupe_key``). A merge row that finds its
    copy waiting is one of those left out: it has merged."""
    now = utcnow()
    rows = [{
        "kind": queued.effect.kind,
        "dedupe_key": queued.row_key or f"{queued.effect.kind}:{uuid.uuid4().hex}",
        "incident_id": queued.incident_id,
        "payload": queued.effect.payload(),
        "status": "pending",
        "attempts": 0,
        "priority": int(queued.effect.priority if queued.priority is None else queued.priority),
        "next_attempt_at": now + timedelta(seconds=queued.delay),
        "created_at": now,
    } for queued in effects]
    return sql.insert_rows(_OUTBOX, rows, conflict=("dedupe_key",), returning=("id", "dedupe_key"))


def claim(session: Session, *, limit: int = 1, now: datetime | None = None,
          owner: str | None = None) -> list[OutboxItem]:
    """Take due rows for ``owner`` (a worker), most urgent first; expired claims (a crashed worker)
    are due again. Not a row while another of its incident is running or pending ahead of it."""
    now = now or utcnow()
    postgres = session.get_bind().dialect.name == "postgresql"
    if postgres:
        # Claims one at a time: a claim that ran beside another could not see the row that one is
        # taking and hand out a second row of the same incident. SQLite's writer lock does this there.
        session.execute(text("SELECT pg_advisory_xact_lock(:lock)"), {"lock": CLAIM_LOCK})
    other = aliased(OutboxItem)
    ahead = (col(other.priority) < col(OutboxItem.priority)) | (
        (col(other.priority) == col(OutboxItem.priority)) & (col(other.id) < col(OutboxItem.id)))
    blocked = exists().where(and_(
        col(other.incident_id) == col(OutboxItem.incident_id),
        col(other.id) != col(OutboxItem.id),
        col(other.status).in_(ACTIVE),
        (col(other.status) == "running") | ahead,
    ))
    due = (
        (col(OutboxItem.status) == "pending") & (col(OutboxItem.next_attempt_at) <= now)
    ) | ((col(OutboxItem.status) == "running") & (col(OutboxItem.claimed_until) < now))
    stmt = (select(OutboxItem).where(due).where(~blocked | (col(OutboxItem.incident_id).is_(None)))
            .order_by(col(OutboxItem.priority), col(OutboxItem.next_attempt_at), col(OutboxItem.id)).limit(limit))
    if postgres:
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


def defer(session: Session, item_id: int, delay: float, reason: str, *, owner: str | None = None) -> bool:
    """Put a claimed row back, due in ``delay`` seconds, without counting the attempt (Slack said
    "not now"; nothing failed). ``reason`` is kept as its last error, so the next run knows an
    earlier one started (a post is then looked for before it is made again). ``False`` when
    ``owner`` no longer holds the row."""
    row = session.execute(select(OutboxItem).where(_held(item_id, owner))).scalar_one_or_none()
    if row is None:
        return False
    row.status = "pending"
    row.attempts = max(0, row.attempts - 1)
    row.last_error = reason[:2000]
    row.claimed_until = row.claimed_by = None
    row.next_attempt_at = utcnow() + timedelta(seconds=delay)
    return True


def release_merged(session: Session, item_id: int, every: float, *, owner: str | None = None) -> float:
    """A merge row that was just claimed: 0 after freeing its key (a copy queued from now on makes a
    new row), or, when a row of its kind and incident was done less than ``every`` seconds ago, the
    seconds left, the row put back until then (`defer`) with its key, still gathering copies."""
    row = session.execute(select(OutboxItem).where(_held(item_id, owner))).scalar_one_or_none()
    if row is None:
        return 0.0
    if row.incident_id is not None and session.get_bind().dialect.name == "postgresql":
        # A copy is queued by a transaction that also writes its incident's row (its updated_at):
        # wait for any such transaction to commit, so the run that follows renders its change.
        session.execute(select(col(Incident.id)).where(col(Incident.id) == row.incident_id).with_for_update(read=True))
    last = session.execute(select(func.max(OutboxItem.done_at)).where(
        col(OutboxItem.kind) == row.kind, col(OutboxItem.incident_id) == row.incident_id,
        col(OutboxItem.status) == "done")).scalar_one_or_none()
    wait = (as_utc(last) + timedelta(seconds=every) - utcnow()).total_seconds() if last is not None else 0.0
    if wait > 0:
        defer(session, item_id, wait, f"merging copies: one ran less than {every:g} s ago", owner=owner)
        return wait
    row.dedupe_key = f"{row.dedupe_key.removeprefix(MERGE_PREFIX)}#{item_id}"
    return 0.0


def retry_failed(session: Session, incident_id: int | None = None) -> int:
    """Put failed rows back in the queue (``warroom incidents resume``)."""
    stmt = update(OutboxItem).where(col(OutboxItem.status) == "failed")
    if incident_id is not None:
        stmt = stmt.where(col(OutboxItem.incident_id) == incident_id)
    result = session.execute(stmt.values(status="pending", attempts=0, next_attempt_at=utcnow()))
    return affected_rows(result)


def pending_count(session: Session) -> int:
    return session.execute(select(func.count()).select_from(OutboxItem)
                           .where(col(OutboxItem.status).in_(ACTIVE))).scalar_one()


def due_count(session: Session, now: datetime | None = None) -> int:
    """Rows being performed, due now, or waiting to be retried or for Slack's rate limit; rows queued
    for later and not yet tried (a guard's next look, the next failing-traces post) are not work
    waiting."""
    waiting = ((col(OutboxItem.next_attempt_at) <= (now or utcnow())) | (col(OutboxItem.attempts) > 0)
               | col(OutboxItem.last_error).is_not(None))
    due = (col(OutboxItem.status) == "running") | ((col(OutboxItem.status) == "pending") & waiting)
    return session.execute(select(func.count()).select_from(OutboxItem).where(due)).scalar_one()
