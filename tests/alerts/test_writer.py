"""Group commit (bot.alerts.writer): many notifications in one transaction, each with its own answer."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import threading
from collections import Counter
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select, text

from bot.alerts.intake import IngestResult, ingest, ingest_many
from bot.alerts.normalize import Notification, from_alertmanager
from bot.alerts.writer import IntakeWriter, ingest_batch
from bot.clock import as_utc, utcnow
from bot.runtime import Runtime
from bot.serving import wait_until
from bot.store.db import is_database_unavailable, transaction
from bot.store.models import Alert, AlertGroup, Incident, OutboxItem, TimelineEvent, Trace
from tests.alerts.payloads import am_alert, am_payload
from tests.conftest import make_settings

RESOLVED = {"status": "resolved", "ends": "2026-03-14T02:20:00Z"}


def note(body: dict) -> Notification:
    return from_alertmanager(json.loads(json.dumps(body)), received_at=utcnow())


@pytest.fixture
def runtime(settings):
    runtime = Runtime.build(settings)
    yield runtime
    runtime.engine.dispose()


def count(runtime: Runtime, model: type) -> int:
    with transaction(runtime.engine) as session:
        return len(session.execute(select(model)).scalars().all())


def outcomes(answers: list) -> list[str]:
    return [a.outcome if isinstance(a, IngestResult) else type(a).__name__ for a in answers]


def test_copies_in_one_batch_make_one_incident_and_the_copy_is_a_duplicate(runtime):
    first = am_payload([am_alert("a"), am_alert("b")], group="one")
    answers = ingest_batch(runtime, [note(first), note(first), note(am_payload([am_alert("a")], group="two"))])
    assert outcomes(answers) == ["opened", "duplicate", "opened"]
    assert (count(runtime, Incident), count(runtime, Alert), count(runtime, AlertGroup)) == (2, 3, 2)
    assert count(runtime, OutboxItem) == 2  # one room set-up per incident


def test_one_groups_notifications_keep_their_order_within_a_batch(runtime):
    fire = note(am_payload([am_alert("a")], group="g"))
    resolve = note(am_payload([am_alert("a", **RESOLVED)], group="g"))
    others = [note(am_payload([am_alert("a")], group=f"other-{i}")) for i in range(5)]
    answers = ingest_batch(runtime, [others[0], fire, others[1], others[2], resolve, others[3], others[4]])
    assert outcomes(answers) == ["opened", "opened", "opened", "opened", "updated", "opened", "opened"]
    with transaction(runtime.engine) as session:
        incident = session.get(Incident, answers[1].incident_id)
        assert incident is not None and incident.status == "resolved"


def test_a_batch_writes_an_incidents_timeline_and_outbox_in_the_order_one_at_a_time_would(runtime):
    """A batch's events and outbox rows go in at its end (a resolve flushes them first): the same
    rows in the same order as with a transaction per notification."""
    def story(group: str) -> list[Notification]:
        return [note(am_payload([am_alert("a")], group=group)),
                note(am_payload([am_alert("a"), am_alert("b")], group=group)),
                note(am_payload([am_alert("a", **RESOLVED), am_alert("b")], group=group)),
                note(am_payload([am_alert("a", **RESOLVED), am_alert("b", **RESOLVED)], group=group)),
                note(am_payload([am_alert("a", starts="2026-03-14T03:00:00Z")], group=group))]  # re-fires

    others = [note(am_payload([am_alert("x")], group=f"other-{i}")) for i in range(5)]
    batched = ingest_batch(runtime, [n for pair in zip(story("batched"), others, strict=True) for n in pair])[::2]
    one_at_a_time = [ingest_batch(runtime, [n])[0] for n in story("alone")]
    assert outcomes(batched) == outcomes(one_at_a_time) == ["opened", "updated", "updated", "updated", "opened"]
    assert _history(runtime, batched) == _history(runtime, one_at_a_time)


def test_a_batch_links_failing_traces_and_queues_their_message_only_for_rooms_that_have_some(runtime):
    """The trace link goes with the batch's writes; its answer decides the traces message, which
    comes right after the room's set-up."""
    seen = utcnow() - timedelta(minutes=5)
    with transaction(runtime.engine) as session:
        session.add_all(Trace(request_id=f"bad-{i}", service="llm-gateway", timestamp=seen, received_at=seen,
                              failed=True,
                              failure_types=["hallucination"]) for i in range(3))
    answers = ingest_batch(runtime, [note(am_payload([am_alert("a", service="llm-gateway")], group="with-traces")),
                                     note(am_payload([am_alert("a", service="search")], group="without-traces"))])
    with_traces, without = (answer.incident_id for answer in answers)
    with transaction(runtime.engine) as session:
        def queued(incident_id: int | None) -> list[str]:
            return list(session.execute(select(OutboxItem.kind).where(OutboxItem.incident_id == incident_id)
                                        .order_by(OutboxItem.id)).scalars())

        assert queued(with_traces)[:2] == ["slack.room", "slack.traces"]
        assert queued(without)[0] == "slack.room" and "slack.traces" not in queued(without)
        linked = session.execute(select(Trace.incident_id).where(Trace.request_id.like("bad-%"))).scalars().all()
        assert linked == [with_traces] * 3


