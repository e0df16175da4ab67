"""The one write path of an incident change: a transaction's timeline events and outbox effects,
queued in the order they happen and written together.

Every service that records a timeline line (`bot.incidents.timeline.record`) or queues an effect
(`bot.store.outbox.enqueue`) appends it to its session's `ChangeSet`, and so does the alert intake for a
whole batch of notifications. The change set is flushed once, through `bot.store.statements`: one
INSERT for the events (their ids are waited for: an echoed event's line names it), one for the
outbox rows (sent, not waited for, inside a pipeline). It is flushed

* before the transaction commits, and before the ORM writes anything (SQLAlchemy's
  ``before_commit`` and ``before_flush`` session events), so rows queued before an ORM write are
  written before it;
* when a caller asks what became of a row it queued (`QueuedEvent.id`, `QueuedEffect.new`), or
  calls `flush`: the alert intake flushes inside its own pipeline, with its other writes;
* before the session runs a statement that reads or changes the timeline or the outbox
  (SQLAlchemy's ``do_orm_execute``), so a transaction sees what it queued, as the ORM's
  autoflush would show it. Statements on other tables (the intake's reads in the middle of a
  batch) leave it queued.

A transaction that ends without a commit (rolled back, closed) drops what it queued.

Ordering rules, which `flush` keeps and the tests check:

* rows go in in the order they were queued: an incident's outbox rows get ascending ids in that
  order, and the worker performs an incident's rows of one priority in id order;
* an echoed event queues its ``slack.line`` right after itself (and only when it was written: an
  event with a ``dedupe_key`` recorded before writes nothing, and echoes nothing);
* an effect queued with ``only_if`` is written only if that says so once the writes sent before
  it were answered.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session
from sqlalchemy.sql.util import find_tables

from bot.effects import PostLine
from bot.errors import WarroomError
from bot.store import outbox
from bot.store.models import OutboxItem, TimelineEvent
from bot.store.statements import Later, Statements

_EVENT = TimelineEvent.__table__  # type: ignore[attr-defined]
_SESSION_KEY = "warroom.changeset"
_QUEUED_TABLES = frozenset({_EVENT.name, OutboxItem.__table__.name})  # type: ignore[attr-defined]


class NotFlushed(WarroomError, RuntimeError):
    """What became of a row is asked for after its transaction dropped it."""


@dataclass(slots=True, eq=False)
class QueuedEvent:
    """A timeline event in a change set; its ``id`` once written."""

    incident_id: int
    kind: str
    text: str
    actor: str | None
    at: datetime
    data: dict[str, Any]
    echo: bool
    dedupe_key: str | None
    owner: ChangeSet | None
    _id: int | None = None
    _written: bool = False

    def id(self) -> int | None:
        """The event's id; ``None`` when its ``dedupe_key`` was recorded before (nothing written).
        Flushes the change set when it has not been."""
        if self.owner is not None:
            self.owner.flush_now()
        if not self._written:
            raise NotFlushed(f"the {self.kind} event was dropped with its transaction")
        return self._id


@dataclass(slots=True, eq=False)
class QueuedEffect:
    """An outbox row in a change set."""

    effect: outbox.Queued
    only_if: Callable[[], bool] | None
    owner: ChangeSet | None
    _sent: Later | None = None  # None: not sent (its condition said no, or a copy went first)
    _written: bool = False

    def new(self) -> bool:
        """Whether the row went in: ``False`` when one with its key was queued before (by this
        transaction or an earlier one), or its ``only_if`` said no. Flushes the change set when it
        has not been, and waits for the answer."""
        if self.owner is not None:
            self.owner.flush_now()
        if not self._written:
            raise NotFlushed("the effect was dropped with its transaction")
        if self._sent is None:
            return False
        key = self.effect.row_key
        return key is None or any(row.dedupe_key == key for row in self._sent.rows())


class ChangeSet:
    """The timeline events and outbox effects of one transaction, in the order they were queued."""

    def __init__(self, flush_now: Callable[[], None] | None = None) -> None:
        self._items: list[QueuedEvent | QueuedEffect] = []
        self._flush_now = flush_now

    def __bool__(self) -> bool:
        return bool(self._items)

    def event(self, incident_id: int, kind: str, text: str, *, actor: str | None, at: datetime,
              data: dict[str, Any] | None = None, echo: bool = False, dedupe_key: str | None = None) -> QueuedEvent:
        """A timeline event; ``echo`` also queues a ``slack.line`` for it (right after it), and
        ``dedupe_key`` writes it only if no event has that key yet."""
        item = QueuedEvent(incident_id, kind, text, actor, at, data or {}, echo, dedupe_key, self)
        self._items.append(item)
        return item

    def effect(self, effect: outbox.Queued, only_if: Callable[[], bool] | None = None) -> QueuedEffect:
        """An outbox row after everything queued so far; with ``only_if``, only if that says so once
        the writes sent before it have been answered (`bot.alerts.store.PendingWrites.link_traces`)."""
        item = QueuedEffect(effect, only_if, self)
        self._items.append(item)
        return item

    def discard(self) -> None:
        """Forget what is queued: its transaction ended without writing it. A dropped row asked
        about later says so (`NotFlushed`) without flushing a later transaction's rows early."""
        for item in self._items:
            item.owner = None
        self._items = []

    def flush_now(self) -> None:
        """Write what is queued the way its owner does (`flush` for a session's change set)."""
        if not self._items:
            return
        if self._flush_now is None:
            raise NotFlushed("this change set is flushed by its owner")
        self._flush_now()

    def flush(self, sql: Statements) -> None:
        """Insert the events (waiting for their ids), then send the outbox rows in queue order, an
        echo line where its event was (inside ``sql``'s pipeline: without waiting for them)."""
        items, self._items = self._items, []
        events = [item for item in items if isinstance(item, QueuedEvent)]
        self._insert_events(sql, events)
        queued: list[QueuedEffect] = []
        effects: list[outbox.Queued] = []
        keys: set[str] = set()
        for item in items:
            item.owner = None
            if isinstance(item, QueuedEffect):
                # Conditions are answered by now when events went in (their INSERT waited for the
                # writes sent before it); otherwise asking waits.
                if item.only_if is None or item.only_if():
                    key = item.effect.row_key
                    if key is None or key not in keys:  # of two copies in one INSERT, the first goes in
                        queued.append(item)
                    if key is not None:
                        keys.add(key)
                    effects.append(item.effect)
                item._written = True
            elif item.echo and item._id is not None:
                effects.append(_echo_line(item.incident_id, item._id))
        sent = outbox.send_many(sql, effects) if effects else None
        for effect_item in queued:
            effect_item._sent = sent

    @staticmethod
    def _insert_events(sql: Statements, events: list[QueuedEvent]) -> None:
        """Give each event its id (``None``: its dedupe key was there already)."""
        if not events:
            return
        deduped = any(e.dedupe_key is not None for e in events)
        rows = sql.insert_rows(_EVENT, [{
            "incident_id": e.incident_id, "at": e.at, "kind": e.kind, "actor": e.actor, "text": e.text, "data": e.data,
            "dedupe_key": e.dedupe_key,
        } for e in events], conflict=("dedupe_key",) if deduped else (), returning=("id", "kind", "dedupe_key")).rows()
        # Ids are handed out in VALUES order on both databases (the order RETURNING gives is not
        # promised), so the sorted ids pair up with the events that went in; an event left out
        # can only be one whose dedupe key was there. The kind is checked all the same.
        rows.sort(key=lambda r: r.id)
        returned = iter(rows)
        row = next(returned, None)
        for queued in events:
            queued._written = True
            if row is not None and row.kind == queued.kind and row.dedupe_key == queued.dedupe_key:
                queued._id = row.id
                row = next(returned, None)
            elif queued.dedupe_key is None:
                raise RuntimeError(f"timeline batch out of order: {row.kind if row else None} for {queued.kind}")
        if row is not None:
            raise RuntimeError(f"timeline batch out of order: {row.kind} was not queued")


