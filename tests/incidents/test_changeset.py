"""The one write path (bot.store.changeset): the ordering rules of an incident's timeline and outbox
rows, on both databases, whoever queues them."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from bot.alerts.intake import ingest
from bot.alerts.writer import ingest_batch
from bot.clock import utcnow
from bot.effects import PostMessage
from bot.incidents import service, timeline
from bot.runtime import Runtime
from bot.store import changeset, outbox
from bot.store.db import transaction
from bot.store.models import OutboxItem, TimelineEvent
from tests.alerts.payloads import am_alert, am_payload
from tests.alerts.test_writer import note


@pytest.fixture
def incident_id(runtime) -> int:
    with transaction(runtime.engine) as session:
        incident = service.declare(session, title="checkout 500s", severity=2, actor="U0PRIYA")
        assert incident.id is not None
        return incident.id


def _outbox(runtime: Runtime, incident_id: int) -> list[OutboxItem]:
    with transaction(runtime.engine) as session:
        return list(session.execute(select(OutboxItem).where(OutboxItem.incident_id == incident_id)
                                    .order_by(OutboxItem.id)).scalars())


def _effect(name: str, incident_id: int) -> outbox.Queued:
    return outbox.Queued(PostMessage(incident_id=incident_id, text=name), incident_id=incident_id)


def _performed_in_order(runtime: Runtime) -> list[tuple[str, dict]]:
    """What the worker would perform, one claim at a time, in the order it claims them."""
    done: list[tuple[str, dict]] = []
    while True:
        with transaction(runtime.engine) as session:
            rows = outbox.claim(session, limit=10)
            if not rows:
                return done
            for row in rows:
                done.append((row.kind, row.payload))
                outbox.complete(session, row.id)


def test_an_incidents_effects_are_written_and_performed_in_the_order_they_were_queued(runtime, incident_id):
    with transaction(runtime.engine) as session:
        incident = service.get(session, incident_id)
        outbox.enqueue_many(session, [_effect("first", incident_id)])
        service.acknowledge(session, incident, actor="U0PRIYA")  # an echoed event, then the card (twice:
        outbox.enqueue_many(session, [_effect("last", incident_id)])  # the person's, then the cosmetic rest)
    _performed_in_order(runtime)  # the declare's room; these are the rows after it
    rows = _outbox(runtime, incident_id)[-5:]
    ack = next(e for e in _timeline(runtime, incident_id) if e.kind == "acknowledged")
    assert [(row.kind, row.payload.get("text") or row.payload.get("event_id")) for row in rows] == [
        ("slack.message", "first"), ("slack.line", ack.id), ("slack.card", None), ("slack.card", None),
        ("slack.message", "last")]
    assert [row.id for row in rows] == sorted(row.id for row in rows)


def test_the_worker_performs_an_incidents_rows_in_queue_order(runtime, incident_id):
    _performed_in_order(runtime)
    with transaction(runtime.engine) as session:
        for name in ("one", "two", "three"):
            outbox.enqueue(session, PostMessage(incident_id=incident_id, text=name), incident_id=incident_id)
    assert [payload["text"] for _, payload in _performed_in_order(runtime)] == ["one", "two", "three"]


def test_an_echoed_event_queues_its_line_right_after_it_and_only_once_written(runtime, incident_id):
    with transaction(runtime.engine) as session:
        incident = service.get(session, incident_id)
        outbox.enqueue_many(session, [_effect("before", incident_id)])
        echoed = timeline.record(session, incident, "status", "rolled back", actor="U0PRIYA", echo=True)
        quiet = timeline.record(session, incident, "note", "a note", actor="U0PRIYA")
        outbox.enqueue_many(session, [_effect("after", incident_id)])
        # Recorded before, so not again: no line either.
        once = timeline.record(session, incident, "pinned", "pinned", actor="U0PRIYA", dedupe_key="pin:C1:1", echo=True)
        again = timeline.record(
            session, incident, "pinned", "pinned", actor="U0PRIYA", dedupe_key="pin:C1:1", echo=True
        )
    rows = _outbox(runtime, incident_id)[-4:]
    assert [(row.kind, row.payload.get("text") or row.payload.get("event_id")) for row in rows] == [
        ("slack.message", "before"), ("slack.line", echoed.id()), ("slack.message", "after"), ("slack.line", once.id())]
    assert quiet.id() is not None and again.id() is None
    assert [e.kind for e in _timeline(runtime, incident_id)][-3:] == ["status", "note", "pinned"]
    with transaction(runtime.engine) as session:
        incident = service.get(session, incident_id)
        late = timeline.record(session, incident, "pinned", "pinned", actor="U0PRIYA", dedupe_key="pin:C1:1", echo=True)
        assert late.id() is None  # asked inside the transaction: the change set is flushed to answer
    assert [row.kind for row in _outbox(runtime, incident_id)][-4:] == [row.kind for row in rows]  # no line for it


def _timeline(runtime: Runtime, incident_id: int) -> list[TimelineEvent]:
    with transaction(runtime.engine) as session:
        return timeline.events(session, incident_id)


def test_rows_queued_before_an_orm_write_are_written_before_it(runtime, incident_id):
    with transaction(runtime.engine) as session:
        incident = service.get(session, incident_id)
        queued_effect = outbox.enqueue(session, PostMessage(incident_id=incident_id, text="queued"),
                                       key="queued", incident_id=incident_id)
        queued_event = timeline.record(session, incident, "note", "queued", actor="U0PRIYA")
        now = utcnow()
        orm_row = OutboxItem(kind="slack.message", dedupe_key="orm", incident_id=incident_id,
                             payload={"incident_id": incident_id, "text": "orm"}, next_attempt_at=now, created_at=now)
        orm_event = TimelineEvent(incident_id=incident_id, at=now, kind="note", text="orm")
        session.add_all([orm_row, orm_event])
        session.flush()
        assert queued_event.id() is not None and orm_event.id is not None and queued_event.id() < orm_event.id
        assert queued_effect.new()
    assert [row.payload["text"] for row in _outbox(runtime, incident_id)[-2:]] == ["queued", "orm"]


def test_a_transaction_sees_what_it_queued_and_a_rolled_back_one_writes_none_of_it(runtime, incident_id):
    with transaction(runtime.engine) as session:
        incident = service.get(session, incident_id)
        timeline.record(session, incident, "note", "kept", actor="U0PRIYA")
        assert timeline.events(session, incident_id)[-1].text == "kept"
    before = len(_outbox(runtime, incident_id))
    with transaction(runtime.engine) as session:
        incident = service.get(session, incident_id)
        service.set_severity(session, incident, 1, actor="U0PRIYA")
        session.rollback()
        # The same session's next transaction starts with nothing queued.
        service.add_note(session, service.get(session, incident_id), "after the rollback", actor="U0PRIYA")
    assert [e.kind for e in _timeline(runtime, incident_id)][-2:] == ["note", "note"]
    assert len(_outbox(runtime, incident_id)) == before


def test_enqueue_tells_whether_a_keyed_effect_was_new(runtime, incident_id):
    with transaction(runtime.engine) as session:
        first = outbox.enqueue(session, PostMessage(incident_id=incident_id, text="x"), key="k1",
                               incident_id=incident_id)
        copy = outbox.enqueue(session, PostMessage(incident_id=incident_id, text="x"), key="k1",
                              incident_id=incident_id)
    assert first.new() and not copy.new()
    with transaction(runtime.engine) as session:
        later = outbox.enqueue(session, PostMessage(incident_id=incident_id, text="x"), key="k1",
                               incident_id=incident_id)
        assert not later.new()
        assert not changeset.of(session)  # answering flushed it


def test_an_effect_queued_with_a_condition_goes_in_only_if_it_holds(runtime, incident_id):
    with transaction(runtime.engine) as session:
        changes = changeset.of(session)
        yes = changes.effect(_effect("yes", incident_id), only_if=lambda: True)
        no = changes.effect(_effect("no", incident_id), only_if=lambda: False)
    assert yes.new() and not no.new()
    assert [row.payload.get("text") for row in _outbox(runtime, incident_id)][-2:] == [None, "yes"]  # the room, then it


def test_the_intake_and_a_service_in_one_transaction_write_one_history_in_order(runtime):
    """The intake appends to the transaction's change set like any service: what a service does
    after it in the same transaction comes after it, and an echo line right after its event."""
    with transaction(runtime.engine) as session:
        opened = ingest(session, note(am_payload([am_alert("a")], group="one-history")), runtime.intake_rules)
        assert opened.incident_id is not None
        service.acknowledge(session, service.get(session, opened.incident_id), actor="U0PRIYA")
    events = {e.id: e.kind for e in sorted(_timeline(runtime, opened.incident_id), key=lambda e: e.id)}
    assert list(events.values()) == ["opened", "alert_fired", "acknowledged"]
    assert [(row.kind, events.get(row.payload.get("event_id"))) for row in _outbox(runtime, opened.incident_id)] == [
        ("slack.room", None), ("slack.line", "acknowledged"), ("slack.card", None), ("slack.card", None)]


def test_a_transaction_reads_what_it_queued_through_any_query(runtime, incident_id):
    with transaction(runtime.engine) as session:
        outbox.enqueue(session, PostMessage(incident_id=incident_id, text="mine"), incident_id=incident_id)
        texts = session.execute(select(OutboxItem.payload).where(OutboxItem.incident_id == incident_id)).scalars()
        assert [payload.get("text") for payload in texts][-1] == "mine"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # statements counted through SQLAlchemy
def test_a_batch_of_notifications_writes_its_timeline_and_outbox_rows_with_one_insert_each(runtime):
    """The intake's reads in the middle of a batch (the service's recent changes for a new
    incident) leave the change set queued: one INSERT per table for the whole batch."""
    from sqlalchemy import event

    inserts: list[str] = []

    def count(_conn, _cursor, statement, *_args):
        if statement.startswith("INSERT INTO"):
            inserts.append(statement.split()[2])

    event.listen(runtime.engine, "before_cursor_execute", count)
    try:
        ingest_batch(runtime, [note(am_payload([am_alert("a")], group=f"batch-{i}")) for i in range(4)]
                     + [note(am_payload([am_alert("a"), am_alert("b")], group="batch-0"))])
    finally:
        event.remove(runtime.engine, "before_cursor_execute", count)
    assert inserts.count("timeline_event") == 1 and inserts.count("outbox") == 1, inserts