def _history(runtime: Runtime, answers: list) -> list[list[tuple]]:
    """Per incident: its timeline ``(kind, text)`` (incident numbers left out) and its outbox rows
    ``(kind, event kind for a line)``, by id."""
    history = []
    with transaction(runtime.engine) as session:
        for incident_id in dict.fromkeys(a.incident_id for a in answers):
            events = {e.id: e for e in session.execute(select(TimelineEvent).where(
                TimelineEvent.incident_id == incident_id).order_by(TimelineEvent.id)).scalars()}
            rows = session.execute(select(OutboxItem).where(OutboxItem.incident_id == incident_id)
                                   .order_by(OutboxItem.id)).scalars()
            history.append([(e.kind, re.sub(r"#\d+", "#", e.text)) for e in events.values()])
            history.append([(o.kind, events[o.payload["event_id"]].kind if o.kind == "slack.line" else None)
                            for o in rows])
    return history


def test_an_alert_written_before_a_resolve_in_its_batch_is_still_changed_by_a_later_notification(runtime):
    """A resolve writes the batch's rows so far (through the ORM after them); an alert inserted
    then is still the row that a later notification of the batch edits."""
    edited = {"summary": "edited after the incident resolved"}

    def story(group: str) -> list[Notification]:
        return [note(am_payload([am_alert("a")], group=group)),
                note(am_payload([am_alert("a", **RESOLVED)], group=group)),  # resolves the incident
                note(am_payload([am_alert("a", **RESOLVED, annotations=edited), am_alert("b")], group=group))]

    batched = ingest_batch(runtime, story("batched"))
    one_at_a_time = [ingest_batch(runtime, [n])[0] for n in story("alone")]
    assert outcomes(batched) == outcomes(one_at_a_time) == ["opened", "updated", "opened"]
    assert _alert_rows(runtime, batched) == _alert_rows(runtime, one_at_a_time)
    assert _alert_rows(runtime, batched)[0] == ("a", "resolved", edited)


def _alert_rows(runtime: Runtime, answers: list) -> list[tuple]:
    group_id = _group_of(runtime, answers[0].incident_id)
    with transaction(runtime.engine) as session:
        rows = session.execute(select(Alert).where(Alert.group_id == group_id).order_by(Alert.id)).scalars()
        return [(a.labels["model"], a.status, a.annotations) for a in rows]


def _group_of(runtime: Runtime, incident_id: int) -> int:
    with transaction(runtime.engine) as session:
        incident = session.get(Incident, incident_id)
        assert incident is not None and incident.group_id is not None
        return incident.group_id


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # SQLite has no row locks to order
def test_a_batch_takes_its_group_locks_in_one_order_whatever_order_its_notifications_came_in(settings):
    """Two processes (two engines): one holds the group that comes first in lock order and then
    takes the second; the other's batch lists them the other way round. Taken in list order the
    batch would hold the second group while waiting for the first, and PostgreSQL would abort one
    of the two as a deadlock; taken in lock order it waits without holding, and both go through."""
    first, second = sorted((note(am_payload([am_alert("a")], group=f"order-{i}")) for i in range(2)),
                           key=lambda n: n.group_key_hash)
    holder, batcher = Runtime.build(settings), Runtime.build(settings)
    answers: list = []
    try:
        with transaction(holder.engine) as session:
            assert ingest_many(session, [first], holder.intake_rules)[0].outcome == "opened"
            thread = threading.Thread(target=lambda: answers.extend(ingest_batch(batcher, [second, first])))
            thread.start()
            wait_until(lambda: _sessions_waiting_on_a_lock(holder), what="the batch to wait for the held group")
            assert ingest_many(session, [second], holder.intake_rules)[0].outcome == "opened"
        thread.join(30)
    finally:
        for runtime in (holder, batcher):
            runtime.engine.dispose()
    assert outcomes(answers) == ["duplicate", "duplicate"]


def _sessions_waiting_on_a_lock(runtime: Runtime) -> int:
    with runtime.engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                 "AND wait_event_type = 'Lock'")).scalar_one()