def _echo_line(incident_id: int, event_id: int) -> outbox.Queued:
    """The short line in the incident channel that repeats an event (a state change)."""
    return outbox.Queued(PostLine(incident_id=incident_id, event_id=event_id),
                         key=f"line:{event_id}", incident_id=incident_id)


def of(session: Session) -> ChangeSet:
    """The change set of ``session``'s transaction."""
    changes: ChangeSet | None = session.info.get(_SESSION_KEY)
    if changes is None:
        changes = session.info[_SESSION_KEY] = ChangeSet(lambda: flush(session))
    return changes


def flush(session: Session, sql: Statements | None = None) -> None:
    """Write what ``session``'s transaction queued, on ``sql`` (inside its pipeline, if open) or on
    a `Statements` of the session's connection, in a pipeline of its own."""
    changes: ChangeSet | None = session.info.get(_SESSION_KEY)
    if not changes:
        return
    if sql is not None:
        changes.flush(sql)
        return
    own = Statements(session.connection())
    with own.pipeline():
        changes.flush(own)


def _drop(session: Session) -> None:
    # Emptied, not forgotten: whoever holds the session's change set (the intake's batch) keeps
    # using the one the hooks flush.
    changes: ChangeSet | None = session.info.get(_SESSION_KEY)
    if changes:
        changes.discard()


@event.listens_for(Session, "before_flush")
def _before_orm_flush(session: Session, _context: Any, _instances: Any) -> None:
    flush(session)


@event.listens_for(Session, "do_orm_execute")
def _before_statement(state: ORMExecuteState) -> None:
    if state.session.info.get(_SESSION_KEY) and _on_queued_tables(state.statement):
        flush(state.session)


def _on_queued_tables(statement: Any) -> bool:
    return any(table.name in _QUEUED_TABLES for table in find_tables(statement, include_crud=True))


@event.listens_for(Session, "before_commit")
def _before_commit(session: Session) -> None:
    flush(session)


@event.listens_for(Session, "after_transaction_end")
def _after_transaction_end(session: Session, transaction: Any) -> None:
    if transaction.parent is None:  # rolled back or closed (a commit flushed it already)
        _drop(session)