def test_a_repeat_within_a_minute_rewrites_no_alert_row_and_a_later_one_records_the_sighting(runtime):
    body = am_payload([am_alert("a"), am_alert("b")], group="seen")
    opened = utcnow()

    def deliver(at: datetime) -> str:
        with transaction(runtime.engine) as session:
            return ingest(session, note(body), runtime.intake_rules, now=at).outcome

    def last_seen() -> set[datetime]:
        with transaction(runtime.engine) as session:
            return {as_utc(at) for at in session.execute(select(Alert.last_seen_at)).scalars()}

    assert deliver(opened) == "opened"
    assert deliver(opened + timedelta(seconds=30)) == "duplicate"  # an HA peer's copy, say
    assert last_seen() == {opened}
    assert deliver(opened + timedelta(seconds=90)) == "duplicate"  # Alertmanager's next repeat
    assert last_seen() == {opened + timedelta(seconds=90)}


def test_a_groups_resolve_that_arrives_while_its_fire_is_written_is_written_after_it(runtime):
    """The resolve (and another group's fire) arrive while the fire is being written: they wait
    for it, as the next batch. Written first, the resolve would be ignored, as a resolve for a
    group never seen, and the incident would never resolve."""
    fire = note(am_payload([am_alert("a")], group="ordered"))
    resolve = note(am_payload([am_alert("a", **RESOLVED)], group="ordered"))
    other = note(am_payload([am_alert("a")], group="other"))

    async def deliver() -> list[IngestResult]:
        writer = IntakeWriter(runtime)
        return await asyncio.gather(writer.ingest(fire), writer.ingest(resolve), writer.ingest(other))

    answers = asyncio.run(deliver())
    assert outcomes(answers) == ["opened", "updated", "opened"]
    with transaction(runtime.engine) as session:
        incident = session.get(Incident, answers[0].incident_id)
        assert incident is not None and incident.status == "resolved"


def test_a_notification_that_breaks_the_intake_does_not_fail_its_batch(runtime):
    good = [note(am_payload([am_alert("a")], group=f"good-{i}")) for i in range(2)]
    broken = note(am_payload([am_alert("a")], group="broken"))
    # Only a caller bypassing validation can send this; the database refuses it (NOT NULL).
    broken.alerts[0] = dataclasses.replace(broken.alerts[0], starts_at=None)  # type: ignore[arg-type]
    answers = ingest_batch(runtime, [good[0], broken, good[1]])
    assert outcomes(answers)[0] == outcomes(answers)[2] == "opened"
    assert isinstance(answers[1], Exception) and not is_database_unavailable(answers[1])
    assert count(runtime, Incident) == 2 and count(runtime, AlertGroup) == 2  # nothing of the broken one
    events = Counter(e.kind for e in _events(runtime))
    assert events == {"opened": 2, "alert_fired": 2}


def test_an_unreachable_database_fails_the_whole_batch_as_unavailable(database_url, tmp_path):
    down = ("sqlite:///" + str(tmp_path / "missing-dir" / "x.db") if database_url.startswith("sqlite")
            else "postgresql://postgres@127.0.0.1:1/warroom")
    runtime = Runtime.build(make_settings(down))
    try:
        answers = ingest_batch(runtime, [note(am_payload([am_alert("a")], group=f"g{i}")) for i in range(3)])
    finally:
        runtime.engine.dispose()
    assert len(answers) == 3 and all(is_database_unavailable(a) for a in answers)


def test_a_burst_at_one_process_is_written_once_with_every_answer_after_its_commit(warroom):
    """Concurrent deliveries (copies included) to one app: batches form; each answer is its own."""
    bodies = [am_payload([am_alert(f"m{j}") for j in range(3)], group=f"burst-{i}") for i in range(10)]
    deliveries = [body for body in bodies for _ in range(3)]
    barrier = threading.Barrier(len(deliveries))
    answers: list[dict] = []
    lock = threading.Lock()

    def deliver(body: dict) -> None:
        barrier.wait()
        response = warroom.alertmanager(body)
        assert response.status_code == 200, response.text
        incident_id = response.json()["incident_id"]
        # Answered after the commit: the incident is already readable from another connection.
        assert any(i["id"] == incident_id for i in warroom.incidents())
        with lock:
            answers.append(response.json())

    threads = [threading.Thread(target=deliver, args=(body,)) for body in deliveries]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(answers) == 30
    assert Counter(a["status"] for a in answers) == {"opened": 10, "duplicate": 20}
    assert (warroom.count(Incident), warroom.count(Alert), warroom.count(OutboxItem)) == (10, 30, 10)


def _events(runtime: Runtime) -> list[TimelineEvent]:
    with transaction(runtime.engine) as session:
        return list(session.execute(select(TimelineEvent)).scalars())
